//! The rayon twins of the elementwise kernels: activations and their gradients, the matmul
//! epilogue, binary ops, `pow`, the non-finite search, and the parallel map loops they share.

use super::fork;
use crate::backend::ops::{Act, BinaryOp, UnaryOp, LEAKY_RELU_SLOPE};
use rayon::prelude::*;

/// √(2/π), GELU's tanh form's scale.
pub(super) const GELU_K: f32 = 0.797_884_6;
/// 1/√(2π), the normal density's scale.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// The derivative at `x` of the unary ops whose derivative needs their input (GELU in both
/// forms, SiLU); NaN for the others.
pub(super) fn input_grad(op: UnaryOp, x: f32) -> f32 {
    match op {
        // Φ(x) + x·φ(x).
        UnaryOp::Gelu => {
            0.5 * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2)) + x * FRAC_1_SQRT_2PI * (-0.5 * x * x).exp()
        }
        UnaryOp::GeluTanh => {
            let t = (GELU_K * (x + 0.044715 * x * x * x)).tanh();
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_K * (1.0 + 3.0 * 0.044715 * x * x)
        }
        UnaryOp::Silu => {
            let s = 1.0 / (1.0 + (-x).exp());
            s * (1.0 + x * (1.0 - s))
        }
        _ => f32::NAN,
    }
}

pub(super) fn act_apply(act: Act, z: f32) -> f32 {
    match act {
        Act::Identity => z,
        Act::Relu => z.max(0.0),
        Act::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Act::Tanh => z.tanh(),
        Act::LeakyRelu => {
            if z > 0.0 {
                z
            } else {
                LEAKY_RELU_SLOPE * z
            }
        }
    }
}

pub(super) fn act_grad(act: Act, y: f32) -> f32 {
    match act {
        Act::Identity => 1.0,
        Act::Relu => {
            if y > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Act::Sigmoid => y * (1.0 - y),
        Act::Tanh => 1.0 - y * y,
        Act::LeakyRelu => {
            if y > 0.0 {
                1.0
            } else {
                LEAKY_RELU_SLOPE
            }
        }
    }
}

/// The matmul epilogue on one row of C: `z = act(z · act'(y) + bias)`, as separate passes
/// with the activation chosen outside each loop, so every pass vectorises.
pub(super) fn epilogue_row(row: &mut [f32], grad_of: Option<(Act, &[f32])>, bias: Option<&[f32]>, act: Act) {
    fn each(row: &mut [f32], other: &[f32], f: impl Fn(f32, f32) -> f32) {
        row.iter_mut().zip(other).for_each(|(z, &x)| *z = f(*z, x));
    }
    match grad_of {
        None | Some((Act::Identity, _)) => {}
        Some((Act::Relu, y)) => each(row, y, |z, y| z * act_grad(Act::Relu, y)),
        Some((Act::Sigmoid, y)) => each(row, y, |z, y| z * act_grad(Act::Sigmoid, y)),
        Some((Act::Tanh, y)) => each(row, y, |z, y| z * act_grad(Act::Tanh, y)),
        Some((Act::LeakyRelu, y)) => each(row, y, |z, y| z * act_grad(Act::LeakyRelu, y)),
    }
    if let Some(b) = bias {
        each(row, b, |z, b| z + b);
    }
    match act {
        Act::Identity => {}
        Act::Relu => row.iter_mut().for_each(|z| *z = act_apply(Act::Relu, *z)),
        Act::Sigmoid => row.iter_mut().for_each(|z| *z = act_apply(Act::Sigmoid, *z)),
        Act::Tanh => row.iter_mut().for_each(|z| *z = act_apply(Act::Tanh, *z)),
        Act::LeakyRelu => row.iter_mut().for_each(|z| *z = act_apply(Act::LeakyRelu, *z)),
    }
}

/// The maximum of `count` elements of `x` from `first`, `step` apart, and its index within the
/// run: the first of equal maxima, a NaN beating any number (as `torch.max(dim)`).
pub(super) fn max_run(x: &[f32], first: usize, count: usize, step: usize) -> (f32, usize) {
    let (mut best, mut at) = (x[first], 0);
    for i in 1..count {
        let v = x[first + i * step];
        if !best.is_nan() && (v.is_nan() || v > best) {
            (best, at) = (v, i);
        }
    }
    (best, at)
}

/// Run `f` compiled for the widest vectors the CPU has (AVX-512, else AVX2, else as built):
/// the loops below are elementwise, so every width gives the same bits, and a closure inlined
/// here vectorizes at that width.
#[inline(always)]
pub(super) fn widest<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl")]
        unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if crate::backend::host::has_avx512() {
            // SAFETY: the CPU has AVX-512 F, BW and VL, AVX2 and FMA (checked at run time).
            return unsafe { avx512(f) };
        }
        if crate::backend::host::has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked at run time).
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// `out[i] = f(i, out[i])` over rows of `cols`, in parallel when large.
pub(super) fn rows_mut(out: &mut [f32], cols: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if fork(out.len()) {
        out.par_chunks_mut(cols).enumerate().for_each(|(r, row)| widest(|| f(r, row)));
    } else {
        widest(|| out.chunks_mut(cols).enumerate().for_each(|(r, row)| f(r, row)));
    }
}

