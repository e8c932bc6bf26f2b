// Dropout, forward and backward (the gradient is the same product with the same mask):
//   Y[y_off + i] = X[x_off + i] * (scale if element first + i is kept, else 0)
// Element e is kept when the top 24 bits of word e mod 4 of Philox4x32-10 (Random123's
// definition) at counter (e / 4, 0, offset_lo, offset_hi) and key (key_lo, key_hi) are at least
// `threshold` (= ceil(p * 2^24)). Integer arithmetic up to that decision, so the mask is the
// rayon twin's (src/backend/cpu/dropout.rs) bit for bit. Each invocation draws one Philox block
// for four elements; `first` (a multiple of 4) is where this dispatch's chunk starts.

struct DropoutParams {
    n: u32, x_off: u32, y_off: u32, first: u32,
    key_lo: u32, key_hi: u32, offset_lo: u32, offset_hi: u32,
    threshold: u32, scale: f32, pad0: u32, pad1: u32,
}

@group(0) @binding(0) var<uniform> P: DropoutParams;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

// The high and low words of a * b (WGSL has no 64-bit integers): 16-bit halves, whose middle
// sum cannot overflow (at most 0xffff + 0xffff + 0xfffe0001).
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let al = a & 0xffffu;
    let ah = a >> 16u;
    let bl = b & 0xffffu;
    let bh = b >> 16u;
    let ll = al * bl;
    let hl = ah * bl;
    let lh = al * bh;
    let mid = (ll >> 16u) + (hl & 0xffffu) + lh;
    return vec2<u32>(ah * bh + (hl >> 16u) + (mid >> 16u), a * b);
}

fn philox4x32_10(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = ctr;
    var k = key;
    for (var r = 0u; r < 10u; r = r + 1u) {
        if (r > 0u) {
            k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
        }
        let p0 = mulhilo(0xD2511F53u, c.x);
        let p1 = mulhilo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    }
    return c;
}

@compute @workgroup_size(256)
fn dropout(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i0 = flat_index(wid, nwg, lid) * 4u;
    if (i0 >= P.n) { return; }
    let block = (P.first + i0) >> 2u;
    let words = philox4x32_10(vec4<u32>(block, 0u, P.offset_lo, P.offset_hi), vec2<u32>(P.key_lo, P.key_hi));
    for (var j = 0u; j < 4u; j = j + 1u) {
        let i = i0 + j;
        if (i >= P.n) { break; }
        let keep = (words[j] >> 8u) >= P.threshold;
        Y[P.y_off + i] = X[P.x_off + i] * select(0.0, P.scale, keep);
    }
}
