
// Adafactor's statistics as bfloat16, two a word (appended to shaders/adafactor.wgsl):
// statistic i is the low half of word i / 2 when i is even, the high half when odd. The two
// halves of a word may belong to different invocations or workgroups of one pass (neighbouring
// rows, columns or vector elements), so a store replaces its half with two atomic operations
// that leave the other half alone; a load reads the word atomically. Stores round to nearest,
// ties to even, as the other optimizers' bfloat16 state does (shaders/optim.wgsl).
@group(0) @binding(3) var<storage, read_write> STATE: array<atomic<u32>>;

fn st(i: u32) -> f32 {
    let w = atomicLoad(&STATE[i >> 1u]);
    if ((i & 1u) == 0u) { return bitcast<f32>(w << 16u); }
    return bitcast<f32>(w & 0xFFFF0000u);
}

fn st_set(i: u32, x: f32) {
    let b = bitcast<u32>(x);
    let h = (b + 0x7FFFu + ((b >> 16u) & 1u)) >> 16u;
    let shift = (i & 1u) * 16u;
    atomicAnd(&STATE[i >> 1u], ~(0xFFFFu << shift));
    atomicOr(&STATE[i >> 1u], h << shift);
}
