//! Muon's Newton–Schulz iteration in bfloat16, as PyTorch runs it
//! (`torch.optim._muon._zeropower_via_newtonschulz`): the matrix is rounded to bfloat16 and
//! turned wide (rows ≤ cols), divided by its Frobenius norm (itself rounded to bfloat16,
//! floored at eps), then `steps` times S = X·Xᵀ, T = b·S + c·S·S, X ← a·X + T·X. Every product
//! multiplies bfloat16 operands, sums in f32, and rounds each op's result to bfloat16 once,
//! as `torch.addmm` does on bfloat16 tensors.
//!
//! Where the CPU has AVX-512 BF16 the products run on `vdpbf16ps` (two bfloat16 products per
//! f32 lane, twice the multiply-adds of an f32 FMA), the matrices kept as bfloat16 pairs. Elsewhere
//! the operands are widened to f32 and multiplied through the `gemm` crate: the same values
//! rounded at the same points, the f32 sums in another order. Either way each output element is
//! summed by one thread in a fixed order, so the result does not depend on the thread count.

use super::gram::{gram, mirror_lower};
use super::matmul::gemm_crate;
use crate::backend::ops::{Dims, Form, NewtonSchulz};
use crate::backend::quant::{bf16_from_f32, bf16_to_f32};

/// A bfloat16 matrix, row-major, each row padded to an even length: word `p` of a row holds
/// columns 2p (low half) and 2p + 1 (high half), the pair `vdpbf16ps` multiplies at once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pairs {
    rows: usize,
    cols: usize,
    /// Words per row.
    kp: usize,
    w: Vec<u32>,
}

impl Pairs {
    fn zeros(rows: usize, cols: usize) -> Pairs {
        let kp = cols.div_ceil(2);
        Pairs { rows, cols, kp, w: vec![0; rows * kp] }
    }

    /// Element (r, c) as bfloat16 bits.
    #[cfg(test)]
    fn get(&self, r: usize, c: usize) -> u16 {
        (self.w[r * self.kp + c / 2] >> (16 * (c & 1))) as u16
    }

    fn set(&mut self, r: usize, c: usize, h: u16) {
        let (w, shift) = (&mut self.w[r * self.kp + c / 2], 16 * (c & 1));
        *w = (*w & !(0xFFFF << shift)) | (h as u32) << shift;
    }

    /// The `rows × cols` row-major `x` rounded to bfloat16, transposed first with `transpose`.
    pub fn from_f32(x: &[f32], rows: usize, cols: usize, transpose: bool) -> Pairs {
        let (r, c) = if transpose { (cols, rows) } else { (rows, cols) };
        let mut p = Pairs::zeros(r, c);
        for i in 0..rows {
            for j in 0..cols {
                let h = bf16_from_f32(x[i * cols + j]);
                if transpose {
                    p.set(j, i, h)
                } else {
                    p.set(i, j, h)
                }
            }
        }
        p
    }

    /// The matrix widened to f32 into the row-major `out`, transposed first with `transpose`.
    pub fn write_f32(&self, out: &mut [f32], transpose: bool) {
        let (rows, cols, stride) = (self.rows, self.cols, 2 * self.kp);
        let h = u16_ref(&self.w);
        if transpose {
            for_tiles(rows, cols, |i, j| out[j * rows + i] = bf16_to_f32(h[i * stride + j]));
        } else {
            for (row, src) in out.chunks_mut(cols).zip(h.chunks(stride)).take(rows) {
                for (o, &v) in row.iter_mut().zip(src) {
                    *o = bf16_to_f32(v);
                }
            }
        }
    }

    /// The matrix widened to a dense row-major f32 matrix in `out` (resized to fit).
    fn widen_into(&self, out: &mut Vec<f32>) {
        out.resize(self.rows * self.cols, 0.0);
        self.write_f32(out, false);
    }
}

