// The large-tile matmul: the same product, forms and fused epilogue as matmul.wgsl (and the same
// uniform), for shapes with enough 128×128 tiles to fill a GPU. A 16×16 workgroup computes a
// 128×128 tile of C from 8-deep k-steps; each invocation owns 8×8 outputs, rows
// {ty·4 + r, 64 + ty·4 + r} and columns {tx·4 + c, 64 + tx·4 + c}, so that its reads of the
// k-major shared tiles are two vec4 loads per operand, consecutive across invocations (no bank
// conflicts). The next k-step's tiles are loaded into registers while this one is multiplied.
// Every global load and store is guarded against m, k and n, so any shape and offset works.
// Split-K (P.k_split) is not used here: the host never splits a large-tile product. A batched
// product runs member wid.z (batch_bases in matmul_params.wgsl). Placed
// after matmul_params.wgsl (the uniform, the epilogue's bindings).

const BM: u32 = 128u;
const BK: u32 = 8u;
// k-major tiles of vec4s: As4[p * 32 + i / 4][i % 4] is op(A)[row0 + i][k0 + p].
var<workgroup> As4: array<vec4<f32>, 256>;
var<workgroup> Bs4: array<vec4<f32>, 256>;

// load_a and load_b (the four values invocation t loads of each operand's k-step k0, in the
// order store_tiles places them) come from one of two files placed after this one:
// matmul_large_load_scalar.wgsl (after matmul_elements.wgsl: any shape and offset) or
// matmul_large_load_vec4.wgsl (one vec4 per operand, where the contiguous dimension of each
// stored operand and its offset are multiples of 4).

fn store_tiles(t: u32, va: vec4<f32>, vb: vec4<f32>) {
    if (P.form == 2u) {
        As4[t] = va; // p = t / 32, rows (t % 32)·4 … +3: one vec4 of the k-major tile
    } else {
        let i = t / 2u;
        let p = (t % 2u) * 4u;
        for (var c = 0u; c < 4u; c++) { As4[(p + c) * 32u + i / 4u][i % 4u] = va[c]; }
    }
    if (P.form == 1u) {
        let j = t / 2u;
        let p = (t % 2u) * 4u;
        for (var c = 0u; c < 4u; c++) { Bs4[(p + c) * 32u + j / 4u][j % 4u] = vb[c]; }
    } else {
        Bs4[t] = vb;
    }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * BM;
    let col0 = wid.x * BM;
    let t = lid.y * 16u + lid.x;
    batch_bases(wid.z);
    let tx = lid.x;
    let ty = lid.y;
    // acc[r * 2 + h]: row (r < 4 ? ty·4 + r : 64 + ty·4 + r − 4), columns h·64 + tx·4 … +3.
    var acc: array<vec4<f32>, 16>;
    var asum0 = vec4<f32>(0.0);
    var asum1 = vec4<f32>(0.0);
    let want_colsum = P.has_colsum == 1u && wid.x == 0u && tx == 0u;
    var va = load_a(t, row0, 0u);
    var vb = load_b(t, col0, 0u);
    let steps = (P.k + BK - 1u) / BK;
    for (var s = 0u; s < steps; s++) {
        store_tiles(t, va, vb);
        workgroupBarrier();
        if (s + 1u < steps) {
            va = load_a(t, row0, (s + 1u) * BK);
            vb = load_b(t, col0, (s + 1u) * BK);
        }
        for (var p = 0u; p < BK; p++) {
            let a0 = As4[p * 32u + ty];
            let a1 = As4[p * 32u + 16u + ty];
            let b0 = Bs4[p * 32u + tx];
            let b1 = Bs4[p * 32u + 16u + tx];
            acc[0] += a0.x * b0; acc[1] += a0.x * b1;
            acc[2] += a0.y * b0; acc[3] += a0.y * b1;
            acc[4] += a0.z * b0; acc[5] += a0.z * b1;
            acc[6] += a0.w * b0; acc[7] += a0.w * b1;
            acc[8] += a1.x * b0; acc[9] += a1.x * b1;
            acc[10] += a1.y * b0; acc[11] += a1.y * b1;
            acc[12] += a1.z * b0; acc[13] += a1.z * b1;
            acc[14] += a1.w * b0; acc[15] += a1.w * b1;
            if (want_colsum) { asum0 += a0; asum1 += a1; }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < 8u; r++) {
        let i = row0 + select(64u + ty * 4u + r - 4u, ty * 4u + r, r < 4u);
        if (i >= P.m) { continue; }
        for (var h = 0u; h < 2u; h++) {
            let v = acc[r * 2u + h];
            for (var c = 0u; c < 4u; c++) {
                let j = col0 + h * 64u + tx * 4u + c;
                if (j >= P.n) { continue; }
                var z = v[c];
                if (P.grad_act > 0u) { z *= act_grad(P.grad_act - 1u, Y[P.y_off + i * P.n + j]); }
                if (P.has_bias == 1u) { z += BIAS[P.bias_off + j]; }
                C[c_base + i * P.n + j] = act_apply(P.act, z);
            }
        }
        if (want_colsum) {
            let s = select(asum1[r % 4u], asum0[r % 4u], r < 4u);
            COLSUM[P.colsum_off + i] = s;
        }
    }
}
