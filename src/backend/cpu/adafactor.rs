//! The rayon twin of `shaders/adafactor.wgsl`: the same six passes over the same table
//! ([`FactorTable`]), each parallel over its units, column chunks or tensors. Every sum runs in
//! a fixed order (eight lanes within a unit, then over a tensor's units), so the result does
//! not depend on the number of threads. The loops run on slices, eight lanes wide, so they
//! vectorize (AVX2 where the CPU has it). The statistics are f32 or bfloat16 ([`Cell`]): a
//! bfloat16 one is rounded where it is stored, and the rest of the step reads the stored value,
//! as the WGSL's `adafactor_state_bf16.wgsl` does.

use super::optim::Cell;
use crate::backend::factored::{lerp, FactorTable, FactorTensor, Unit, COLS_PER_GROUP};
use crate::backend::optim_kernel::{AdafactorParams, Objective};
use rayon::prelude::*;

/// Lanes of the sums: independent accumulators, added in a fixed order at the end.
const LANES: usize = 8;

/// Σ f(a_i, b_i) over two slices of one length, in [`LANES`] lanes (chunks of eight, so the
/// loop vectorizes), then the lanes in order.
#[inline(always)]
fn lane_sum2<B: Copy>(a: &[f32], b: &[B], f: impl Fn(f32, B) -> f32) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for k in 0..LANES {
            acc[k] += f(x[k], y[k]);
        }
    }
    for (k, (&x, &y)) in ar.iter().zip(br).enumerate() {
        acc[k] += f(x, y);
    }
    acc.iter().sum()
}

