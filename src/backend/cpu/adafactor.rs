//! The rayon twin of `shaders/adafactor.wgsl`: the same six passes over the same table
//! ([`FactorTable`]), each parallel over its units, column chunks or tensors. Every sum runs in
//! a fixed order (eight lanes within a unit, then over a tensor's units), so the result does
//! not depend on the number of threads. The loops run on slices, eight lanes wide, so they
//! vectorize (AVX2 where the CPU has it).

use crate::backend::factored::{lerp, FactorTable, FactorTensor, Unit, COLS_PER_GROUP};
use crate::backend::optim_kernel::{AdafactorParams, Objective};
use rayon::prelude::*;

/// Lanes of the sums: independent accumulators, added in a fixed order at the end.
const LANES: usize = 8;

/// Σ f(a_i, b_i) over two slices of one length, in [`LANES`] lanes (chunks of eight, so the
/// loop vectorizes), then the lanes in order.
#[inline(always)]
fn lane_sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
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

/// One Adafactor step of `p` (the arena) from `g`, with the statistics `state` and the sums in
/// `work` (both as [`FactorTable`] lays them out).
pub fn apply(
    h: &AdafactorParams,
    objective: Objective,
    t: &FactorTable,
    p: &mut [f32],
    g: &[f32],
    state: &mut [f32],
    work: &mut [f32],
) {
    let sign = objective.sign();
    let (units, tensors) = (t.units.len(), t.tensors.len());
    let w = h.beta2_t;

    // af_stats: Σg² and Σp² per unit; vectors' V updated in place.
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
            state[u.state] = lerp(state[u.state], gs / tensor.cols as f32, w);
        }
    }
    for (k, &(_, ps)) in sums.iter().enumerate() {
        work[k] = ps;
    }
    vector_moments(t, state, g, w);

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
            state[at + j] = lerp(state[at + j], x / tensor.rows as f32, w);
        }
    }

    // af_tensor_stats: Σp² per tensor, the mean of R per matrix.
    let (sums_at, mean_at) = (2 * units, 2 * units + 2 * tensors);
    for (k, tensor) in t.tensors.iter().enumerate() {
        work[sums_at + 2 * k] = work[tensor.first_unit..tensor.first_unit + tensor.units].iter().sum();
    }
    for (m, &(r0, rows)) in t.matrix_rows.iter().enumerate() {
        work[mean_at + m] = state[r0..r0 + rows].iter().sum::<f32>() / rows as f32;
    }

    // af_usq: Σu² per unit; af_tensor_usq: per tensor.
    let state = &*state;
    let usq: Vec<f32> = t
        .units
        .par_iter()
        .map(|u| {
            let v = Scale::of(h, t, u, state, work, mean_at);
            wide!(update_squares(&v, &g[u.start..u.start + u.len]))
        })
        .collect();
    work[units..2 * units].copy_from_slice(&usq);
    for (k, tensor) in t.tensors.iter().enumerate() {
        let first = units + tensor.first_unit;
        work[sums_at + 2 * k + 1] = work[first..first + tensor.units].iter().sum();
    }

    // af_apply: p ← p·(1 − lr·wd) − α / max(1, RMS(u)/d) · u, per unit.
    let work = &*work;
    let mut pieces: Vec<(&Unit, &mut [f32])> = Vec::with_capacity(units);
    let mut rest: &mut [f32] = p;
    let mut at = 0;
    for u in &t.units {
        let tail = std::mem::take(&mut rest);
        let (_, tail) = tail.split_at_mut(u.start - at);
        let (piece, tail) = tail.split_at_mut(u.len);
        pieces.push((u, piece));
        rest = tail;
        at = u.start + u.len;
    }
    pieces.into_par_iter().for_each(|(u, piece)| {
        let tensor = &t.tensors[u.tensor];
        let v = Scale::of(h, t, u, state, work, mean_at);
        let k = sums_at + 2 * u.tensor;
        let root_n = (tensor.n as f32).sqrt();
        let alpha = h.eps2.max(work[k].sqrt() / root_n) * h.rho;
        let den = f32::max(1.0, work[k + 1].sqrt() / (root_n * h.d));
        // Maximizing reads −g: every sum above is of squares and u is odd in g, so only the
        // update's direction flips (exactly: a sign).
        let step = sign * (alpha / den);
        wide!(apply_unit(&v, piece, &g[u.start..u.start + u.len], h.decay, step));
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

/// Σu² of a unit.
#[inline(always)]
fn update_squares(v: &Scale, g: &[f32]) -> f32 {
    let (r, den, e) = (v.row, v.den, v.eps1_sq);
    if v.factored {
        lane_sum2(g, v.stats, |g, c| {
            let x = g / floor(r * c / den, e).sqrt();
            x * x
        })
    } else {
        lane_sum2(g, v.stats, |g, var| {
            let x = g / floor(var, e).sqrt();
            x * x
        })
    }
}

/// A unit's parameters: p ← p·decay − step·u.
#[inline(always)]
fn apply_unit(v: &Scale, p: &mut [f32], g: &[f32], decay: f32, step: f32) {
    let (r, den, e) = (v.row, v.den, v.eps1_sq);
    let n = p.len().min(g.len()).min(v.stats.len());
    let (p, g, stats) = (&mut p[..n], &g[..n], &v.stats[..n]);
    if v.factored {
        for ((x, &g), &c) in p.iter_mut().zip(g).zip(stats) {
            *x = *x * decay - step * (g / floor(r * c / den, e).sqrt());
        }
    } else {
        for ((x, &g), &var) in p.iter_mut().zip(g).zip(stats) {
            *x = *x * decay - step * (g / floor(var, e).sqrt());
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
    pub(super) unsafe fn update_squares(v: &Scale, g: &[f32]) -> f32 {
        super::update_squares(v, g)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn apply_unit(v: &Scale, p: &mut [f32], g: &[f32], decay: f32, step: f32) {
        super::apply_unit(v, p, g, decay, step)
    }
}

/// Vectors' second moments: V ← lerp(V, g², w), in parallel over the vectors' units.
fn vector_moments(t: &FactorTable, state: &mut [f32], g: &[f32], w: f32) {
    let mut pieces: Vec<(&Unit, &mut [f32])> = Vec::new();
    let mut rest: &mut [f32] = state;
    let mut at = 0;
    let mut chunks: Vec<&Unit> = t.units.iter().filter(|u| !t.tensors[u.tensor].factored()).collect();
    chunks.sort_by_key(|u| u.state);
    for u in chunks {
        let tail = std::mem::take(&mut rest);
        let (_, tail) = tail.split_at_mut(u.state - at);
        let (piece, tail) = tail.split_at_mut(u.len);
        pieces.push((u, piece));
        rest = tail;
        at = u.state + u.len;
    }
    pieces.into_par_iter().for_each(|(u, v)| {
        for (x, &gk) in v.iter_mut().zip(&g[u.start..u.start + u.len]) {
            *x = lerp(*x, gk * gk, w);
        }
    });
}

/// How a unit's update reads its second-moment estimate: a matrix row's R_i·C_j / max(mean R,
/// eps1), or a vector chunk's V.
struct Scale<'a> {
    /// R_i of a row (unused for a chunk).
    row: f32,
    /// max(mean R, eps1) of the row's matrix (unused for a chunk).
    den: f32,
    /// C of the row's matrix, or V from the chunk's first element.
    stats: &'a [f32],
    factored: bool,
    eps1_sq: f32,
}

impl<'a> Scale<'a> {
    fn of(
        h: &AdafactorParams,
        t: &'a FactorTable,
        u: &Unit,
        state: &'a [f32],
        work: &[f32],
        mean_at: usize,
    ) -> Scale<'a> {
        let tensor: &FactorTensor = &t.tensors[u.tensor];
        let eps1_sq = h.eps1 * h.eps1;
        if tensor.factored() {
            let row = u.state - tensor.state;
            let mean_r = work[mean_at + tensor.first_matrix + row / tensor.rows];
            let c0 = tensor.col_state() + (row / tensor.rows) * tensor.cols;
            let stats = &state[c0..c0 + tensor.cols];
            Scale { row: state[u.state], den: mean_r.max(h.eps1), stats, factored: true, eps1_sq }
        } else {
            Scale { row: 0.0, den: 1.0, stats: &state[u.state..u.state + u.len], factored: false, eps1_sq }
        }
    }
}
