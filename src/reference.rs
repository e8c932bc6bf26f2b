//! Plain, obviously-correct versions of every op, accumulating in f64. Tests and `descent
//! parity` compare both backends with these; nothing trains with them.
//!
//! The tolerances for comparing an f32 kernel with the reference live here, once.

use crate::backend::ops::{Act, Axis, BinaryOp, Form, Layout, UnaryOp};

/// Relative tolerance for kernel vs reference.
pub const REL_TOL: f64 = 1e-5;
/// Absolute tolerance for elementwise kernels vs reference.
pub const ABS_TOL: f64 = 1e-5;

/// Muon's bfloat16 Newton–Schulz against the f64 iteration with the same roundings: f32 sums
/// round a few values one bfloat16 step (1/256 at magnitude 1, where the iteration's values
/// lie) away from where f64 sums round them; two steps allowed.
pub const NS_BF16_TOL: f64 = 1.0 / 128.0;

/// How close (relative) the reference's normalized value must be to the midpoint between two
/// neighbouring 8-bit codes for a kernel to pick the other one: f32 arithmetic against f64.
pub const CODE_TIE_TOL: f64 = 1e-5;

/// How close (relative to the terms it sums) the argument of a sign must be to 0 for f32 and
/// f64 to take different signs: Lion's β1·m + (1 − β1)·g cancels; an element whose argument
/// comes this close, at any step, is counted as a near-tie rather than compared.
pub const SIGN_TIE_TOL: f64 = 1e-4;

/// Two runs of one training (same data, weights and batches) that differ only in f32
/// rounding order, on a GPU and the CPU, or in a browser and natively: the most their mean
/// losses may differ, relative to max(|loss|, 1).
pub const TRAIN_LOSS_REL_TOL: f64 = 1e-4;

/// The same for their accuracies (fractions): a few argmax ties may go the other way.
pub const TRAIN_ACCURACY_TOL: f64 = 0.005;

/// Absolute tolerance for a matmul of inner size `k` whose operands are of magnitude about 1:
/// rounding error of an f32 dot product grows like √k.
pub fn matmul_abs_tol(k: usize) -> f64 {
    ABS_TOL * (k.max(1) as f64).sqrt()
}

/// Whether `got` is within `abs + rel·|want|` of `want` (NaN never is).
pub fn close(got: f64, want: f64, abs: f64, rel: f64) -> bool {
    (got - want).abs() <= abs + rel * want.abs()
}

/// Largest absolute and relative error of `got` against `want` (relative to max(|want|, abs),
/// so exact zeros do not divide by zero), and whether every element is within tolerance. A
/// NaN or a length mismatch is a failure with infinite error.
pub fn compare(got: &[f32], want: &[f64], abs: f64, rel: f64) -> (f64, f64, bool) {
    if got.len() != want.len() {
        return (f64::INFINITY, f64::INFINITY, false);
    }
    let (mut max_abs, mut max_rel, mut ok) = (0f64, 0f64, true);
    for (&g, &w) in got.iter().zip(want) {
        let e = (g as f64 - w).abs();
        let e = if e.is_nan() { f64::INFINITY } else { e };
        max_abs = max_abs.max(e);
        max_rel = max_rel.max(e / w.abs().max(abs));
        ok &= close(g as f64, w, abs, rel);
    }
    (max_abs, max_rel, ok)
}

/// [`compare`] where the reference expects NaN at some elements (a label that names no class):
/// there `got` must be NaN too, and elsewhere within tolerance.
pub fn compare_nan(got: &[f32], want: &[f64], abs: f64, rel: f64) -> (f64, f64, bool) {
    if got.len() != want.len() {
        return (f64::INFINITY, f64::INFINITY, false);
    }
    let nan_ok = got.iter().zip(want).all(|(g, w)| g.is_nan() == w.is_nan());
    let (got, want): (Vec<f32>, Vec<f64>) =
        got.iter().zip(want).filter(|(_, w)| !w.is_nan()).map(|(&g, &w)| (g, w)).unzip();
    let (a, r, ok) = compare(&got, &want, abs, rel);
    if nan_ok {
        (a, r, ok)
    } else {
        (f64::INFINITY, f64::INFINITY, false)
    }
}

