
// Adafactor's statistics as f32 values (appended to shaders/adafactor.wgsl).
@group(0) @binding(3) var<storage, read_write> STATE: array<f32>;

fn st(i: u32) -> f32 { return STATE[i]; }

fn st_set(i: u32, x: f32) { STATE[i] = x; }
