// bitsandbytes' blockwise 8-bit state, for any optimizer with one to three state slots
// (src/backend/quant.rs has the layout; the rayon twin is src/backend/cpu/optim8.rs). Appended:
// the optimizer's optim_<kernel>.wgsl, whose `update` is the formula, the same as the f32 and
// bf16 kernels'.
//
// One workgroup per row of the block table: up to 256 consecutive elements of one tensor, four
// per invocation (one 32-bit word of codes per slot). A quantized block dequantizes each kept
// slot (code value times the block's absmax), updates the slots and the parameter in f32, finds
// each slot's new absmax by a workgroup reduction, and requantizes each value to the nearest
// code of its slot's map (ties to the larger code; on the signed map a value never takes a code
// of the other sign). A block of a small tensor keeps f32 state.

// The header, in the place of the f32 kernels' arena: the rows this launch covers (row0 and
// n after it), the parameter and gradient offsets, the lengths of the absmax and small-state
// regions (per slot), the code offset in words, and flags: bit 0 maximize, bits 1-2 the slots
// kept, bit 4 + k slot k on the signed map. When the arena is larger than one binding the host
// launches a chunk of rows at a time with sub-ranges bound and p_off, g_off and code_off
// rebased (they may wrap below zero: u32 addition wraps back into the bound range).
struct Arena {
    n: u32, p_off: u32, g_off: u32, quantized: u32,
    small: u32, code_off: u32, row0: u32, flags: u32,
}

struct Update { p: f32, s: vec3<f32> }

@group(0) @binding(1) var<storage, read_write> PARAM: array<f32>;
@group(0) @binding(2) var<storage, read> GRAD: array<f32>;
@group(0) @binding(3) var<storage, read_write> CODE0: array<u32>;
@group(0) @binding(4) var<storage, read_write> CODE1: array<u32>;
@group(0) @binding(5) var<storage, read_write> CODE2: array<u32>;
@group(0) @binding(6) var<storage, read_write> ABSMAX: array<f32>;
@group(0) @binding(7) var<storage, read_write> SMALL: array<f32>;
// The signed map, its thresholds, the unsigned map, its thresholds (256 words each), then
// [start, len, index, kind] per block (kind 0: quantized, index = absmax slot; kind 1: f32
// state, index = offset in the small region).
@group(0) @binding(8) var<storage, read> TABLE: array<u32>;

const SMAP: u32 = 0u;
const STHR: u32 = 256u;
const UMAP: u32 = 512u;
const UTHR: u32 = 768u;
const ROWS: u32 = 1024u;

var<workgroup> RED: array<vec3<f32>, 64>;

fn slot_count() -> u32 { return (P.arena.flags >> 1u) & 3u; }
fn signed_slot(k: u32) -> bool { return ((P.arena.flags >> (4u + k)) & 1u) != 0u; }

fn map_value(base: u32, c: u32) -> f32 { return bitcast<f32>(TABLE[base + c]); }

// How many thresholds (ascending, the last +inf) are at or below x: its nearest code.
fn nearest(thr: u32, x: f32) -> u32 {
    var c = 0u;
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (bitcast<f32>(TABLE[thr + c + s - 1u]) <= x) { c = c + s; }
    }
    return c;
}

// A code of the signed map: the nearest, then the sign rule.
fn code_signed(x0: f32) -> u32 {
    let x = clamp(x0, -1.0, 1.0);
    var c = nearest(STHR, x);
    let v = map_value(SMAP, c);
    if (x > 0.0 && v < 0.0) { c = c + 1u; } else if (x < 0.0 && v > 0.0) { c = c - 1u; }
    return c;
}

fn code_unsigned(x: f32) -> u32 { return nearest(UTHR, clamp(x, 0.0, 1.0)); }

fn decode(k: u32, c: u32) -> f32 {
    if (signed_slot(k)) { return map_value(SMAP, c); }
    return map_value(UMAP, c);
}

fn encode(k: u32, x: f32) -> u32 {
    if (signed_slot(k)) { return code_signed(x); }
    return code_unsigned(x);
}

fn code_word(k: u32, w: u32) -> u32 {
    if (k == 0u) { return CODE0[w]; }
    if (k == 1u) { return CODE1[w]; }
    return CODE2[w];
}

fn set_code_word(k: u32, w: u32, v: u32) {
    if (k == 0u) { CODE0[w] = v; } else if (k == 1u) { CODE1[w] = v; } else { CODE2[w] = v; }
}

@compute @workgroup_size(64)
fn step_8bit(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let a = P.arena;
    let b = wid.y * nwg.x + wid.x;
    let t = lid.x;
    let slots = slot_count();
    var row = vec4<u32>(0u, 0u, 0u, 1u);
    if (b < a.n) {
        let r = ROWS + 4u * (a.row0 + b);
        row = vec4<u32>(TABLE[r], TABLE[r + 1u], TABLE[r + 2u], TABLE[r + 3u]);
    }
    let start = row.x;
    let len = row.y;
    let index = row.z;
    let quantized = row.w == 0u;
    let word = start / 4u + t + a.code_off;
    let mine = 4u * t < len;
    var cw = vec3<u32>(0u);
    var am = vec3<f32>(0.0);
    if (quantized && mine) {
        for (var k = 0u; k < slots; k = k + 1u) {
            cw[k] = code_word(k, word);
            am[k] = ABSMAX[k * a.quantized + index];
        }
    }
    var vals: array<vec4<f32>, 3>;
    var mx = vec3<f32>(0.0);
    for (var e = 0u; e < 4u; e = e + 1u) {
        let el = 4u * t + e;
        if (el < len) {
            let i = start + el;
            var s = vec3<f32>(0.0);
            for (var k = 0u; k < slots; k = k + 1u) {
                if (quantized) {
                    s[k] = decode(k, (cw[k] >> (8u * e)) & 0xFFu) * am[k];
                } else {
                    s[k] = SMALL[k * a.small + index + el];
                }
            }
            var g = GRAD[a.g_off + i];
            if ((a.flags & 1u) != 0u) { g = -g; }
            let u = update(P.h, PARAM[a.p_off + i], g, s);
            PARAM[a.p_off + i] = u.p;
            for (var k = 0u; k < slots; k = k + 1u) {
                if (!quantized) { SMALL[k * a.small + index + el] = u.s[k]; }
                vals[k][e] = u.s[k];
            }
            mx = max(mx, abs(u.s));
        }
    }
    RED[t] = mx;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s >> 1u) {
        if (t < s) { RED[t] = max(RED[t], RED[t + s]); }
        workgroupBarrier();
    }
    let top = RED[0];
    if (quantized && mine) {
        for (var k = 0u; k < slots; k = k + 1u) {
            if (t == 0u) { ABSMAX[k * a.quantized + index] = top[k]; }
            var out = 0u;
            for (var e = 0u; e < 4u; e = e + 1u) {
                var x = 0.0;
                if (4u * t + e < len && top[k] > 0.0) { x = vals[k][e] / top[k]; }
                out = out | (encode(k, x) << (8u * e));
            }
            set_code_word(k, word, out);
        }
    }
}
