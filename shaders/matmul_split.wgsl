// The second pass of a split-K matmul (matmul.wgsl with k_split > 0): each output element adds
// its splits' partial sums in split order 0, 1, …, so the result does not depend on how the
// first pass was scheduled, then applies the epilogue as matmul.wgsl does:
//   C = act(sum ⊙ act_grad'(Y) + bias), and the TN form's column sums, added the same way.
// One invocation per element of C (and per column sum: max(m·n, m) invocations).

struct MatmulSplitParams {
    m: u32, n: u32, splits: u32, part_off: u32,
    part_colsum_off: u32, out_off: u32, bias_off: u32, y_off: u32,
    colsum_off: u32, has_bias: u32, act: u32, grad_act: u32,
    has_colsum: u32, pad0: u32, pad1: u32, pad2: u32,
}

@group(0) @binding(0) var<uniform> P: MatmulSplitParams;
@group(0) @binding(1) var<storage, read> PARTS: array<f32>;
@group(0) @binding(2) var<storage, read> BIAS: array<f32>;
@group(0) @binding(3) var<storage, read> Y: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;
@group(0) @binding(5) var<storage, read_write> COLSUM: array<f32>;

@compute @workgroup_size(256)
fn split_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_index(wid, nwg, lid);
    let mn = P.m * P.n;
    if (e < mn) {
        var z = 0.0;
        for (var s = 0u; s < P.splits; s++) { z += PARTS[P.part_off + s * mn + e]; }
        let j = e % P.n;
        if (P.grad_act > 0u) { z *= act_grad(P.grad_act - 1u, Y[P.y_off + e]); }
        if (P.has_bias == 1u) { z += BIAS[P.bias_off + j]; }
        C[P.out_off + e] = act_apply(P.act, z);
    }
    if (P.has_colsum == 1u && e < P.m) {
        var t = 0.0;
        for (var s = 0u; s < P.splits; s++) { t += PARTS[P.part_colsum_off + s * P.m + e]; }
        COLSUM[P.colsum_off + e] = t;
    }
}
