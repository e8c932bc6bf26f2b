// The bench's bandwidth reference: Y = scale · X, read and written as vec4s, several per
// invocation, with enough workgroups to fill the device: the streaming rate a well-written
// elementwise kernel reaches, which `bench optim` reports the optimizer steps against. The
// host launches ceil(n4 / PER) invocations; invocation t handles vec4s t, t + T, t + 2T, ...
// (T the invocations launched), so each round of loads is contiguous across the device.
// Offsets and the length are in vec4s (the views' elements are multiples of 4).

struct StreamParams { n4: u32, x_off4: u32, y_off4: u32, scale: f32 }

@group(0) @binding(0) var<uniform> P: StreamParams;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> Y: array<vec4<f32>>;

// vec4s per invocation.
const PER: u32 = 4u;

@compute @workgroup_size(256)
fn stream(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = flat_index(wid, nwg, lid);
    let total = nwg.x * nwg.y * 256u;
    for (var k = 0u; k < PER; k++) {
        let j = t + k * total;
        if (j < P.n4) {
            Y[P.y_off4 + j] = P.scale * X[P.x_off4 + j];
        }
    }
}
