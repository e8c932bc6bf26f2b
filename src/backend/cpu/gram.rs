//! Gram matrices, X·Xᵀ and Xᵀ·X, at about half a product's cost: the result is symmetric, so
//! only the bands of rows up to the diagonal are multiplied (through the `gemm` crate, written
//! in place with C's row stride) and the rest is mirrored. Muon's Newton–Schulz runs two of its
//! three products per step this way (S = XXᵀ and S² = S·Sᵀ).

use super::matmul::PAR_MIN_MACS;
use crate::backend::ops::Form;
use rayon::prelude::*;

/// C's base pointer, shared by the bands that write disjoint rows of it.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: each band writes a disjoint set of C's rows (see `gram`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Rows of C per band: each band multiplies up to the end of its diagonal block, so bands of
/// `BAND` rows out of `side` do about (1 + BAND/side)/2 of the full product's work.
const BAND: usize = 64;

/// C (side×side) = X·Xᵀ for X of `side` rows of `k` ([`Form::NT`]), or Xᵀ·X for X of `k` rows
/// of `side` ([`Form::TN`]). C is exactly symmetric: each element below the diagonal is
/// computed once and copied above it.
pub fn gram(form: Form, side: usize, k: usize, x: &[f32], c: &mut [f32]) {
    assert!(matches!(form, Form::NT | Form::TN), "a Gram matrix is X·Xᵀ or Xᵀ·X");
    assert!(x.len() >= side * k && c.len() >= side * side, "gram operands too short");
    if side == 0 {
        return;
    }
    if k == 0 {
        c[..side * side].fill(0.0);
        return;
    }
    // (column stride, row stride) of X as the left m×k operand and as the right k×n one.
    let (lcs, lrs, rcs, rrs) = match form {
        Form::NT => (1, k as isize, k as isize, 1),
        _ => (side as isize, 1, 1, side as isize),
    };
    let c_at = SendPtr(c.as_mut_ptr());
    // One band, single-threaded: the bands themselves are what runs in parallel.
    let band = |b: usize| {
        let (r0, r1) = (b * BAND, ((b + 1) * BAND).min(side));
        let left = match form {
            Form::NT => r0 * k,
            _ => r0,
        };
        // SAFETY: band `b` writes only rows r0..r1, columns 0..r1, of C (side² elements,
        // checked above), so bands never overlap; the left operand's rows r0..r1 and the right
        // operand's first r1 columns lie inside `x` (side·k elements); C does not alias X.
        unsafe {
            gemm::gemm(
                r1 - r0,
                r1,
                k,
                c_at.get().add(r0 * side),
                1,
                side as isize,
                false,
                x.as_ptr().add(left),
                lcs,
                lrs,
                x.as_ptr(),
                rcs,
                rrs,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    };
    let bands = side.div_ceil(BAND);
    if side * side * k / 2 < PAR_MIN_MACS || !crate::backend::host::may_fork() {
        (0..bands).for_each(band);
    } else {
        // The last bands carry the most work: start them first so the cores finish together.
        (0..bands).into_par_iter().rev().for_each(band);
    }
    mirror_lower(side, side, c);
}

/// Copy the strict lower triangle of the side×side matrix `c` (rows `stride` elements apart)
/// onto its upper triangle, in tiles so that both the rows read and the columns written stay in
/// cache. Muon's bfloat16 Gram products mirror theirs with it too.
pub(super) fn mirror_lower<T: Copy>(side: usize, stride: usize, c: &mut [T]) {
    const TILE: usize = 32;
    for i0 in (0..side).step_by(TILE) {
        for j0 in (i0..side).step_by(TILE) {
            for i in i0..(i0 + TILE).min(side) {
                for j in j0.max(i + 1)..(j0 + TILE).min(side) {
                    c[i * stride + j] = c[j * stride + i];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::matmul::gemm_crate;
    use crate::backend::ops::Dims;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        crate::rng::Rng::new(seed).uniform_vec(n, -1.0, 1.0)
    }

    #[test]
    fn equals_the_full_product_and_is_symmetric() {
        for (side, k) in [(1, 1), (1, 7), (7, 1), (3, 5), (129, 65), (257, 130), (300, 3)] {
            let x = random(side * k, (side * 1000 + k) as u64);
            for form in [Form::NT, Form::TN] {
                let d = Dims { m: side, k, n: side };
                let mut want = vec![0.0; side * side];
                gemm_crate(form, d, &x, &x, &mut want);
                let mut got = vec![f32::NAN; side * side];
                gram(form, side, k, &x, &mut got);
                for i in 0..side {
                    for j in 0..side {
                        let (g, w) = (got[i * side + j], want[i * side + j]);
                        assert!(
                            (g - w).abs() <= 1e-5 * (k as f32).sqrt().max(1.0),
                            "{form:?} {side}x{k} [{i},{j}]: {g} vs {w}"
                        );
                        assert_eq!(g.to_bits(), got[j * side + i].to_bits(), "{form:?} {side}x{k} not symmetric");
                    }
                }
            }
        }
    }

    #[test]
    fn an_empty_inner_size_gives_zeros() {
        let mut c = vec![f32::NAN; 9];
        gram(Form::NT, 3, 0, &[], &mut c);
        assert!(c.iter().all(|&v| v == 0.0));
    }
}
