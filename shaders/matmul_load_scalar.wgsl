// Scalar tile loads for matmul.wgsl (from matmul_elements.wgsl's a_at and b_at): any shape,
// any offset.

// Fill As (64×16 of op(A)) and Bs (16×64 of op(B)) for the k-slice starting at k0: four
// elements per invocation and operand; neighbouring invocations read neighbouring addresses.
fn load_tiles(t: u32, row0: u32, col0: u32, k0: u32) {
    for (var e = 0u; e < 4u; e++) {
        let idx = t + e * 256u;
        var i = idx / TK;
        var p = idx % TK;
        if (P.form == 2u) { p = idx / TILE; i = idx % TILE; }
        As[p * TILE + i] = a_at(row0 + i, k0 + p);
        var j = idx % TILE;
        var q = idx / TILE;
        if (P.form == 1u) { j = idx / TK; q = idx % TK; }
        Bs[q * TILE + j] = b_at(k0 + q, col0 + j);
    }
}
