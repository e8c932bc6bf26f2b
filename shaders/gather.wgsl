// Gather a mini-batch from a dataset kept on the device as bytes (packed four to a u32):
// x[r, c] = images[indices[start + r] * row_len + c] · scale, y[r] = labels[indices[start + r]].
// Images larger than one binding are bound as up to four chunks of `chunk_rows` rows each
// (IMAGES, IMAGES1, IMAGES2, IMAGES3); a row is read from the chunk that holds it. A dataset
// that fits binds the same buffer four times, with chunk_rows past its last row.

struct GatherParams {
    count: u32, row_len: u32, start: u32, x_off: u32,
    y_off: u32, scale: f32, chunk_rows: u32, pad1: u32,
}

@group(0) @binding(0) var<uniform> P: GatherParams;
@group(0) @binding(1) var<storage, read> IMAGES: array<u32>;
@group(0) @binding(6) var<storage, read> IMAGES1: array<u32>;
@group(0) @binding(7) var<storage, read> IMAGES2: array<u32>;
@group(0) @binding(8) var<storage, read> IMAGES3: array<u32>;
@group(0) @binding(2) var<storage, read> LABELS: array<u32>;
@group(0) @binding(3) var<storage, read> INDICES: array<u32>;
@group(0) @binding(4) var<storage, read_write> X: array<f32>;
@group(0) @binding(5) var<storage, read_write> Y: array<f32>;

fn byte_of(word: u32, i: u32) -> u32 {
    return (word >> (8u * (i % 4u))) & 0xffu;
}

// Byte c of image row `row`, from the chunk that holds the row.
fn pixel(row: u32, c: u32) -> u32 {
    let k = row / P.chunk_rows;
    let i = (row - k * P.chunk_rows) * P.row_len + c;
    var word = 0u;
    switch k {
        case 0u: { word = IMAGES[i / 4u]; }
        case 1u: { word = IMAGES1[i / 4u]; }
        case 2u: { word = IMAGES2[i / 4u]; }
        default: { word = IMAGES3[i / 4u]; }
    }
    return byte_of(word, i);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_index(wid, nwg, lid);
    if (i >= P.count * P.row_len) { return; }
    let r = i / P.row_len;
    let c = i % P.row_len;
    let src = INDICES[P.start + r];
    X[P.x_off + i] = f32(pixel(src, c)) * P.scale;
    if (c == 0u) { Y[P.y_off + r] = f32(byte_of(LABELS[src / 4u], src)); }
}
