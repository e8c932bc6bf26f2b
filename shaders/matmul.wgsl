// C (m×n) = op(A)·op(B) in three forms, with a fused epilogue:
//   C = act((A·B) ⊙ act_grad'(Y) + bias), and for the TN form optionally the column sums of
//   the stored A (the bias gradient when A is dY in dW = dYᵀ·X).
// form 0: A m×k, B k×n; form 1 (A·Bᵀ): B stored n×k; form 2 (Aᵀ·B): A stored k×m.
// A 16×16 workgroup computes a 64×64 tile of C from 64×16 / 16×64 tiles in workgroup memory,
// 4×4 outputs per invocation. Every load and store is bounds-checked, so any shape works.
// The uniform and the epilogue's bindings are in matmul_params.wgsl, placed first. The tile
// loads come from one of two files placed after this one: matmul_load_scalar.wgsl (after
// matmul_elements.wgsl: any shape and offset) or matmul_load_vec4.wgsl (one vec4 per
// invocation and operand, when the contiguous dimension of each operand and its offset are
// multiples of 4).
// Split-K (k_split > 0): workgroup z sums only the inner elements [z·k_split, (z+1)·k_split)
// (k_split a multiple of TK, so every tile but the last one's lies inside its split) and writes
// the raw sums, with no epilogue, to split z's slab of C and of COLSUM; matmul_split.wgsl adds
// the slabs in split order and applies the epilogue. The same inputs give the same bits.
// Batched (k_split 0, grid z > 1): workgroup z computes member z of a batch of products laid
// out one after another (batch_bases in matmul_params.wgsl); the host gives them no epilogue.

const TILE: u32 = 64u;
const TK: u32 = 16u;
var<workgroup> As: array<f32, 1024>; // As[p * 64 + i]
var<workgroup> Bs: array<f32, 1024>; // Bs[p * 64 + j]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let t = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;
    var asum: array<f32, 4>;
    let want_colsum = P.has_colsum == 1u && wid.x == 0u && lid.x == 0u;
    let split = P.k_split > 0u;
    let k_begin = select(0u, wid.z * P.k_split, split);
    let k_end = select(P.k, min(k_begin + P.k_split, P.k), split);
    batch_bases(select(wid.z, 0u, split));
    for (var k0 = k_begin; k0 < k_end; k0 += TK) {
        load_tiles(t, row0, col0, k0);
        workgroupBarrier();
        for (var p = 0u; p < TK; p++) {
            let a0 = As[p * TILE + lid.y * 4u];
            let a1 = As[p * TILE + lid.y * 4u + 1u];
            let a2 = As[p * TILE + lid.y * 4u + 2u];
            let a3 = As[p * TILE + lid.y * 4u + 3u];
            let av = array<f32, 4>(a0, a1, a2, a3);
            for (var c = 0u; c < 4u; c++) {
                let b = Bs[p * TILE + lid.x * 4u + c];
                acc[c] += a0 * b;
                acc[4u + c] += a1 * b;
                acc[8u + c] += a2 * b;
                acc[12u + c] += a3 * b;
            }
            if (want_colsum) {
                for (var r = 0u; r < 4u; r++) { asum[r] += av[r]; }
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < 4u; r++) {
        let i = row0 + lid.y * 4u + r;
        if (i >= P.m) { continue; }
        for (var c = 0u; c < 4u; c++) {
            let j = col0 + lid.x * 4u + c;
            if (j >= P.n) { continue; }
            var z = acc[r * 4u + c];
            if (split) {
                C[P.out_off + wid.z * P.m * P.n + i * P.n + j] = z;
                continue;
            }
            if (P.grad_act > 0u) { z *= act_grad(P.grad_act - 1u, Y[P.y_off + i * P.n + j]); }
            if (P.has_bias == 1u) { z += BIAS[P.bias_off + j]; }
            C[c_base + i * P.n + j] = act_apply(P.act, z);
        }
        if (want_colsum) { COLSUM[P.colsum_off + wid.z * P.m + i] = asum[r]; }
    }
}