/// The activation `a` at `z`.
pub fn act(a: Act, z: f64) -> f64 {
    match a {
        Act::Identity => z,
        Act::Relu => z.max(0.0),
        Act::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Act::Tanh => z.tanh(),
        // PyTorch's nn.LeakyReLU() default negative_slope, written here on its own.
        Act::LeakyRelu => {
            if z > 0.0 {
                z
            } else {
                0.01 * z
            }
        }
    }
}

/// The derivative of `a` expressed through its output y.
pub fn act_grad(a: Act, y: f64) -> f64 {
    match a {
        Act::Identity => 1.0,
        Act::Relu => (y > 0.0) as u8 as f64,
        Act::Sigmoid => y * (1.0 - y),
        Act::Tanh => 1.0 - y * y,
        Act::LeakyRelu => {
            if y > 0.0 {
                1.0
            } else {
                0.01
            }
        }
    }
}

/// C (m×n) = op(A)·op(B) with the storage layouts of [`Form`].
pub fn matmul(form: Form, m: usize, k: usize, n: usize, a: &[f32], b: &[f32]) -> Vec<f64> {
    let at = |i: usize, p: usize| match form {
        Form::TN => a[p * m + i],
        _ => a[i * k + p],
    } as f64;
    let bt = |p: usize, j: usize| match form {
        Form::NT => b[j * k + p],
        _ => b[p * n + j],
    } as f64;
    let mut c = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
        }
    }
    c
}

/// `act(x + bias)` over rows of `cols`.
pub fn bias_act(x: &[f32], bias: Option<&[f32]>, cols: usize, a: Act) -> Vec<f64> {
    x.iter().enumerate().map(|(i, &v)| act(a, v as f64 + bias.map_or(0.0, |b| b[i % cols] as f64))).collect()
}

/// Maxima of a row-major matrix with `cols` columns along `axis`, or the index of each first
/// maximum; a NaN is the maximum (`torch.max(dim)`).
pub fn max_axis(x: &[f32], cols: usize, axis: Axis, argmax: bool) -> Vec<f64> {
    let rows = x.len() / cols;
    // Element i of line `line` (a column for Axis::Rows, a row for Axis::Cols).
    let (lines, len) = match axis {
        Axis::Rows => (cols, rows),
        Axis::Cols => (rows, cols),
    };
    let at = |line: usize, i: usize| match axis {
        Axis::Rows => i * cols + line,
        Axis::Cols => line * cols + i,
    };
    (0..lines)
        .map(|line| {
            let mut best = 0;
            for i in 1..len {
                let (b, v) = (x[at(line, best)] as f64, x[at(line, i)] as f64);
                if !b.is_nan() && (v.is_nan() || v > b) {
                    best = i;
                }
            }
            if argmax {
                best as f64
            } else {
                x[at(line, best)] as f64
            }
        })
        .collect()
}

/// Rows `indices` of the `rows × cols` matrix `src`; an index past it gives a NaN row.
pub fn gather_rows(src: &[f32], cols: usize, indices: &[u32]) -> Vec<f64> {
    let rows = src.len() / cols;
    indices
        .iter()
        .flat_map(|&k| {
            let k = k as usize;
            (0..cols).map(move |c| if k < rows { src[k * cols + c] as f64 } else { f64::NAN })
        })
        .collect()
}

/// `min(max(y, lo), hi)` elementwise, a NaN kept (`torch.clamp`).
pub fn clamp(y: &[f32], lo: f32, hi: f32) -> Vec<f64> {
    y.iter().map(|&v| if v.is_nan() { f64::NAN } else { (v as f64).max(lo as f64).min(hi as f64) }).collect()
}