/// One Adafactor step of `p` (the arena) from `g`, with the statistics `state` (f32 or
/// bfloat16) and the sums in `work` (both as [`FactorTable`] lays them out).
pub fn apply<C: Cell>(
    h: &AdafactorParams,
    objective: Objective,
    t: &FactorTable,
    p: &mut [f32],
    g: &[f32],
    state: &mut [C],
    work: &mut [f32],
) {
    let sign = objective.sign();
    let (units, tensors) = (t.units.len(), t.tensors.len());
    let w = h.beta2_t;
    let fresh_at = t.fresh_at();
    // A factored statistic's new value: stored, and kept in f32 in the fresh area for the step.
    let put = |state: &mut [C], work: &mut [f32], tensor: &FactorTensor, i: usize, x: f32| {
        state[i] = C::put(x);
        work[fresh_at + tensor.fresh + i - tensor.state] = x;
    };

    // af_stats: Σg² and Σp² per unit; a row's mean of g² into R.
    let sums: Vec<(f32, f32)> = t
        .units
        .par_iter()
        .map(|u| {
            let (gu, pu) = (&g[u.start..u.start + u.len], &p[u.start..u.start + u.len]);
            wide!(squares(gu, pu))
        })
        .collect();
    for (u, &(gs, _)) in t.units.iter().zip(&sums) {
        let tensor = &t.tensors[u.tensor];
        if tensor.factored() {
            put(state, work, tensor, u.state, lerp(state[u.state].get(), gs / tensor.cols as f32, w));
        }
    }
    for (k, &(_, ps)) in sums.iter().enumerate() {
        work[k] = ps;
    }

    // af_cols: a column's mean of g² into C.
    let cols: Vec<(usize, [f32; COLS_PER_GROUP])> = t
        .col_chunks
        .par_iter()
        .map(|c| {
            let tensor = &t.tensors[c.tensor];
            let start = tensor.start + c.matrix * tensor.rows * tensor.cols + c.col0;
            let width = COLS_PER_GROUP.min(tensor.cols - c.col0);
            let s = wide!(column_squares(g, start, tensor.rows, tensor.cols, width));
            (tensor.col_state() + c.matrix * tensor.cols + c.col0, s)
        })
        .collect();
    for (c, (at, s)) in t.col_chunks.iter().zip(cols) {
        let tensor = &t.tensors[c.tensor];
        let width = COLS_PER_GROUP.min(tensor.cols - c.col0);
        for (j, &x) in s.iter().enumerate().take(width) {
            put(state, work, tensor, at + j, lerp(state[at + j].get(), x / tensor.rows as f32, w));
        }
    }

    // af_tensor_stats: Σp² per tensor, the mean of R per matrix (R as this step computed it).
    let (sums_at, mean_at) = (2 * units, 2 * units + 2 * tensors);
    for (k, tensor) in t.tensors.iter().enumerate() {
        work[sums_at + 2 * k] = work[tensor.first_unit..tensor.first_unit + tensor.units].iter().sum();
    }
    for (m, &(_, rows, f0)) in t.matrix_rows.iter().enumerate() {
        let r = fresh_at + f0;
        work[mean_at + m] = work[r..r + rows].iter().sum::<f32>() / rows as f32;
    }

    // af_usq: Σu² per unit; af_tensor_usq: per tensor.
    let usq: Vec<f32> = {
        let (state, work) = (&*state, &*work);
        t.units
            .par_iter()
            .map(|u| {
                let v = Scale::of(h, t, u, work, mean_at);
                let gu = &g[u.start..u.start + u.len];
                let var: &[C] = if v.factored { &[] } else { &state[u.state..u.state + u.len] };
                wide!(update_squares(&v, gu, var))
            })
            .collect()
    };
    work[units..2 * units].copy_from_slice(&usq);
    for (k, tensor) in t.tensors.iter().enumerate() {
        let first = units + tensor.first_unit;
        work[sums_at + 2 * k + 1] = work[first..first + tensor.units].iter().sum();
    }

    // af_apply: p ← p·(1 − lr·wd) − α / max(1, RMS(u)/d) · u, per unit; a vector's new V
    // stored (its old V read for the last time).
    let work = &*work;
    let mut pieces: Vec<(&Unit, &mut [f32], &mut [C])> = Vec::with_capacity(units);
    let (mut rest_p, mut rest_s): (&mut [f32], &mut [C]) = (p, state);
    let (mut at_p, mut at_s) = (0, 0);
    for u in &t.units {
        let tail = std::mem::take(&mut rest_p);
        let (_, tail) = tail.split_at_mut(u.start - at_p);
        let (piece, tail) = tail.split_at_mut(u.len);
        rest_p = tail;
        at_p = u.start + u.len;
        // A vector's chunk takes its V; the units lie in state order as in arena order.
        let v: &mut [C] = if t.tensors[u.tensor].factored() {
            &mut []
        } else {
            let tail = std::mem::take(&mut rest_s);
            let (_, tail) = tail.split_at_mut(u.state - at_s);
            let (v, tail) = tail.split_at_mut(u.len);
            rest_s = tail;
            at_s = u.state + u.len;
            v
        };
        pieces.push((u, piece, v));
    }
    pieces.into_par_iter().for_each(|(u, piece, v_state)| {
        let tensor = &t.tensors[u.tensor];
        let v = Scale::of(h, t, u, work, mean_at);
        let k = sums_at + 2 * u.tensor;
        let root_n = (tensor.n as f32).sqrt();
        let alpha = h.eps2.max(work[k].sqrt() / root_n) * h.rho;
        let den = f32::max(1.0, work[k + 1].sqrt() / (root_n * h.d));
        // Maximizing reads −g: every sum above is of squares and u is odd in g, so only the
        // update's direction flips (exactly: a sign).
        let step = sign * (alpha / den);
        wide!(apply_unit(&v, piece, &g[u.start..u.start + u.len], v_state, h.decay, step));
    });
}