/// `f(i, j)` for every i < rows, j < cols, in 32 × 32 tiles (a transpose's order: both the
/// rows and the columns it walks stay in cache).
fn for_tiles(rows: usize, cols: usize, mut f: impl FnMut(usize, usize)) {
    const TILE: usize = 32;
    for i0 in (0..rows).step_by(TILE) {
        for j0 in (0..cols).step_by(TILE) {
            for i in i0..(i0 + TILE).min(rows) {
                for j in j0..(j0 + TILE).min(cols) {
                    f(i, j)
                }
            }
        }
    }
}

/// How a product reads its right operand B.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Right {
    /// A·Bᵀ, B of n rows of k: a Gram product when B is A (or A is symmetric and B is A).
    Transposed,
    /// A·B, B of k rows of n.
    Plain,
}

/// One `torch.addmm` in bfloat16: round(alpha·A·op(B) + beta·add), the sums in f32. With
/// `symmetric`, which the caller knows (A·Aᵀ, or S·S for a symmetric S, read either way), only
/// the tiles up to the diagonal are multiplied and the rest mirrored, so the result is exactly
/// symmetric.
pub fn product(a: &Pairs, b: &Pairs, right: Right, symmetric: bool, alpha: f32, add: Option<(&Pairs, f32)>) -> Pairs {
    let n = if right == Right::Transposed { b.rows } else { b.cols };
    let mut out = Pairs::zeros(a.rows, n);
    product_into(Path::best(), a, b, right, symmetric, (alpha, add), &mut out, &mut Scratch::default());
    out
}

/// Which code computes a product's f32 sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// `vdpbf16ps` on bfloat16 pairs.
    Avx512Bf16,
    /// The operands widened to f32, through the `gemm` crate.
    Widened,
}

impl Path {
    /// The fastest path this CPU has.
    pub fn best() -> Path {
        if crate::backend::host::has_avx512_bf16() {
            Path::Avx512Bf16
        } else {
            Path::Widened
        }
    }

    /// Every path this CPU can run (for tests).
    pub fn available() -> Vec<Path> {
        let mut v = vec![Path::Widened];
        if crate::backend::host::has_avx512_bf16() {
            v.push(Path::Avx512Bf16);
        }
        v
    }
}

/// A product's epilogue: alpha, and the bfloat16 matrix added times beta.
type Mix<'a> = (f32, Option<(&'a Pairs, f32)>);

/// Scratch a product reuses from call to call: B's packing (AVX-512 BF16), or the operands
/// widened to f32 and the f32 sums (the widened path).
#[derive(Debug, Default)]
pub struct Scratch {
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    packed: Vec<u32>,
    wide_a: Vec<f32>,
    wide_b: Vec<f32>,
    sums: Vec<f32>,
}

/// [`product`] on a given path into `out` (already `m × n`, its padding zero), in `scratch`.
#[allow(clippy::too_many_arguments)]
pub fn product_into(
    path: Path,
    a: &Pairs,
    b: &Pairs,
    right: Right,
    symmetric: bool,
    mix: Mix,
    out: &mut Pairs,
    scratch: &mut Scratch,
) {
    let (m, k) = (a.rows, a.cols);
    let n = out.cols;
    assert!(out.rows == m && n == if right == Right::Transposed { b.rows } else { b.cols });
    assert_eq!(if right == Right::Transposed { b.cols } else { b.rows }, k);
    assert!(!symmetric || m == n);
    if let Some((c, _)) = mix.1 {
        assert!(c.rows == m && c.cols == n, "the matrix added is the product's shape");
    }
    if m == 0 || n == 0 {
        return;
    }
    match path {
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Bf16 if crate::backend::host::has_avx512_bf16() => {
            let packed = &mut scratch.packed;
            avx512::pack_right(b, right, a.kp, n, packed);
            // SAFETY: the CPU has AVX-512 F, BW and BF16 (`has_avx512_bf16`, checked just above,
            // implies all three); `packed` is B packed for a's kp and n columns, and the shapes
            // were checked above.
            unsafe { avx512::products_avx512(a, packed, symmetric, mix, out) }
        }
        _ => {
            sums_widened(a, b, right, symmetric, scratch);
            let (alpha, add) = mix;
            let stride = 2 * out.kp;
            let h = u16_mut(&mut out.w);
            for (i, row) in scratch.sums.chunks(n).enumerate() {
                let dst = &mut h[i * stride..i * stride + n];
                match add {
                    Some((c, beta)) => {
                        let src = &u16_ref(&c.w)[i * stride..i * stride + n];
                        for ((d, &v), &cv) in dst.iter_mut().zip(row).zip(src) {
                            *d = bf16_from_f32(alpha * v + beta * bf16_to_f32(cv));
                        }
                    }
                    None => {
                        for (d, &v) in dst.iter_mut().zip(row) {
                            *d = bf16_from_f32(alpha * v);
                        }
                    }
                }
            }
        }
    }
    if symmetric {
        mirror_lower(out.rows, 2 * out.kp, u16_mut(&mut out.w));
    }
}

