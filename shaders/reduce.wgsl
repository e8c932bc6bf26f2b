// Reductions: column or row sums of a rows×cols matrix (one invocation per column or row,
// times scale), column or row maxima (or the first maximum's index, as torch.max(dim) gives it;
// a NaN is the maximum, as in PyTorch) and the scaled sum of a vector in two passes: `sum_partial` (up to 256
// workgroups, grid-stride, one partial sum each) then `sum` (one workgroup, tree reduction in
// workgroup memory).

struct ReduceParams {
    n: u32, cols: u32, x_off: u32, out_off: u32,
    scale: f32, argmax: u32, pad1: u32, pad2: u32,
}

@group(0) @binding(0) var<uniform> P: ReduceParams;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> OUT: array<f32>;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn col_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = flat_index(wid, nwg, lid);
    if (c >= P.cols) { return; }
    let rows = P.n / P.cols;
    var s = 0.0;
    for (var r = 0u; r < rows; r++) { s += X[P.x_off + r * P.cols + c]; }
    OUT[P.out_off + c] = s * P.scale;
}

// Row sums (one invocation per row), times scale.
@compute @workgroup_size(256)
fn row_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, nwg, lid);
    let rows = P.n / P.cols;
    if (r >= rows) { return; }
    var s = 0.0;
    for (var c = 0u; c < P.cols; c++) { s += X[P.x_off + r * P.cols + c]; }
    OUT[P.out_off + r] = s * P.scale;
}

fn tree_reduce(lid: u32) {
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
        if (lid < w) { partial[lid] += partial[lid + w]; }
        workgroupBarrier();
    }
}

@compute @workgroup_size(256)
fn sum_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    var s = 0.0;
    let stride = nwg.x * 256u;
    for (var i = wid.x * 256u + lid.x; i < P.n; i += stride) { s += X[P.x_off + i]; }
    partial[lid.x] = s;
    tree_reduce(lid.x);
    if (lid.x == 0u) { OUT[P.out_off + wid.x] = partial[0]; }
}

@compute @workgroup_size(256)
fn sum(@builtin(local_invocation_id) lid: vec3<u32>) {
    var s = 0.0;
    for (var i = lid.x; i < P.n; i += 256u) { s += X[P.x_off + i]; }
    partial[lid.x] = s;
    tree_reduce(lid.x);
    if (lid.x == 0u) { OUT[P.out_off] = partial[0] * P.scale; }
}

// The running maximum over `count` elements of X from `first`, `step` apart: its value, or its
// index within the run when P.argmax is 1. The first of equal maxima wins; a NaN beats any number.
fn max_run(first: u32, count: u32, step: u32) -> f32 {
    var best = X[P.x_off + first];
    var at = 0u;
    for (var i = 1u; i < count; i++) {
        let v = X[P.x_off + first + i * step];
        if (!is_nan(best) && (is_nan(v) || v > best)) {
            best = v;
            at = i;
        }
    }
    return select(best, f32(at), P.argmax == 1u);
}

// Column maxima (one invocation per column).
@compute @workgroup_size(256)
fn max_cols(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = flat_index(wid, nwg, lid);
    if (c >= P.cols) { return; }
    OUT[P.out_off + c] = max_run(c, P.n / P.cols, P.cols);
}

// Row maxima (one invocation per row).
@compute @workgroup_size(256)
fn max_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_index(wid, nwg, lid);
    if (r >= P.n / P.cols) { return; }
    OUT[P.out_off + r] = max_run(r * P.cols, P.cols, 1u);
}
