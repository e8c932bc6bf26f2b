// Gather a mini-batch from a dataset kept on the device as bytes (packed four to a u32):
// x[r, c] = images[indices[start + r] * row_len + c] · scale, y[r] = labels[indices[start + r]].

struct Params {
    count: u32, row_len: u32, start: u32, x_off: u32,
    y_off: u32, scale: f32, pad0: u32, pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> IMAGES: array<u32>;
@group(0) @binding(2) var<storage, read> LABELS: array<u32>;
@group(0) @binding(3) var<storage, read> INDICES: array<u32>;
@group(0) @binding(4) var<storage, read_write> X: array<f32>;
@group(0) @binding(5) var<storage, read_write> Y: array<f32>;

fn byte_at(i: u32, which: u32) -> u32 {
    var word = 0u;
    if (which == 0u) { word = IMAGES[i / 4u]; } else { word = LABELS[i / 4u]; }
    return (word >> (8u * (i % 4u))) & 0xffu;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.count * P.row_len) { return; }
    let r = i / P.row_len;
    let c = i % P.row_len;
    let src = INDICES[P.start + r];
    X[P.x_off + i] = f32(byte_at(src * P.row_len + c, 0u)) * P.scale;
    if (c == 0u) { Y[P.y_off + r] = f32(byte_at(src, 1u)); }
}