/// The f32 sums into `scratch.sums` (m × n) through the `gemm` crate, from operands widened to
/// f32 (exact) in the scratch.
fn sums_widened(a: &Pairs, b: &Pairs, right: Right, symmetric: bool, scratch: &mut Scratch) {
    let Scratch { wide_a, wide_b, sums, .. } = scratch;
    let (m, k) = (a.rows, a.cols);
    let n = if right == Right::Transposed { b.rows } else { b.cols };
    a.widen_into(wide_a);
    sums.resize(m * n, 0.0);
    if symmetric {
        // A·Aᵀ; for S·S with S symmetric, S·Sᵀ is the same product.
        return gram(Form::NT, m, k, wide_a, sums);
    }
    b.widen_into(wide_b);
    match right {
        Right::Transposed => gemm_crate(Form::NT, Dims { m, k, n }, wide_a, wide_b, sums),
        Right::Plain => gemm_crate(Form::NN, Dims { m, k, n }, wide_a, wide_b, sums),
    }
}

/// A matrix's words as its bfloat16 values in row order (each word holds the even column in its
/// low half, so on a little-endian machine the halves are the columns in order).
fn u16_ref(w: &[u32]) -> &[u16] {
    #[cfg(target_endian = "little")]
    // SAFETY: u16 has a weaker alignment than u32, and 2·len u16 lie in len u32s.
    unsafe {
        std::slice::from_raw_parts(w.as_ptr() as *const u16, 2 * w.len())
    }
    #[cfg(target_endian = "big")]
    compile_error!("bfloat16 pairs assume a little-endian host")
}

/// A matrix's words as its bfloat16 values in row order, mutably (each word holds the even
/// column in its low half, so on a little-endian machine the halves are the columns in order).
fn u16_mut(w: &mut [u32]) -> &mut [u16] {
    #[cfg(target_endian = "little")]
    // SAFETY: u16 has a weaker alignment than u32, 2·len u16 lie in len u32s, and the borrow
    // is unique.
    unsafe {
        std::slice::from_raw_parts_mut(w.as_mut_ptr() as *mut u16, 2 * w.len())
    }
    #[cfg(target_endian = "big")]
    compile_error!("bfloat16 pairs assume a little-endian host")
}

