//! The CPU backend's matrix products. The `gemm` crate (packed, blocked, SIMD kernels picked at
//! run time) is the general path. A·Bᵀ — every layer's forward product, x·Wᵀ — has its own
//! AVX2/FMA kernel: both operands already have k contiguous, so each output element is
//! a dot product of two rows that can be streamed as they are, where `gemm` would first pack the
//! transposed operand (measured: that packing made 64×784·784×128 run at about half of
//! torch.mm's rate; see BENCHMARKS.md). A·B and Aᵀ·B with a short inner size (every backward
//! product of the MLP up to batch 256) have one more AVX2 kernel that skips packing altogether;
//! only long inner sizes (1024³ and the like) go through `gemm`.
//!
//! Where the CPU has AVX-512 both kernels take 16 lanes and give the same bits as their AVX2
//! forms: the unpacked A·B keeps each element's sum over k in one lane in the same order, and
//! A·Bᵀ puts two columns' eight-lane partial sums side by side in one register, so every dot
//! product is added in the AVX2 kernel's order (`DESCENT_NO_AVX512=1` turns them off).

use crate::backend::ops::{Dims, Form};
#[cfg(target_arch = "x86_64")]
use rayon::prelude::*;

/// Multiply-adds below which a `gemm` crate product runs on the calling thread: splitting it
/// costs more than it saves (measured at 128×64·64×128, Aᵀ·B: about 55 GFLOP/s on one thread,
/// 28 on two).
pub(super) const PAR_MIN_MACS: usize = 1 << 21;

/// The same for this module's own kernels, whose split costs less (A·Bᵀ at 64×128·128×128:
/// about 59 GFLOP/s on two threads, 52 on one; the unpacked A·B at the same shape 80 on two,
/// against the `gemm` crate's 60 on one).
#[cfg(target_arch = "x86_64")]
const KERNEL_PAR_MIN_MACS: usize = 1 << 19;

/// Inner size up to which A·B and Aᵀ·B use the unpacked kernel: a 16-column panel of B (k
/// rows) then stays in L1 while every row block of A passes over it.
#[cfg(target_arch = "x86_64")]
const SMALL_MAX_K: usize = 256;

/// Checks the operand lengths and does the empty products (m or n zero: nothing; k zero:
/// C = 0); true when that was all there was to do.
fn empty_product(d: Dims, a: &[f32], b: &[f32], c: &mut [f32]) -> bool {
    let Dims { m, k, n } = d;
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "matmul operands too short");
    if k == 0 {
        c[..m * n].fill(0.0);
    }
    m == 0 || n == 0 || k == 0
}

/// C = op(A)·op(B), row-major, overwriting C.
pub fn gemm_f32(form: Form, d: Dims, a: &[f32], b: &[f32], c: &mut [f32]) {
    if empty_product(d, a, b, c) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::backend::host::has_avx2_fma() {
        let Dims { m, k, n } = d;
        if form == Form::NT {
            return nt::matmul_nt(d, &a[..m * k], &b[..n * k], &mut c[..m * n]);
        }
        if k <= SMALL_MAX_K {
            return small::matmul_small(form, d, &a[..m * k], &b[..k * n], &mut c[..m * n]);
        }
    }
    gemm_crate(form, d, a, b, c)
}