/// Philox4x32-10 written from Salmon et al. (2011) and Random123's definition, for checking
/// the kernels' copies: ten rounds of two 32×32→64-bit products, the key bumped by the golden
/// ratio and √3 − 1 (as 32-bit fractions) before every round after the first.
pub fn philox4x32_10(ctr: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut c, mut k) = (ctr, key);
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(0x9E37_79B9);
            k[1] = k[1].wrapping_add(0xBB67_AE85);
        }
        let lo_hi = |m: u64, x: u32| ((m * x as u64) as u32, ((m * x as u64) >> 32) as u32);
        let (lo0, hi0) = lo_hi(0xD251_1F53, c[0]);
        let (lo1, hi1) = lo_hi(0xCD9E_8D57, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
    }
    c
}

/// Dropout with probability `p` of `x` (see `backend::DropoutMask` for the draw): element i
/// is kept when `u_i ≥ p`, `u_i` the top 24 bits of its Philox word over 2²⁴, and a kept element
/// is `x / (1 − p)` (0 everywhere at p = 1; `x · 0`, so a NaN stays NaN, where dropped).
pub fn dropout(x: &[f32], p: f64, seed: u64, offset: u64) -> Vec<f64> {
    let key = [seed as u32, (seed >> 32) as u32];
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let words = philox4x32_10([(i / 4) as u32, 0, offset as u32, (offset >> 32) as u32], key);
            let u = (words[i % 4] >> 8) as f64 / (1u64 << 24) as f64;
            let factor = if p < 1.0 && u >= p { 1.0 / (1.0 - p) } else { 0.0 };
            v as f64 * factor
        })
        .collect()
}

/// `dy ⊙ act'(y)`.
pub fn act_backward(a: Act, y: &[f32], dy: &[f32]) -> Vec<f64> {
    y.iter().zip(dy).map(|(&y, &d)| d as f64 * act_grad(a, y as f64)).collect()
}

/// Column sums of a matrix of `cols` columns.
pub fn col_sum(x: &[f32], cols: usize) -> Vec<f64> {
    let mut out = vec![0f64; cols];
    for (i, &v) in x.iter().enumerate() {
        out[i % cols] += v as f64;
    }
    out
}

/// `scale ·` the sums of a `rows × cols` matrix along `axis`.
pub fn sum_axis(x: &[f32], cols: usize, axis: Axis, scale: f64) -> Vec<f64> {
    let rows = x.len() / cols;
    let mut out = vec![0f64; if axis == Axis::Rows { cols } else { rows }];
    for (i, &v) in x.iter().enumerate() {
        out[if axis == Axis::Rows { i % cols } else { i / cols }] += v as f64;
    }
    out.iter().map(|s| s * scale).collect()
}

fn binary_op(op: BinaryOp, a: f64, b: f64) -> f64 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
    }
}

/// `a op b` elementwise, operands of one length.
pub fn binary(op: BinaryOp, a: &[f32], b: &[f32]) -> Vec<f64> {
    a.iter().zip(b).map(|(&a, &b)| binary_op(op, a as f64, b as f64)).collect()
}

/// `a op b` over an output of `n` elements in rows of `cols`, each operand read in its layout
/// (written out by hand rather than through [`Layout::index`], so the two can disagree).
pub fn binary_bcast(op: BinaryOp, a: &[f32], la: Layout, b: &[f32], lb: Layout, n: usize, cols: usize) -> Vec<f64> {
    let at = |x: &[f32], l: Layout, i: usize| -> f64 {
        let (r, c) = (i / cols, i % cols);
        (match l {
            Layout::Full => x[r * cols + c],
            Layout::Row => x[c],
            Layout::Col => x[r],
            Layout::Scalar => x[0],
        }) as f64
    };
    (0..n).map(|i| binary_op(op, at(a, la, i), at(b, lb, i))).collect()
}

/// `scale · src` spread over `n` elements in rows of `cols` as `layout` says.
pub fn expand(src: &[f32], layout: Layout, n: usize, cols: usize, scale: f64) -> Vec<f64> {
    binary_bcast(BinaryOp::Mul, src, layout, &[1.0], Layout::Scalar, n, cols).iter().map(|v| v * scale).collect()
}

/// √(2/π).
const GELU_K: f64 = 0.797_884_560_802_865_4;