/// Run `f(args)` compiled for AVX2 where the CPU has it (each kernel below has an `_avx2`
/// twin: the same code, vectorized 8 lanes wide), else as built.
macro_rules! wide {
    ($f:ident($($a:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if crate::backend::host::has_avx2_fma() {
                // SAFETY: the CPU has AVX2 and FMA (checked at run time just above).
                unsafe { paste_avx2::$f($($a),*) }
            } else {
                $f($($a),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $f($($a),*)
        }
    }};
}
use wide;

/// (Σg², Σp²) of a unit.
#[inline(always)]
fn squares(g: &[f32], p: &[f32]) -> (f32, f32) {
    (lane_sum2(g, g, |x, _| x * x), lane_sum2(p, p, |x, _| x * x))
}

/// Σg² down `width` columns of a `rows`-row matrix of `cols` columns from `start`.
#[inline(always)]
fn column_squares(g: &[f32], start: usize, rows: usize, cols: usize, width: usize) -> [f32; COLS_PER_GROUP] {
    let mut s = [0f32; COLS_PER_GROUP];
    for i in 0..rows {
        let row = &g[start + i * cols..start + i * cols + width];
        for (acc, &x) in s.iter_mut().zip(row) {
            *acc += x * x;
        }
    }
    s
}

/// `max(x, floor)` as one vector instruction (`f32::max` adds a NaN check the kernels do not
/// need: a NaN gradient is found by the non-finite check, not here).
#[inline(always)]
fn floor(x: f32, floor: f32) -> f32 {
    if x > floor {
        x
    } else {
        floor
    }
}

/// Σu² of a unit: a matrix row's from its fresh R and C, a vector chunk's from its stored V
/// (`var`, its new value recomputed as the WGSL's `new_v` does).
#[inline(always)]
fn update_squares<C: Cell>(v: &Scale, g: &[f32], var: &[C]) -> f32 {
    let (r, den, e, w) = (v.row, v.den, v.eps1_sq, v.beta2_t);
    if v.factored {
        lane_sum2(g, v.cols, |g, c| {
            let x = g / floor(r * c / den, e).sqrt();
            x * x
        })
    } else {
        lane_sum2(g, var, |g, var| {
            let x = g / floor(lerp(var.get(), g * g, w), e).sqrt();
            x * x
        })
    }
}

/// A unit's parameters: p ← p·decay − step·u; a vector chunk's V (`var`) then takes its new
/// value.
#[inline(always)]
fn apply_unit<C: Cell>(v: &Scale, p: &mut [f32], g: &[f32], var: &mut [C], decay: f32, step: f32) {
    let (r, den, e, w) = (v.row, v.den, v.eps1_sq, v.beta2_t);
    if v.factored {
        let n = p.len().min(g.len()).min(v.cols.len());
        let (p, g, cols) = (&mut p[..n], &g[..n], &v.cols[..n]);
        for ((x, &g), &c) in p.iter_mut().zip(g).zip(cols) {
            *x = *x * decay - step * (g / floor(r * c / den, e).sqrt());
        }
    } else {
        let n = p.len().min(g.len()).min(var.len());
        let (p, g, var) = (&mut p[..n], &g[..n], &mut var[..n]);
        for ((x, &g), s) in p.iter_mut().zip(g).zip(var) {
            let new_v = lerp(s.get(), g * g, w);
            *x = *x * decay - step * (g / floor(new_v, e).sqrt());
            *s = C::put(new_v);
        }
    }
}

/// The kernels above compiled for AVX2.
#[cfg(target_arch = "x86_64")]
mod paste_avx2 {
    use super::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn squares(g: &[f32], p: &[f32]) -> (f32, f32) {
        super::squares(g, p)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn column_squares(
        g: &[f32],
        start: usize,
        rows: usize,
        cols: usize,
        width: usize,
    ) -> [f32; COLS_PER_GROUP] {
        super::column_squares(g, start, rows, cols, width)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn update_squares<C: Cell>(v: &Scale, g: &[f32], var: &[C]) -> f32 {
        super::update_squares(v, g, var)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn apply_unit<C: Cell>(
        v: &Scale,
        p: &mut [f32],
        g: &[f32],
        var: &mut [C],
        decay: f32,
        step: f32,
    ) {
        super::apply_unit(v, p, g, var, decay, step)
    }
}

/// How a unit's update reads its second-moment estimate: a matrix row's R_i·C_j / max(mean R,
/// eps1) from the fresh area, or a vector chunk's new V (from its stored V and g).
struct Scale<'a> {
    /// R_i of a row (unused for a chunk).
    row: f32,
    /// max(mean R, eps1) of the row's matrix (unused for a chunk).
    den: f32,
    /// C of the row's matrix (empty for a chunk).
    cols: &'a [f32],
    factored: bool,
    eps1_sq: f32,
    beta2_t: f32,
}

impl<'a> Scale<'a> {
    fn of(h: &AdafactorParams, t: &FactorTable, u: &Unit, work: &'a [f32], mean_at: usize) -> Scale<'a> {
        let tensor: &FactorTensor = &t.tensors[u.tensor];
        let (eps1_sq, beta2_t) = (h.eps1 * h.eps1, h.beta2_t);
        if tensor.factored() {
            let row = u.state - tensor.state;
            let matrix = row / tensor.rows;
            let mean_r = work[mean_at + tensor.first_matrix + matrix];
            let fresh = t.fresh_at() + tensor.fresh;
            let c0 = fresh + tensor.batch * tensor.rows + matrix * tensor.cols;
            Scale {
                row: work[fresh + row],
                den: mean_r.max(h.eps1),
                cols: &work[c0..c0 + tensor.cols],
                factored: true,
                eps1_sq,
                beta2_t,
            }
        } else {
            Scale { row: 0.0, den: 1.0, cols: &[], factored: false, eps1_sq, beta2_t }
        }
    }
}