/// Index of the first NaN or ±∞ in `x`. Runs once per training step over every gradient, so
/// the common all-finite case must cost no more than reading the buffer: each chunk is tested
/// with a branch-free exponent check that vectorises, and only a chunk that fails is searched.
pub(super) fn first_nonfinite(x: &[f32]) -> Option<usize> {
    fn chunk_is_finite(c: &[f32]) -> bool {
        widest(|| {
            let bad = c.iter().fold(0u32, |acc, v| acc | u32::from(v.to_bits() & 0x7f80_0000 == 0x7f80_0000));
            bad == 0
        })
    }
    let chunk = if fork(x.len() / 16) {
        x.par_chunks(CHUNK).position_first(|c| !chunk_is_finite(c))
    } else {
        x.chunks(CHUNK).position(|c| !chunk_is_finite(c))
    }?;
    let start = chunk * CHUNK;
    x[start..].iter().position(|v| !v.is_finite()).map(|k| start + k)
}

/// Elements per parallel task of the elementwise loops.
pub(super) const CHUNK: usize = 1 << 14;

/// `out[i] = f(a[i])`, in parallel chunks when large (slices zipped, so the loop vectorizes).
pub(super) fn map1(out: &mut [f32], a: &[f32], f: impl Fn(f32) -> f32 + Sync) {
    let body = |(o, a): (&mut [f32], &[f32])| widest(|| o.iter_mut().zip(a).for_each(|(o, &x)| *o = f(x)));
    if fork(out.len()) {
        out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).for_each(body);
    } else {
        body((out, a));
    }
}

/// `out[i] = f(a[i], b[i])`, like [`map1`].
pub(super) fn map2(out: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) {
    let body = |((o, a), b): ((&mut [f32], &[f32]), &[f32])| {
        widest(|| o.iter_mut().zip(a).zip(b).for_each(|((o, &x), &y)| *o = f(x, y)))
    };
    if fork(out.len()) {
        out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).zip(b.par_chunks(CHUNK)).for_each(body);
    } else {
        body(((out, a), b));
    }
}

/// `x^p` as `powf` computes it, with the common exponents on faster exact paths
/// (`powf(x, 0.5)` is `sqrt(x)` except that it maps −0 to +0 and −∞ to +∞).
pub(super) fn pow(x: f32, p: f32) -> f32 {
    if p == 2.0 {
        x * x
    } else if p == 0.5 {
        if x == f32::NEG_INFINITY {
            f32::INFINITY
        } else {
            x.sqrt() + 0.0
        }
    } else {
        x.powf(p)
    }
}

pub(super) fn binary_op(op: BinaryOp, x: f32, y: f32) -> f32 {
    match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
    }
}

/// `out[i] = f(i)`, in parallel when large.
pub(super) fn map_mut(out: &mut [f32], f: impl Fn(usize) -> f32 + Sync) {
    if fork(out.len()) {
        out.par_iter_mut().enumerate().for_each(|(i, o)| *o = f(i));
    } else {
        out.iter_mut().enumerate().for_each(|(i, o)| *o = f(i));
    }
}

/// Column sums of a rows×cols matrix, accumulated in f64.
pub(super) fn col_sums(x: &[f32], cols: usize) -> Vec<f32> {
    let mut acc = vec![0f64; cols];
    for row in x.chunks(cols) {
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += v as f64;
        }
    }
    acc.into_iter().map(|a| a as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::PAR_MIN;

    #[test]
    fn fast_pow_paths_match_powf() {
        for x in [0.0f32, -0.0, 1e-30, 0.25, 2.0, 1e30, f32::INFINITY, f32::NEG_INFINITY, -1.0, f32::NAN] {
            for p in [0.5f32, 2.0] {
                let (a, b) = (pow(x, p), x.powf(p));
                assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{x}^{p}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn first_nonfinite_finds_the_first_bad_element_on_both_paths() {
        for len in [1, 7, CHUNK - 1, CHUNK + 3, PAR_MIN * 16 + 5] {
            let mut x = vec![1.5f32; len];
            assert_eq!(first_nonfinite(&x), None, "len {len}");
            for (at, bad) in [(len - 1, f32::NAN), (len / 2, f32::INFINITY), (0, f32::NEG_INFINITY)] {
                x[at] = bad;
                assert_eq!(first_nonfinite(&x), Some(at), "len {len}, {bad} at {at}");
            }
        }
        // Largest finite value and subnormals are finite.
        assert_eq!(first_nonfinite(&[f32::MAX, -f32::MAX, 1e-45, 0.0]), None);
    }
}
