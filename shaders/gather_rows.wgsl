// Rows of an f32 matrix kept on the device, picked by an index list (an f32 dataset's batch):
//   DST[dst_off + r·cols + c] = SRC[src_off + INDICES[start + r]·cols + c]
// An index past the matrix's `rows` writes NaN to its row rather than read another tensor.
// The rayon twin is gather_rows in src/backend/cpu/mod.rs.

struct GatherRowsParams {
    count: u32, cols: u32, start: u32, rows: u32,
    src_off: u32, dst_off: u32, pad0: u32, pad1: u32,
}

@group(0) @binding(0) var<uniform> P: GatherRowsParams;
@group(0) @binding(1) var<storage, read> SRC: array<f32>;
@group(0) @binding(2) var<storage, read> INDICES: array<u32>;
@group(0) @binding(3) var<storage, read_write> DST: array<f32>;

@compute @workgroup_size(256)
fn gather_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.count * P.cols) { return; }
    let r = i / P.cols;
    let c = i % P.cols;
    let row = INDICES[P.start + r];
    var v = nan_f32();
    if (row < P.rows) { v = SRC[P.src_off + row * P.cols + c]; }
    DST[P.dst_off + i] = v;
}
