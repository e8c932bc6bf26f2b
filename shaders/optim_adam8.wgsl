// bitsandbytes' blockwise 8-bit Adam and AdamW (src/backend/quant.rs has the layout; the rayon
// twin is cpu_optim::apply_blockwise8). Appended: optim_adam.wgsl, whose `update` is the
// formula, the same as the f32 and bf16 kernels'.
//
// One workgroup per row of the block table: up to 256 consecutive elements of one tensor, four
// per invocation (one 32-bit word of codes). A quantized block dequantizes exp_avg and
// exp_avg_sq (code value times the block's absmax), updates them and the parameter in f32,
// finds the block's new absmax by a workgroup reduction, and requantizes each value to the
// nearest code (ties to the larger code; exp_avg never takes a code of the other sign). A block
// of a small tensor keeps f32 state.

// The header, in the place of the f32 kernels' arena: the rows this launch covers (row0 and
// n after it), the parameter and gradient offsets, the lengths of the absmax and small-state
// regions, and the code offset in words. When the arena is larger than one binding the host
// launches a chunk of rows at a time with sub-ranges bound and p_off, g_off and code_off
// rebased (they may wrap below zero: u32 addition wraps back into the bound range).
struct Arena {
    n: u32, p_off: u32, g_off: u32, quantized: u32,
    small: u32, code_off: u32, row0: u32, maximize: u32,
}

struct Update { p: f32, s: vec3<f32> }

@group(0) @binding(1) var<storage, read_write> PARAM: array<f32>;
@group(0) @binding(2) var<storage, read> GRAD: array<f32>;
@group(0) @binding(3) var<storage, read_write> MCODE: array<u32>;
@group(0) @binding(4) var<storage, read_write> VCODE: array<u32>;
@group(0) @binding(5) var<storage, read_write> ABSMAX: array<f32>;
@group(0) @binding(6) var<storage, read_write> SMALL: array<f32>;
// The signed map, its thresholds, the unsigned map, its thresholds (256 words each), then
// [start, len, index, kind] per block (kind 0: quantized, index = absmax slot; kind 1: f32
// state, index = offset in the small region).
@group(0) @binding(7) var<storage, read> TABLE: array<u32>;

const SMAP: u32 = 0u;
const STHR: u32 = 256u;
const UMAP: u32 = 512u;
const UTHR: u32 = 768u;
const ROWS: u32 = 1024u;

var<workgroup> RED: array<vec2<f32>, 64>;

fn map_value(base: u32, c: u32) -> f32 { return bitcast<f32>(TABLE[base + c]); }

// How many thresholds (ascending, the last +inf) are at or below x: its nearest code.
fn nearest(thr: u32, x: f32) -> u32 {
    var c = 0u;
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (bitcast<f32>(TABLE[thr + c + s - 1u]) <= x) { c = c + s; }
    }
    return c;
}

// exp_avg's code: the nearest, then the sign rule.
fn code_m(x0: f32) -> u32 {
    let x = clamp(x0, -1.0, 1.0);
    var c = nearest(STHR, x);
    let v = map_value(SMAP, c);
    if (x > 0.0 && v < 0.0) { c = c + 1u; } else if (x < 0.0 && v > 0.0) { c = c - 1u; }
    return c;
}

fn code_v(x: f32) -> u32 { return nearest(UTHR, clamp(x, 0.0, 1.0)); }

@compute @workgroup_size(64)
fn adam8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let a = P.arena;
    let b = wid.y * nwg.x + wid.x;
    let t = lid.x;
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
    var mw = 0u;
    var vw = 0u;
    var am = 0.0;
    var av = 0.0;
    if (quantized && mine) {
        mw = MCODE[word];
        vw = VCODE[word];
        am = ABSMAX[index];
        av = ABSMAX[a.quantized + index];
    }
    var m = vec4<f32>(0.0);
    var v = vec4<f32>(0.0);
    var mx = vec2<f32>(0.0);
    for (var k = 0u; k < 4u; k = k + 1u) {
        let e = 4u * t + k;
        if (e < len) {
            let i = start + e;
            var s = vec3<f32>(0.0);
            if (quantized) {
                s.x = map_value(SMAP, (mw >> (8u * k)) & 0xFFu) * am;
                s.y = map_value(UMAP, (vw >> (8u * k)) & 0xFFu) * av;
            } else {
                s.x = SMALL[index + e];
                s.y = SMALL[a.small + index + e];
            }
            var g = GRAD[a.g_off + i];
            if (a.maximize != 0u) { g = -g; }
            let u = update(PARAM[a.p_off + i], g, s);
            PARAM[a.p_off + i] = u.p;
            if (!quantized) {
                SMALL[index + e] = u.s.x;
                SMALL[a.small + index + e] = u.s.y;
            }
            m[k] = u.s.x;
            v[k] = u.s.y;
            mx = max(mx, vec2<f32>(abs(u.s.x), u.s.y));
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
        if (t == 0u) {
            ABSMAX[index] = top.x;
            ABSMAX[a.quantized + index] = top.y;
        }
        var mo = 0u;
        var vo = 0u;
        for (var k = 0u; k < 4u; k = k + 1u) {
            var xm = 0.0;
            var xv = 0.0;
            if (4u * t + k < len) {
                if (top.x > 0.0) { xm = m[k] / top.x; }
                if (top.y > 0.0) { xv = v[k] / top.y; }
            }
            mo = mo | (code_m(xm) << (8u * k));
            vo = vo | (code_v(xv) << (8u * k));
        }
        MCODE[word] = mo;
        VCODE[word] = vo;
    }
}
