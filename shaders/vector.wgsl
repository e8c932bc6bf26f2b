// Whole-vector operations a step composes (Muon's Newton-Schulz, and later gradient clipping):
//   sumsq_partial, inv_norm  Y[s_off] = 1 / max(||X[x_off..x_off+n]||_2, eps), in two passes:
//             each of up to 256 workgroups sums the squares of its stride of X into a partial (a
//             fixed-order tree), then one workgroup sums the partials and takes the inverse root
//   clip_coef the same two passes, then Y[s_off] = ||X||_2, Y[s_off + 1] = min(1, alpha / (||X||_2 + 1e-6))
//   scale_by  Y[y_off + i] *= X[s_off] (a device scalar, as inv_norm leaves it)
// Batched (Muon's same-shaped matrices): the grid's y counts members of n elements laid out one
// after another. sumsq_partial's workgroup (x, y) writes partial x of member y, inv_norm's
// workgroup y reads member y's n partials and writes Y[s_off + y], and scale_by scales element i
// by X[s_off + i / member_len]. One member is the unbatched op.
//   axpby     Y[y_off + i] = alpha * X[x_off + i] + beta * Y[y_off + i]
//   clamp     Y[y_off + i] = min(max(Y[y_off + i], alpha), beta), a NaN kept (torch.clamp)
// The rayon twins are in src/backend/cpu/vector.rs.

struct VectorParams {
    n: u32, x_off: u32, y_off: u32, s_off: u32,
    alpha: f32, beta: f32, eps: f32, member_len: u32,
}

@group(0) @binding(0) var<uniform> P: VectorParams;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

var<workgroup> RED: array<f32, 256>;

// The workgroup's sum of RED (a tree over its 256 invocations), in RED[0].
fn reduce(t: u32) {
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (t < s) { RED[t] = RED[t] + RED[t + s]; }
        workgroupBarrier();
    }
}

// Workgroup w of G (the grid's size): the squares of X[i] for i = w·256 + t, stepping by
// G·256, into Y[y_off + w].
@compute @workgroup_size(256)
fn sumsq_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.x;
    let stride = nwg.x * 256u;
    let base = P.x_off + wid.y * P.n;
    var acc = 0.0;
    for (var i = wid.x * 256u + t; i < P.n; i = i + stride) {
        let x = X[base + i];
        acc = acc + x * x;
    }
    RED[t] = acc;
    reduce(t);
    if (t == 0u) { Y[P.y_off + wid.y * nwg.x + wid.x] = RED[0]; }
}

// The second pass of inv_norm and clip_coef (one workgroup per member): the n partials of X
// from `base` summed, in RED[0].
fn sum_partials(t: u32, base: u32) {
    var acc = 0.0;
    for (var i = t; i < P.n; i = i + 256u) { acc = acc + X[base + i]; }
    RED[t] = acc;
    reduce(t);
}

// Y[s_off + member] = 1 / max(sqrt(sum), eps).
@compute @workgroup_size(256)
fn inv_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    sum_partials(lid.x, P.x_off + wid.y * P.n);
    if (lid.x == 0u) { Y[P.s_off + wid.y] = 1.0 / max(sqrt(RED[0]), P.eps); }
}

// Y[s_off] = ||x||_2 and Y[s_off + 1] = min(1, alpha / (||x||_2 + 1e-6)): PyTorch's
// clip_grad_norm_ coefficient (max_norm = alpha).
@compute @workgroup_size(256)
fn clip_coef(@builtin(local_invocation_id) lid: vec3<u32>) {
    sum_partials(lid.x, P.x_off);
    if (lid.x == 0u) {
        let norm = sqrt(RED[0]);
        Y[P.s_off] = norm;
        Y[P.s_off + 1u] = min(P.alpha / (norm + 1e-6), 1.0);
    }
}

@compute @workgroup_size(256)
fn scale_by(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.n) { return; }
    Y[P.y_off + i] = Y[P.y_off + i] * X[P.s_off + i / P.member_len];
}

@compute @workgroup_size(256)
fn axpby(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.n) { return; }
    Y[P.y_off + i] = P.alpha * X[P.x_off + i] + P.beta * Y[P.y_off + i];
}

// X is bound but unread: the entry shares the module's layout.
@compute @workgroup_size(256)
fn clamp_values(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.n) { return; }
    let y = Y[P.y_off + i];
    // WGSL leaves min and max of a NaN unspecified: keep a NaN as it is, as torch.clamp does.
    Y[P.y_off + i] = select(min(max(y, P.alpha), P.beta), y, is_nan(y));
}