/// The products on AVX-512 BF16: B packed in panels, tiles of `vdpbf16ps`, the epilogue in
/// registers.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{u16_ref, Mix, Pairs, Right};
    use crate::backend::cpu::matmul::PAR_MIN_MACS;
    use rayon::prelude::*;

    /// Rows of a tile of the AVX-512 BF16 kernel, and its columns (two 16-lane registers).
    const MR: usize = 8;
    const NR: usize = 32;

    /// B packed in panels of [`NR`] columns into `packed`: for each pair p of k, the panel's 32
    /// columns' pairs (B[2p][j] low, B[2p+1][j] high), zero past B's edges.
    pub(super) fn pack_right(b: &Pairs, right: Right, kp: usize, n: usize, packed: &mut Vec<u32>) {
        let panels = n.div_ceil(NR);
        // Every word of every panel is written below but the last panel's columns past n:
        // those are zeroed here.
        packed.resize(panels * kp * NR, 0);
        let last = (panels - 1) * kp * NR;
        for p in 0..kp {
            packed[last + p * NR + (n - (panels - 1) * NR)..last + (p + 1) * NR].fill(0);
        }
        match right {
            Right::Transposed => {
                for (pj, panel) in packed.chunks_mut(kp * NR).enumerate() {
                    for jj in 0..NR.min(n - pj * NR) {
                        let row = &b.w[(pj * NR + jj) * b.kp..][..kp];
                        for (p, &w) in row.iter().enumerate() {
                            panel[p * NR + jj] = w;
                        }
                    }
                }
            }
            Right::Plain => {
                // Rows 2p and 2p + 1 of B, interleaved column by column.
                let h = |r: usize| -> &[u16] { u16_ref(&b.w[r * b.kp..(r + 1) * b.kp]) };
                for p in 0..kp {
                    let lo = h(2 * p);
                    let hi = if 2 * p + 1 < b.rows { Some(h(2 * p + 1)) } else { None };
                    for (pj, panel) in packed.chunks_mut(kp * NR).enumerate() {
                        let cols = NR.min(n - pj * NR);
                        let dst = &mut panel[p * NR..p * NR + cols];
                        let lo = &lo[pj * NR..pj * NR + cols];
                        match hi {
                            Some(hi) => {
                                let hi = &hi[pj * NR..pj * NR + cols];
                                for ((d, &l), &h) in dst.iter_mut().zip(lo).zip(hi) {
                                    *d = l as u32 | (h as u32) << 16;
                                }
                            }
                            None => {
                                for (d, &l) in dst.iter_mut().zip(lo) {
                                    *d = l as u32;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The product on `vdpbf16ps`: row blocks of [`MR`] in parallel, each over B's panels (up to
    /// the diagonal when `symmetric`), the epilogue applied to each tile in registers.
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW and BF16; `packed` holds B in panels for `a.kp` pairs and
    /// `out.cols` columns, and `mix`'s matrix has out's shape.
    pub(super) unsafe fn products_avx512(a: &Pairs, packed: &[u32], symmetric: bool, mix: Mix, out: &mut Pairs) {
        let (m, kp, n, okp) = (a.rows, a.kp, out.cols, out.kp);
        let block = |(rb, dst): (usize, &mut [u32])| {
            let r0 = rb * MR;
            let rows = MR.min(m - r0);
            // The block's rows of A, copied and padded with zero rows to MR only in the last.
            let padded;
            let lhs: &[u32] = if rows == MR {
                &a.w[r0 * kp..(r0 + MR) * kp]
            } else {
                let mut v = vec![0u32; MR * kp];
                v[..rows * kp].copy_from_slice(&a.w[r0 * kp..(r0 + rows) * kp]);
                padded = v;
                &padded
            };
            let last_col = if symmetric { r0 + rows } else { n };
            for pj in 0..last_col.div_ceil(NR) {
                // Columns written, padding included (zero: B's packed padding is zero, so is add's).
                let cols = NR.min(2 * okp - pj * NR);
                let add = mix.1.map(|(c, beta)| (&c.w[r0 * okp + pj * NR / 2..], beta));
                // SAFETY: `lhs` holds MR rows of kp words and the panel kp·NR words; `dst` holds
                // `rows` rows of okp words and `add` the same from the block's first row, and the
                // tile's columns pj·NR.. pj·NR + cols lie within okp words (cols counts to 2·okp).
                unsafe {
                    tile_avx512(
                        kp,
                        lhs,
                        &packed[pj * kp * NR..(pj + 1) * kp * NR],
                        (rows, cols, okp),
                        (mix.0, add),
                        &mut dst[pj * NR / 2..],
                    )
                };
            }
        };
        let work = m * n * 2 * kp / if symmetric { 2 } else { 1 };
        if work < PAR_MIN_MACS || !crate::backend::host::may_fork() {
            out.w.chunks_mut(MR * okp).enumerate().for_each(block);
        } else {
            out.w.par_chunks_mut(MR * okp).enumerate().for_each(block);
        }
    }

    /// One MR × NR tile: the sums of `lhs` (MR rows of kp pairs) by `panel` (kp groups of NR
    /// pairs), then alpha·sum + beta·add rounded to bfloat16 and stored for the first `rows` rows
    /// and `cols` columns (`stride` words a row in `out` and `add`).
    ///
    /// # Safety
    /// The CPU must have AVX-512 F, BW and BF16; `lhs.len() >= MR·kp`, `panel.len() >= kp·NR`;
    /// `out` and `add` hold `rows` rows of `stride` words from their start, with `cols` ≤ 32
    /// columns (`cols / 2` words, rounded up) in each.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn tile_avx512(
        kp: usize,
        lhs: &[u32],
        panel: &[u32],
        (rows, cols, stride): (usize, usize, usize),
        (alpha, add): (f32, Option<(&[u32], f32)>),
        out: &mut [u32],
    ) {
        use std::arch::x86_64::*;
        debug_assert!(lhs.len() >= MR * kp && panel.len() >= kp * NR && cols <= NR);
        debug_assert!(out.len() >= (rows - 1) * stride + cols.div_ceil(2));
        let bh = |v: __m512i| -> __m512bh { std::mem::transmute::<__m512i, __m512bh>(v) };
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for p in 0..kp {
            let b0 = bh(_mm512_loadu_si512(panel.as_ptr().add(p * NR) as *const _));
            let b1 = bh(_mm512_loadu_si512(panel.as_ptr().add(p * NR + 16) as *const _));
            for (i, acc) in acc.iter_mut().enumerate() {
                let av = bh(_mm512_set1_epi32(*lhs.get_unchecked(i * kp + p) as i32));
                acc[0] = _mm512_dpbf16_ps(acc[0], av, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], av, b1);
            }
        }
        // The tile's columns as 16-bit lanes: a 32-bit mask over the bfloat16 row.
        let mask: __mmask32 = if cols == 32 { u32::MAX } else { (1u32 << cols) - 1 };
        let alpha = _mm512_set1_ps(alpha);
        for (i, acc) in acc.iter().enumerate().take(rows) {
            let mut lo = _mm512_mul_ps(alpha, acc[0]);
            let mut hi = _mm512_mul_ps(alpha, acc[1]);
            if let Some((c, beta)) = add {
                // 32 bfloat16 of the added row, widened (a bfloat16 is an f32's upper half).
                let h = _mm512_maskz_loadu_epi16(mask, c.as_ptr().add(i * stride) as *const i16);
                let wide_lo = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(h)), 16);
                let wide_hi = _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(h, 1)), 16);
                let beta = _mm512_set1_ps(beta);
                lo = _mm512_fmadd_ps(beta, _mm512_castsi512_ps(wide_lo), lo);
                hi = _mm512_fmadd_ps(beta, _mm512_castsi512_ps(wide_hi), hi);
            }
            let packed = _mm512_cvtne2ps_pbh(hi, lo);
            _mm512_mask_storeu_epi16(
                out.as_mut_ptr().add(i * stride) as *mut i16,
                mask,
                std::mem::transmute::<__m512bh, __m512i>(packed),
            );
        }
    }
}

/// The buffers one iteration runs in (X, S, T, the next X, B's packing), kept between calls
/// so that a step allocates (and the kernel zeroes) nothing after the first.
#[derive(Debug, Default)]
pub struct Workspace {
    x: Pairs,
    s: Pairs,
    t: Pairs,
    next: Pairs,
    scratch: Scratch,
    /// The matrix in its own orientation as bfloat16, before and after the iteration.
    flat: Vec<u16>,
}

impl Pairs {
    /// This buffer as a `rows × cols` matrix, its padding zero (its values unspecified).
    fn reshape(&mut self, rows: usize, cols: usize) {
        let kp = cols.div_ceil(2);
        *self = Pairs { rows, cols, kp, w: std::mem::take(&mut self.w) };
        self.w.resize(rows * kp, 0);
        if cols % 2 == 1 {
            for r in 0..rows {
                self.w[r * kp + kp - 1] &= 0xFFFF;
            }
        }
    }
}

/// PyTorch's Newton–Schulz in bfloat16 over the `rows × cols` row-major matrix `x`, in place:
/// `x` ends holding the bfloat16 result widened to f32.
pub fn newton_schulz_bf16(x: &mut [f32], rows: usize, cols: usize, ns: &NewtonSchulz) {
    newton_schulz_bf16_in(&mut Workspace::default(), Path::best(), x, rows, cols, ns)
}

/// [`newton_schulz_bf16`] on a given path, in the buffers of `ws`.
pub fn newton_schulz_bf16_in(
    ws: &mut Workspace,
    path: Path,
    x: &mut [f32],
    rows: usize,
    cols: usize,
    ns: &NewtonSchulz,
) {
    let tall = rows > cols;
    // The wide orientation (side ≤ n), rounded.
    let (side, n) = if tall { (cols, rows) } else { (rows, cols) };
    let Workspace { x: w, s, t, next, scratch, flat } = ws;
    w.reshape(side, n);
    let stride = 2 * w.kp;
    // Rounded in x's own order (a contiguous loop), then transposed as bfloat16 in tiles.
    flat.clear();
    flat.extend(x[..rows * cols].iter().map(|&v| bf16_from_f32(v)));
    let h = u16_mut(&mut w.w);
    if tall {
        for_tiles(rows, cols, |i, j| h[j * stride + i] = flat[i * cols + j]);
    } else {
        for (src, dst) in flat.chunks(cols).zip(h.chunks_mut(stride)) {
            dst[..cols].copy_from_slice(src);
        }
    }
    // X.div_(X.norm().clamp(min=eps)): the norm a bfloat16 scalar, the quotient rounded
    // (padding is zero, so it adds nothing to the norm and stays zero). Eight partial sums, so
    // the loop runs at the adder's throughput rather than its latency.
    let mut lanes = [0.0f64; 8];
    let chunks = flat.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&v| (bf16_to_f32(v) as f64).powi(2)).sum();
    for chunk in chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l += (bf16_to_f32(v) as f64).powi(2);
        }
    }
    let sq: f64 = lanes.iter().sum::<f64>() + tail;
    let norm = bf16_to_f32(bf16_from_f32(bf16_to_f32(bf16_from_f32(sq.sqrt() as f32)).max(ns.eps)));
    for v in h.iter_mut() {
        *v = bf16_from_f32(bf16_to_f32(*v) / norm);
    }
    let (a, b, c) = ns.coefficients;
    s.reshape(side, side);
    t.reshape(side, side);
    next.reshape(side, n);
    for _ in 0..ns.steps {
        product_into(path, w, w, Right::Transposed, true, (1.0, None), s, scratch);
        // S·S = S·Sᵀ: read plainly, S packs row by row (contiguous), not column by column.
        product_into(path, s, s, Right::Plain, true, (c, Some((s, b))), t, scratch);
        product_into(path, t, w, Right::Plain, false, (1.0, Some((w, a))), next, scratch);
        std::mem::swap(w, next);
    }
    // Back to x's orientation as bfloat16 in tiles, then widened in one contiguous loop.
    let h = u16_ref(&w.w);
    if tall {
        for_tiles(rows, cols, |i, j| flat[i * cols + j] = h[j * stride + i]);
    } else {
        for (dst, src) in flat.chunks_mut(cols).zip(h.chunks(stride)) {
            dst.copy_from_slice(&src[..cols]);
        }
    }
    for (o, &v) in x[..rows * cols].iter_mut().zip(flat.iter()) {
        *o = bf16_to_f32(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        crate::rng::Rng::new(seed).uniform_vec(n, -1.0, 1.0)
    }

    fn product_on(
        path: Path,
        a: &Pairs,
        b: &Pairs,
        right: Right,
        sym: bool,
        alpha: f32,
        add: Option<(&Pairs, f32)>,
    ) -> Pairs {
        let n = if right == Right::Transposed { b.rows } else { b.cols };
        // Poisoned (bfloat16 NaNs): every element must be written, and the packing scratch
        // holds stale words past what a product packs.
        let mut out = Pairs { w: vec![0x7FC0_7FC0; a.rows * n.div_ceil(2)], ..Pairs::zeros(a.rows, n) };
        if n % 2 == 1 {
            for r in 0..a.rows {
                out.set(r, n, 0);
            }
        }
        let mut scratch = Scratch {
            packed: vec![0x7FC0_7FC0; 1 << 16],
            wide_a: vec![f32::NAN; 1 << 14],
            wide_b: vec![f32::NAN; 1 << 14],
            sums: vec![f32::NAN; 1 << 14],
        };
        product_into(path, a, b, right, sym, (alpha, add), &mut out, &mut scratch);
        out
    }

    /// The product in f64 from the same bfloat16 operands, rounded once.
    fn product_f64(a: &Pairs, b: &Pairs, right: Right, alpha: f32, add: Option<(&Pairs, f32)>) -> Vec<f32> {
        let n = if right == Right::Transposed { b.rows } else { b.cols };
        let mut out = vec![0.0; a.rows * n];
        for i in 0..a.rows {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..a.cols {
                    let bv = if right == Right::Transposed { b.get(j, p) } else { b.get(p, j) };
                    s += bf16_to_f32(a.get(i, p)) as f64 * bf16_to_f32(bv) as f64;
                }
                let mut v = alpha as f64 * s;
                if let Some((c, beta)) = add {
                    v += beta as f64 * bf16_to_f32(c.get(i, j)) as f64;
                }
                out[i * n + j] = v as f32;
            }
        }
        out
    }

    /// Every path against PyTorch's own bfloat16 iteration (`tests/fixtures/muon_bf16_ns.json`):
    /// the same bfloat16 values but for a few sums that round the other way.
    #[test]
    fn every_path_matches_pytorch() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/muon_bf16_ns.json");
        let f: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let num = |v: &serde_json::Value| v.as_f64().unwrap() as f32;
        let c = f["ns_coefficients"].as_array().unwrap();
        let ns = NewtonSchulz {
            coefficients: (num(&c[0]), num(&c[1]), num(&c[2])),
            steps: f["ns_steps"].as_u64().unwrap(),
            eps: num(&f["eps"]),
        };
        for p in Path::available() {
            for case in f["cases"].as_array().unwrap() {
                let (rows, cols) = (case["rows"].as_u64().unwrap() as usize, case["cols"].as_u64().unwrap() as usize);
                let mut x: Vec<f32> = case["input"].as_array().unwrap().iter().map(num).collect();
                let torch: Vec<f32> = case["torch"].as_array().unwrap().iter().map(num).collect();
                newton_schulz_bf16_in(&mut Workspace::default(), p, &mut x, rows, cols, &ns);
                let same = x.iter().zip(&torch).filter(|(a, b)| a == b).count();
                let worst = x.iter().zip(&torch).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                eprintln!("{p:?} {rows}x{cols}: {same}/{} equal, max diff {worst}", x.len());
                assert!(same * 100 >= x.len() * 98, "{p:?} {rows}x{cols}: {same} of {} equal to PyTorch's", x.len());
                assert!(worst <= 1.0 / 128.0, "{p:?} {rows}x{cols}: {worst} from PyTorch's");
            }
        }
    }

    #[test]
    fn pairs_round_trip_and_transpose() {
        let x = random(15, 1);
        let p = Pairs::from_f32(&x, 3, 5, false);
        let mut back = vec![0.0; 15];
        p.write_f32(&mut back, false);
        for (v, b) in x.iter().zip(&back) {
            assert_eq!(bf16_to_f32(bf16_from_f32(*v)), *b);
        }
        let t = Pairs::from_f32(&x, 3, 5, true);
        assert_eq!((t.rows, t.cols, t.kp), (5, 3, 2));
        let mut back_t = vec![0.0; 15];
        t.write_f32(&mut back_t, true);
        assert_eq!(back, back_t);
    }

    /// Every path the CPU has, against the f64 product of the same operands: within one
    /// bfloat16 rounding of it (the f32 sums differ from f64 by far less than that).
    #[test]
    fn products_match_f64_at_odd_shapes() {
        for (m, k, n) in [(1, 1, 1), (1, 7, 3), (7, 1, 9), (3, 5, 5), (9, 33, 31), (17, 65, 40), (40, 129, 33)] {
            let a = Pairs::from_f32(&random(m * k, 10 + m as u64), m, k, false);
            let bt = Pairs::from_f32(&random(n * k, 20 + n as u64), n, k, false);
            let bn = Pairs::from_f32(&random(k * n, 30 + k as u64), k, n, false);
            let add = Pairs::from_f32(&random(m * n, 40), m, n, false);
            // Within half a bfloat16 step of the f64 value (|w|·2⁻⁸), plus the f32 sums' error.
            let close = |got: &Pairs, want: &[f32], what: &str| {
                // The padding of an odd row stays zero: a later product reads it as a pair's half.
                if got.cols % 2 == 1 {
                    for r in 0..got.rows {
                        assert_eq!(got.w[r * got.kp + got.kp - 1] >> 16, 0, "{what} {m}x{k}x{n}: row {r}'s padding");
                    }
                }
                let mut wide = vec![0.0; got.rows * got.cols];
                got.write_f32(&mut wide, false);
                for (idx, (g, w)) in wide.iter().zip(want).enumerate() {
                    let tol = w.abs() * 2f32.powi(-8) + 1e-6 * k as f32;
                    assert!((g - w).abs() <= tol, "{what} {m}x{k}x{n} [{idx}]: {g} vs {w}");
                }
            };
            for path in Path::available() {
                for (right, b) in [(Right::Transposed, &bt), (Right::Plain, &bn)] {
                    for (alpha, extra) in [(1.0, None), (2.0315, Some((&add, -4.775f32)))] {
                        let got = product_on(path, &a, b, right, false, alpha, extra);
                        close(&got, &product_f64(&a, b, right, alpha, extra), &format!("{path:?} {right:?}"));
                    }
                }
                // A Gram product: exactly symmetric, and the product's values.
                let g = product_on(path, &a, &a, Right::Transposed, true, 1.0, None);
                close(&g, &product_f64(&a, &a, Right::Transposed, 1.0, None), &format!("{path:?} gram"));
                // S·S of a symmetric S, read plainly, with Newton–Schulz's epilogue.
                let ss = product_on(path, &g, &g, Right::Plain, true, 2.0315, Some((&g, -4.775)));
                close(&ss, &product_f64(&g, &g, Right::Plain, 2.0315, Some((&g, -4.775))), &format!("{path:?} S·S"));
                for i in 0..m {
                    for j in 0..m {
                        assert_eq!(g.get(i, j), g.get(j, i), "{path:?} {m}x{k} gram not symmetric");
                        assert_eq!(ss.get(i, j), ss.get(j, i), "{path:?} {m}x{k} S·S not symmetric");
                    }
                }
            }
        }
    }

    /// The iteration orthogonalizes: after PyTorch's five steps the singular values of a
    /// random matrix lie in about (0.5, 1.5), so XXᵀ's diagonal does too.
    #[test]
    fn newton_schulz_orthogonalizes_both_orientations() {
        let ns = NewtonSchulz { coefficients: (3.4445, -4.775, 2.0315), steps: 5, eps: 1e-7 };
        for (rows, cols) in [(16, 40), (40, 16)] {
            let mut x = random(rows * cols, 7);
            newton_schulz_bf16(&mut x, rows, cols, &ns);
            let side = rows.min(cols);
            for i in 0..side {
                let d: f32 = if rows <= cols {
                    (0..cols).map(|j| x[i * cols + j].powi(2)).sum()
                } else {
                    (0..rows).map(|j| x[j * cols + i].powi(2)).sum()
                };
                assert!((0.2..2.3).contains(&d), "{rows}x{cols} row {i}: {d}");
            }
        }
        let mut zero = vec![0.0; 6];
        newton_schulz_bf16(&mut zero, 2, 3, &ns);
        assert!(zero.iter().all(|&v| v == 0.0));
    }
}