/// Any form through the `gemm` crate (also the reference point the A·Bᵀ kernel is tested
/// and benchmarked against).
pub fn gemm_crate(form: Form, d: Dims, a: &[f32], b: &[f32], c: &mut [f32]) {
    if empty_product(d, a, b, c) {
        return;
    }
    let Dims { m, k, n } = d;
    // (column stride, row stride) of the logical m×k left and k×n right operands.
    let (lcs, lrs) = match form {
        Form::TN => (m as isize, 1),
        _ => (1, k as isize),
    };
    let (rcs, rrs) = match form {
        Form::NT => (k as isize, 1),
        _ => (1, n as isize),
    };
    let par = if m * n * k >= PAR_MIN_MACS && crate::backend::host::may_fork() {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the length check in `empty_product` keeps every access inside the slices; C does
    // not alias A or B.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            lcs,
            lrs,
            b.as_ptr(),
            rcs,
            rrs,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
}

/// A·Bᵀ as row-by-row dot products: a 4×3 block of C keeps 12 eight-lane accumulators in
/// registers while k streams by, so each step issues 12 fused multiply-adds for 7 loads.
#[cfg(target_arch = "x86_64")]
pub mod nt {
    use super::*;
    use std::arch::x86_64::*;

    /// Rows of A and of B per register block.
    const MR: usize = 4;
    const NR: usize = 3;

    /// C (m×n) = A (m×k) · Bᵀ with B stored n×k. Rows of C are split among threads when the
    /// product is large enough; each element is one thread's fixed-order sum, so results do
    /// not depend on the thread count.
    pub fn matmul_nt(d: Dims, a: &[f32], b: &[f32], c: &mut [f32]) {
        matmul_nt_at(d, a, b, c, crate::backend::host::has_avx512())
    }

    /// [`matmul_nt`] with the AVX-512 blocks (`wide`, which the CPU must have) or the AVX2 ones
    /// alone: the same bits either way.
    pub(super) fn matmul_nt_at(d: Dims, a: &[f32], b: &[f32], c: &mut [f32], wide: bool) {
        let Dims { m, k, n } = d;
        assert!(crate::backend::host::has_avx2_fma(), "matmul_nt needs AVX2 and FMA");
        assert!(!wide || crate::backend::host::has_avx512(), "matmul_nt's wide blocks need AVX-512");
        assert!(a.len() == m * k && b.len() == n * k && c.len() == m * n, "matmul_nt operand sizes");
        let rows_per_task = if m * n * k >= KERNEL_PAR_MIN_MACS && crate::backend::host::may_fork() {
            // Two tasks per thread, whole register blocks each.
            m.div_ceil(crate::backend::host::op_threads() * 2).next_multiple_of(MR)
        } else {
            m
        };
        let task = |(t, c_rows): (usize, &mut [f32])| {
            let r0 = t * rows_per_task;
            let rows = c_rows.len() / n;
            let a_rows = &a[r0 * k..(r0 + rows) * k];
            // SAFETY: the CPU has AVX2 and FMA, and AVX-512 when `wide` (asserted above); the
            // slices bound every access.
            unsafe {
                if wide {
                    rows_nt_avx512(a_rows, b, c_rows, rows, k, n)
                } else {
                    rows_nt(a_rows, b, c_rows, rows, k, n, 0)
                }
            }
        };
        if rows_per_task < m {
            c.par_chunks_mut(rows_per_task * n).enumerate().for_each(task);
        } else {
            task((0, c));
        }
    }

    /// One task: `rows` rows of C from the matching rows of A and all of B, columns from `j0`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows_nt(a: &[f32], b: &[f32], c: &mut [f32], rows: usize, k: usize, n: usize, j0: usize) {
        let mut i = 0;
        while i < rows {
            let mr = MR.min(rows - i);
            let mut j = j0;
            while j < n {
                let nr = NR.min(n - j);
                let (ap, bp) = (a.as_ptr().add(i * k), b.as_ptr().add(j * k));
                let cp = c.as_mut_ptr().add(i * n + j);
                match (mr, nr) {
                    (4, 3) => block::<4, 3>(ap, bp, cp, k, n),
                    (4, 2) => block::<4, 2>(ap, bp, cp, k, n),
                    (4, 1) => block::<4, 1>(ap, bp, cp, k, n),
                    (3, 3) => block::<3, 3>(ap, bp, cp, k, n),
                    (3, 2) => block::<3, 2>(ap, bp, cp, k, n),
                    (3, 1) => block::<3, 1>(ap, bp, cp, k, n),
                    (2, 3) => block::<2, 3>(ap, bp, cp, k, n),
                    (2, 2) => block::<2, 2>(ap, bp, cp, k, n),
                    (2, 1) => block::<2, 1>(ap, bp, cp, k, n),
                    (1, 3) => block::<1, 3>(ap, bp, cp, k, n),
                    (1, 2) => block::<1, 2>(ap, bp, cp, k, n),
                    _ => block::<1, 1>(ap, bp, cp, k, n),
                }
                j += NR;
            }
            i += MR;
        }
    }

    /// C[0..R, 0..S] = dot(A row r, B row s) for R rows of A at `a` and S rows of B at `b`
    /// (row length and stride k); C's row stride is `ldc`. The k % 8 tail uses masked loads.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn block<const R: usize, const S: usize>(a: *const f32, b: *const f32, c: *mut f32, k: usize, ldc: usize) {
        let mut acc = [[_mm256_setzero_ps(); S]; R];
        let full = k / 8 * 8;
        let mut p = 0;
        while p < full {
            let mut bv = [_mm256_setzero_ps(); S];
            for (s, v) in bv.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(b.add(s * k + p));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_loadu_ps(a.add(r * k + p));
                for (s, x) in row.iter_mut().enumerate() {
                    *x = _mm256_fmadd_ps(av, bv[s], *x);
                }
            }
            p += 8;
        }
        if full < k {
            let mask = tail_mask(k - full);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_maskload_ps(a.add(r * k + full), mask);
                for (s, x) in row.iter_mut().enumerate() {
                    *x = _mm256_fmadd_ps(av, _mm256_maskload_ps(b.add(s * k + full), mask), *x);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (s, x) in row.iter().enumerate() {
                *c.add(r * ldc + s) = hsum(*x);
            }
        }
    }

    /// Column pairs per AVX-512 block: 4 rows × 6 columns, 12 sixteen-lane accumulators.
    const PAIRS: usize = 3;

    /// [`rows_nt`] with AVX-512: blocks of up to 4 rows × 6 columns, each register holding two
    /// columns' eight-lane partial sums; the columns past the last whole 6 go to the AVX2
    /// blocks (the same bits).
    #[target_feature(enable = "avx2,fma,avx512f")]
    unsafe fn rows_nt_avx512(a: &[f32], b: &[f32], c: &mut [f32], rows: usize, k: usize, n: usize) {
        let wide_cols = n / (2 * PAIRS) * (2 * PAIRS);
        // Columns outside, rows inside: a block's rows of B stay in L1 while A's rows pass.
        let mut j = 0;
        while j < wide_cols {
            let mut i = 0;
            while i < rows {
                let (ap, bp) = (a.as_ptr().add(i * k), b.as_ptr().add(j * k));
                let cp = c.as_mut_ptr().add(i * n + j);
                match MR.min(rows - i) {
                    4 => block_avx512::<4, PAIRS>(ap, bp, cp, k, n),
                    3 => block_avx512::<3, PAIRS>(ap, bp, cp, k, n),
                    2 => block_avx512::<2, PAIRS>(ap, bp, cp, k, n),
                    _ => block_avx512::<1, PAIRS>(ap, bp, cp, k, n),
                }
                i += MR;
            }
            j += 2 * PAIRS;
        }
        if wide_cols < n {
            rows_nt(a, b, c, rows, k, n, wide_cols);
        }
    }

    /// Eight floats broadcast to both halves of a register.
    #[target_feature(enable = "avx2,fma,avx512f")]
    #[inline]
    unsafe fn both_halves(x: __m256) -> __m512 {
        _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(x)))
    }

    /// `lo` in the low half of a register, `hi` in the high half.
    #[target_feature(enable = "avx2,fma,avx512f")]
    #[inline]
    unsafe fn halves(lo: __m256, hi: __m256) -> __m512 {
        _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1))
    }

    /// [`block`] for R rows × 2P columns: register (r, q) holds the eight-lane partial sums of
    /// columns 2q (low half) and 2q + 1 (high half) of row r, each lane taking exactly the
    /// products and additions it takes in [`block`]; the halves are then added as [`block`]
    /// adds its registers.
    #[target_feature(enable = "avx2,fma,avx512f")]
    #[inline]
    unsafe fn block_avx512<const R: usize, const P: usize>(
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        k: usize,
        ldc: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); P]; R];
        let full = k / 8 * 8;
        let mut p = 0;
        while p < full {
            let mut bv = [_mm512_setzero_ps(); P];
            for (q, v) in bv.iter_mut().enumerate() {
                *v = halves(_mm256_loadu_ps(b.add(2 * q * k + p)), _mm256_loadu_ps(b.add((2 * q + 1) * k + p)));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = both_halves(_mm256_loadu_ps(a.add(r * k + p)));
                for (q, x) in row.iter_mut().enumerate() {
                    *x = _mm512_fmadd_ps(av, bv[q], *x);
                }
            }
            p += 8;
        }
        if full < k {
            let mask = tail_mask(k - full);
            let mut bv = [_mm512_setzero_ps(); P];
            for (q, v) in bv.iter_mut().enumerate() {
                let lo = _mm256_maskload_ps(b.add(2 * q * k + full), mask);
                *v = halves(lo, _mm256_maskload_ps(b.add((2 * q + 1) * k + full), mask));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = both_halves(_mm256_maskload_ps(a.add(r * k + full), mask));
                for (q, x) in row.iter_mut().enumerate() {
                    *x = _mm512_fmadd_ps(av, bv[q], *x);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (q, x) in row.iter().enumerate() {
                let lo = _mm512_castps512_ps256(*x);
                let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(*x), 1));
                *c.add(r * ldc + 2 * q) = hsum(lo);
                *c.add(r * ldc + 2 * q + 1) = hsum(hi);
            }
        }
    }

    /// Lanes 0..len set (len < 8): loads past the row's end are masked off, never read.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn tail_mask(len: usize) -> __m256i {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(len as i32), lanes)
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn hsum(x: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)))
    }
}