/// `g ⊙ op'(a)` for the ops whose derivative needs their input (GELU in both forms, SiLU);
/// NaN for the others.
pub fn unary_grad(op: UnaryOp, a: &[f32], g: &[f32]) -> Vec<f64> {
    a.iter()
        .zip(g)
        .map(|(&a, &g)| {
            let a = a as f64;
            let d = match op {
                UnaryOp::Gelu => {
                    let cdf = 0.5 * (1.0 + libm::erf(a / 2f64.sqrt()));
                    cdf + a * (-0.5 * a * a).exp() / (2.0 * std::f64::consts::PI).sqrt()
                }
                UnaryOp::GeluTanh => {
                    let t = (GELU_K * (a + 0.044715 * a.powi(3))).tanh();
                    0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * GELU_K * (1.0 + 3.0 * 0.044715 * a * a)
                }
                UnaryOp::Silu => {
                    let s = 1.0 / (1.0 + (-a).exp());
                    s * (1.0 + a * (1.0 - s))
                }
                _ => f64::NAN,
            };
            g as f64 * d
        })
        .collect()
}

/// `op(a)` elementwise.
pub fn unary(op: UnaryOp, a: &[f32]) -> Vec<f64> {
    a.iter()
        .map(|&a| {
            let a = a as f64;
            match op {
                UnaryOp::Scale(s) => a * s as f64,
                UnaryOp::AddScalar(s) => a + s as f64,
                UnaryOp::Pow(p) => a.powf(p as f64),
                UnaryOp::Log => a.ln(),
                UnaryOp::Exp => a.exp(),
                UnaryOp::Sin => a.sin(),
                UnaryOp::Cos => a.cos(),
                UnaryOp::Abs => a.abs(),
                UnaryOp::Sign if a > 0.0 => 1.0,
                UnaryOp::Sign if a < 0.0 => -1.0,
                UnaryOp::Sign => 0.0,
                UnaryOp::Gelu => 0.5 * a * (1.0 + libm::erf(a / 2f64.sqrt())),
                UnaryOp::GeluTanh => 0.5 * a * (1.0 + (GELU_K * (a + 0.044715 * a.powi(3))).tanh()),
                UnaryOp::Silu => a / (1.0 + (-a).exp()),
            }
        })
        .collect()
}

/// (mean loss, d(mean loss)/d(logits), Σ row loss, correct count) of softmax cross-entropy,
/// PyTorch's `cross_entropy(…, ignore_index)`: rows labelled `ignore_index` do not count, the
/// mean is over the rest (NaN when there is none). A label that is neither `ignore_index` nor
/// a class makes the loss, the sum and its row's gradient NaN.
pub fn softmax_ce(logits: &[f32], labels: &[f32], cols: usize, ignore_index: i32) -> (f64, Vec<f64>, f64, f64) {
    let rows = logits.len() / cols;
    let kept = labels.iter().filter(|&&l| l as f64 != ignore_index as f64).count();
    let (mut total, mut correct) = (0f64, 0f64);
    let mut d = vec![0f64; logits.len()];
    for r in 0..rows {
        let y = labels[r] as f64;
        if y == ignore_index as f64 {
            continue;
        }
        let row: Vec<f64> = logits[r * cols..(r + 1) * cols].iter().map(|&v| v as f64).collect();
        if !(y >= 0.0 && y < cols as f64 && y.trunc() == y) {
            total = f64::NAN;
            d[r * cols..(r + 1) * cols].fill(f64::NAN);
            continue;
        }
        let label = y as usize;
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let argmax = row.iter().position(|&v| v == max).unwrap_or(0);
        let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
        total += sum.ln() + max - row[label];
        correct += (argmax == label) as u8 as f64;
        for c in 0..cols {
            let p = (row[c] - max).exp() / sum;
            d[r * cols + c] = (p - (c == label) as u8 as f64) / kept as f64;
        }
    }
    (total / kept as f64, d, total, correct)
}

#[cfg(test)]
mod tests {
    /// Random123's known answers (`kat_vectors`, the three philox4x32 10 lines).
    #[test]
    fn philox_matches_random123() {
        assert_eq!(super::philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(
            super::philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            super::philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }
}
