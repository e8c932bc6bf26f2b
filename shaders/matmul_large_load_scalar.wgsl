// Scalar loads for matmul_large.wgsl (from matmul_elements.wgsl's a_at and b_at): any shape,
// any offset.

// The four values invocation t loads of each operand's k-step k0: for A (stored k×m in form
// 2) four consecutive rows at one p, else four consecutive p at one row; for B likewise along
// whichever dimension is contiguous. Returned in load order; `store_tiles` places them.
fn load_a(t: u32, row0: u32, k0: u32) -> vec4<f32> {
    if (P.form == 2u) {
        let p = t / 32u;
        let i = (t % 32u) * 4u;
        return vec4<f32>(a_at(row0 + i, k0 + p), a_at(row0 + i + 1u, k0 + p),
                         a_at(row0 + i + 2u, k0 + p), a_at(row0 + i + 3u, k0 + p));
    }
    let i = t / 2u;
    let p = (t % 2u) * 4u;
    return vec4<f32>(a_at(row0 + i, k0 + p), a_at(row0 + i, k0 + p + 1u),
                     a_at(row0 + i, k0 + p + 2u), a_at(row0 + i, k0 + p + 3u));
}

fn load_b(t: u32, col0: u32, k0: u32) -> vec4<f32> {
    if (P.form == 1u) {
        let j = t / 2u;
        let p = (t % 2u) * 4u;
        return vec4<f32>(b_at(k0 + p, col0 + j), b_at(k0 + p + 1u, col0 + j),
                         b_at(k0 + p + 2u, col0 + j), b_at(k0 + p + 3u, col0 + j));
    }
    let p = t / 32u;
    let j = (t % 32u) * 4u;
    return vec4<f32>(b_at(k0 + p, col0 + j), b_at(k0 + p, col0 + j + 1u),
                     b_at(k0 + p, col0 + j + 2u), b_at(k0 + p, col0 + j + 3u));
}