/// A·B and Aᵀ·B with k ≤ `SMALL_MAX_K`, without packing: a 6×16 block of C keeps 12 eight-lane accumulators
/// while k streams by; each step loads 16 elements of one row of B and broadcasts 6 elements of
/// A (a column of A; for Aᵀ·B six adjacent elements of one stored row), 12 fused multiply-adds
/// for 8 loads. Everything these shapes touch stays in L1/L2, which packing exists to arrange.
#[cfg(target_arch = "x86_64")]
pub mod small {
    use super::nt::tail_mask;
    use super::*;
    use std::arch::x86_64::*;

    const MR: usize = 6;
    const NC: usize = 16;

    /// C (m×n) = op(A)·B for `Form::NN` (A stored m×k) or `Form::TN` (A stored k×m); B k×n.
    pub fn matmul_small(form: Form, d: Dims, a: &[f32], b: &[f32], c: &mut [f32]) {
        matmul_small_at(form, d, a, b, c, crate::backend::host::has_avx512())
    }

    /// [`matmul_small`] with the AVX-512 blocks (`wide`, which the CPU must have) or the AVX2
    /// ones alone: the same bits either way.
    pub(super) fn matmul_small_at(form: Form, d: Dims, a: &[f32], b: &[f32], c: &mut [f32], wide: bool) {
        let Dims { m, k, n } = d;
        assert!(crate::backend::host::has_avx2_fma(), "matmul_small needs AVX2 and FMA");
        assert!(!wide || crate::backend::host::has_avx512(), "matmul_small's wide blocks need AVX-512");
        assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n, "matmul_small operand sizes");
        // Element (i, p) of the logical m×k operand A is at a[i * row + p * col].
        let (row, col) = match form {
            Form::NN => (k, 1),
            Form::TN => (1, m),
            Form::NT => panic!("matmul_small does A·B and Aᵀ·B; A·Bᵀ has its own kernel"),
        };
        // Split rows of C between the threads (one task each, whole register blocks) when the
        // product is large enough to pay for it.
        let threads = crate::backend::host::op_threads();
        let rows_per_task =
            if m * n * k >= KERNEL_PAR_MIN_MACS && threads > 1 { m.div_ceil(threads).next_multiple_of(MR) } else { m };
        let task = |(t, c_rows): (usize, &mut [f32])| {
            let (r0, rows) = (t * rows_per_task, c_rows.len() / n);
            // SAFETY: AVX2 and FMA are present, and AVX-512 when `wide` (asserted); rows r0..r0 +
            // rows of A lie inside `a` (its length is m·k) and every other access is bounded by
            // k and n.
            unsafe {
                let (ap, cp) = (a.as_ptr().add(r0 * row), c_rows.as_mut_ptr());
                if wide {
                    kernel_avx512(ap, row, col, b.as_ptr(), cp, rows, k, n)
                } else {
                    kernel(ap, row, col, b.as_ptr(), cp, rows, k, n, 0)
                }
            }
        };
        if rows_per_task < m {
            c.par_chunks_mut(rows_per_task * n).enumerate().for_each(task);
        } else {
            task((0, c));
        }
    }

    /// Columns `j0..n` of C in 6×16 blocks.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel(
        a: *const f32,
        row: usize,
        col: usize,
        b: *const f32,
        c: *mut f32,
        m: usize,
        k: usize,
        n: usize,
        j0: usize,
    ) {
        let mut j = j0;
        while j < n {
            let cols = NC.min(n - j);
            let mut i = 0;
            while i < m {
                let (ap, bp, cp) = (a.add(i * row), b.add(j), c.add(i * n + j));
                let at = Block { a: ap, col, row, b: bp, c: cp, k, n, cols };
                match (MR.min(m - i), cols == NC) {
                    (6, true) => at.run::<6, true>(),
                    (5, true) => at.run::<5, true>(),
                    (4, true) => at.run::<4, true>(),
                    (3, true) => at.run::<3, true>(),
                    (2, true) => at.run::<2, true>(),
                    (1, true) => at.run::<1, true>(),
                    (6, false) => at.run::<6, false>(),
                    (5, false) => at.run::<5, false>(),
                    (4, false) => at.run::<4, false>(),
                    (3, false) => at.run::<3, false>(),
                    (2, false) => at.run::<2, false>(),
                    _ => at.run::<1, false>(),
                }
                i += MR;
            }
            j += NC;
        }
    }

    /// Columns per AVX-512 block: two sixteen-lane registers a row.
    const NC_WIDE: usize = 32;

    /// [`kernel`] with AVX-512: whole 6×32 blocks, then the columns past the last whole 32
    /// through [`kernel`] (each element's sum is the same either way).
    #[target_feature(enable = "avx2,fma,avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn kernel_avx512(
        a: *const f32,
        row: usize,
        col: usize,
        b: *const f32,
        c: *mut f32,
        m: usize,
        k: usize,
        n: usize,
    ) {
        let wide_cols = n / NC_WIDE * NC_WIDE;
        let mut j = 0;
        while j < wide_cols {
            let mut i = 0;
            while i < m {
                let (ap, bp, cp) = (a.add(i * row), b.add(j), c.add(i * n + j));
                let at = Block { a: ap, col, row, b: bp, c: cp, k, n, cols: NC_WIDE };
                match MR.min(m - i) {
                    6 => at.run_avx512::<6>(),
                    5 => at.run_avx512::<5>(),
                    4 => at.run_avx512::<4>(),
                    3 => at.run_avx512::<3>(),
                    2 => at.run_avx512::<2>(),
                    _ => at.run_avx512::<1>(),
                }
                i += MR;
            }
            j += NC_WIDE;
        }
        if wide_cols < n {
            kernel(a, row, col, b, c, m, k, n, wide_cols);
        }
    }

    /// One block of C: up to 6 rows from `a` (row stride `row`, column stride `col`), `cols`
    /// (≤ 16) columns from `b` (row stride n), written to `c` (row stride n).
    struct Block {
        a: *const f32,
        row: usize,
        col: usize,
        b: *const f32,
        c: *mut f32,
        k: usize,
        n: usize,
        cols: usize,
    }

    impl Block {
        /// R rows; FULL when all 16 columns exist, otherwise the rest are masked off.
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        unsafe fn run<const R: usize, const FULL: bool>(&self) {
            let (m0, m1) = if FULL {
                (_mm256_set1_epi32(-1), _mm256_set1_epi32(-1))
            } else {
                (tail_mask(self.cols.min(8)), tail_mask(self.cols.saturating_sub(8)))
            };
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            for p in 0..self.k {
                let brow = self.b.add(p * self.n);
                let (b0, b1) = if FULL {
                    (_mm256_loadu_ps(brow), _mm256_loadu_ps(brow.add(8)))
                } else {
                    (_mm256_maskload_ps(brow, m0), _mm256_maskload_ps(brow.add(8), m1))
                };
                let acol = self.a.add(p * self.col);
                for (r, x) in acc.iter_mut().enumerate() {
                    let av = _mm256_broadcast_ss(&*acol.add(r * self.row));
                    x[0] = _mm256_fmadd_ps(av, b0, x[0]);
                    x[1] = _mm256_fmadd_ps(av, b1, x[1]);
                }
            }
            for (r, x) in acc.iter().enumerate() {
                let crow = self.c.add(r * self.n);
                if FULL {
                    _mm256_storeu_ps(crow, x[0]);
                    _mm256_storeu_ps(crow.add(8), x[1]);
                } else {
                    _mm256_maskstore_ps(crow, m0, x[0]);
                    _mm256_maskstore_ps(crow.add(8), m1, x[1]);
                }
            }
        }

        /// [`Block::run`] for R rows × 32 whole columns with sixteen-lane registers: each
        /// element's sum over k in one lane, in [`Block::run`]'s order.
        #[target_feature(enable = "avx2,fma,avx512f")]
        #[inline]
        unsafe fn run_avx512<const R: usize>(&self) {
            let mut acc = [[_mm512_setzero_ps(); 2]; R];
            for p in 0..self.k {
                let brow = self.b.add(p * self.n);
                let (b0, b1) = (_mm512_loadu_ps(brow), _mm512_loadu_ps(brow.add(16)));
                let acol = self.a.add(p * self.col);
                for (r, x) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*acol.add(r * self.row));
                    x[0] = _mm512_fmadd_ps(av, b0, x[0]);
                    x[1] = _mm512_fmadd_ps(av, b1, x[1]);
                }
            }
            for (r, x) in acc.iter().enumerate() {
                let crow = self.c.add(r * self.n);
                _mm512_storeu_ps(crow, x[0]);
                _mm512_storeu_ps(crow.add(16), x[1]);
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::reference::matmul_abs_tol;

    /// `kernel` against the `gemm` crate on fresh random operands. C is poisoned with NaN and
    /// has one guard element past its end, which a stray (masked) store would overwrite.
    fn check(
        form: Form,
        shapes: &[(usize, usize, usize)],
        seed: u64,
        kernel: impl Fn(Dims, &[f32], &[f32], &mut [f32]),
    ) {
        if !crate::backend::host::has_avx2_fma() {
            return;
        }
        let mut rng = crate::rng::Rng::new(seed);
        for &(m, k, n) in shapes {
            let d = Dims { m, k, n };
            let a = rng.uniform_vec(m * k, -1.0, 1.0);
            let b = rng.uniform_vec(k * n, -1.0, 1.0);
            let (mut mine, mut theirs) = (vec![f32::NAN; m * n + 1], vec![f32::NAN; m * n]);
            kernel(d, &a, &b, &mut mine[..m * n]);
            gemm_crate(form, d, &a, &b, &mut theirs);
            assert!(mine[m * n].is_nan(), "{form:?} {m}×{k}×{n}: wrote past the end");
            for (i, (x, y)) in mine.iter().zip(&theirs).enumerate() {
                let tol = matmul_abs_tol(k) as f32 * (1.0 + y.abs());
                assert!((x - y).abs() <= tol, "{form:?} {m}×{k}×{n} at {i}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn nt_matches_the_gemm_crate_at_odd_sizes() {
        let shapes =
            [(1, 1, 1), (1, 7, 1), (5, 9, 4), (4, 8, 3), (7, 17, 10), (64, 784, 128), (65, 129, 11), (257, 31, 7)];
        check(Form::NT, &shapes, 7, nt::matmul_nt);
    }

    #[test]
    fn small_matches_the_gemm_crate_at_odd_sizes() {
        let shapes = [
            (1, 1, 1),
            (1, 7, 1),
            (5, 9, 4),
            (6, 8, 16),
            (7, 17, 10),
            (64, 128, 128),
            (128, 64, 128),
            (13, 3, 33),
            (10, 64, 128),
            (64, 10, 128),
        ];
        for form in [Form::NN, Form::TN] {
            check(form, &shapes, 11, |d, a, b, c| small::matmul_small(form, d, a, b, c));
        }
    }

    /// The AVX-512 blocks give exactly the AVX2 blocks' bits, on fresh operands whose column
    /// counts run past and short of the wide blocks (where the CPU has AVX-512).
    #[test]
    fn avx512_blocks_give_the_avx2_bits() {
        if !crate::backend::host::has_avx512() {
            eprintln!("this CPU lacks AVX-512: only the AVX2 blocks run here");
            return;
        }
        let mut rng = crate::rng::Rng::new(23);
        let shapes = [
            (1, 1, 1),
            (1, 7, 6),
            (5, 9, 13),
            (4, 8, 12),
            (7, 17, 33),
            (64, 784, 128),
            (65, 129, 70),
            (13, 3, 31),
            (64, 128, 128),
            (6, 200, 64),
        ];
        for &(m, k, n) in &shapes {
            let d = Dims { m, k, n };
            let a = rng.uniform_vec(m * k, -1.0, 1.0);
            let b = rng.uniform_vec(k * n, -1.0, 1.0);
            let run = |f: &dyn Fn(&mut [f32])| {
                let mut c = vec![f32::NAN; m * n + 1];
                f(&mut c[..m * n]);
                assert!(c[m * n].is_nan(), "{m}×{k}×{n}: wrote past the end");
                c.truncate(m * n);
                c
            };
            let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            let nt = |wide| bits(run(&|c| nt::matmul_nt_at(d, &a, &b, c, wide)));
            assert_eq!(nt(true), nt(false), "A·Bᵀ {m}×{k}×{n}");
            if k <= SMALL_MAX_K {
                for form in [Form::NN, Form::TN] {
                    let small = |wide| bits(run(&|c| small::matmul_small_at(form, d, &a, &b, c, wide)));
                    assert_eq!(small(true), small(false), "{form:?} {m}×{k}×{n}");
                }
            }
        }
    }

    #[test]
    fn empty_products_zero_c_or_leave_it() {
        for form in [Form::NN, Form::NT, Form::TN] {
            for gemm in [gemm_f32, gemm_crate] {
                let mut c = vec![f32::NAN; 6];
                gemm(form, Dims { m: 2, k: 0, n: 3 }, &[], &[], &mut c);
                assert_eq!(c, [0.0; 6], "{form:?}: k = 0 gives C = 0");
                let mut c = [f32::NAN];
                gemm(form, Dims { m: 0, k: 4, n: 3 }, &[], &[0.0; 12], &mut c);
                assert!(c[0].is_nan(), "{form:?}: m = 0 writes nothing");
            }
        }
    }
}
