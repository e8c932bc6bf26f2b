//! The rayon twins of `shaders/optim_<kernel>.wgsl`: each optimizer as one fused, parallel
//! pass over the parameter arena, reading the same parameter structs
//! ([`crate::backend::optim_kernel`]). Formulas follow `torch.optim` (see `optim::reference` for the
//! plain f64 version).

pub use super::optim8::{apply_blockwise8, Blockwise8Mut};
use crate::backend::optim_kernel::*;
use crate::backend::quant::{bf16_from_f32, bf16_to_f32};
use rayon::prelude::*;

/// Elements per parallel task, at least: large enough to amortise scheduling.
const CHUNK: usize = 1 << 15;

/// Tasks per thread for large arenas: few, long, contiguous runs keep the hardware
/// prefetchers streaming (measured: many 32K-element tasks interleaved between threads move
/// memory about 20% slower at 1e8 parameters than one contiguous run per thread).
fn chunk_len(n: usize) -> usize {
    CHUNK.max(n.div_ceil(rayon::current_num_threads() * 4))
}

/// A state element as the loops read and write it: an f32, or a bfloat16's bits. The formulas
/// below are written once, generic over it; each width compiles to its own fused loop.
pub trait Cell: Copy + Send + Sync {
    /// The value, widened to f32.
    fn get(self) -> f32;
    /// `x` stored (rounded to nearest-even for bfloat16).
    fn put(x: f32) -> Self;
}

impl Cell for f32 {
    #[inline(always)]
    fn get(self) -> f32 {
        self
    }
    #[inline(always)]
    fn put(x: f32) -> f32 {
        x
    }
}

/// A bfloat16, as the upper 16 bits of an f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(transparent)]
pub struct Bf16(pub u16);

impl Cell for Bf16 {
    #[inline(always)]
    fn get(self) -> f32 {
        bf16_to_f32(self.0)
    }
    #[inline(always)]
    fn put(x: f32) -> Bf16 {
        Bf16(bf16_from_f32(x))
    }
}

/// Apply one step to `p` (in place) from `g` (negated when maximizing) with the optimizer's
/// f32 state slots.
pub fn apply(step: &OptimStep, objective: Objective, p: &mut [f32], g: &[f32], slots: Vec<&mut [f32]>) {
    apply_cells(step, objective, p, g, slots)
}

/// [`apply`] with bfloat16 state slots (`slots[k][i]` is element `i`'s slot `k`): the same
/// formulas, each value widened on load and rounded on store.
pub fn apply_bf16(step: &OptimStep, objective: Objective, p: &mut [f32], g: &[f32], slots: Vec<&mut [u16]>) {
    apply_cells(step, objective, p, g, slots.into_iter().map(bytemuck::cast_slice_mut::<u16, Bf16>).collect())
}

fn apply_cells<S: Cell>(step: &OptimStep, objective: Objective, p: &mut [f32], g: &[f32], slots: Vec<&mut [S]>) {
    let n = p.len();
    assert_eq!(g.len(), n);
    assert!(slots.iter().all(|s| s.len() == n));
    // Cut every slice into the same chunks, then run the chunks in parallel.
    let len = chunk_len(n);
    let mut slot_chunks: Vec<_> = slots.into_iter().map(|s| s.chunks_mut(len)).collect();
    let mut work = Vec::with_capacity(n.div_ceil(len));
    for (pc, gc) in p.chunks_mut(len).zip(g.chunks(len)) {
        let sc: Vec<&mut [S]> = slot_chunks.iter_mut().map(|it| it.next().expect("slot as long as p")).collect();
        work.push((pc, gc, sc));
    }
    let step = *step;
    let wide = wide_vectors();
    let widest = crate::backend::host::has_avx512();
    work.into_par_iter().for_each(|(p, g, mut s)| {
        #[cfg(target_arch = "x86_64")]
        if widest {
            // SAFETY: the CPU has AVX-512 F, BW and VL with AVX2 and FMA (`has_avx512`).
            return unsafe { chunk_avx512(&step, objective, p, g, &mut s) };
        }
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: the CPU has AVX2 and FMA (checked at run time by `wide_vectors`).
            return unsafe { chunk_avx2(&step, objective, p, g, &mut s) };
        }
        let _ = (wide, widest);
        directed(&step, objective, p, g, &mut s)
    });
}

/// Elements whose negated gradient one run of [`directed`] keeps on the stack (4 KiB: L1).
const NEGATED_RUN: usize = 1024;

/// [`chunk`] with the gradient as `objective` reads it: when maximizing, in runs whose
/// negated gradient sits in a buffer on the stack, so nothing is allocated and no more memory
/// is moved than when minimizing.
#[inline(always)]
fn directed<S: Cell>(step: &OptimStep, objective: Objective, p: &mut [f32], g: &[f32], s: &mut [&mut [S]]) {
    if objective == Objective::Minimize {
        return chunk(step, p, g, s);
    }
    let mut neg = [0f32; NEGATED_RUN];
    let k = s.len();
    let mut lo = 0;
    while lo < p.len() {
        let hi = (lo + NEGATED_RUN).min(p.len());
        for (d, &x) in neg.iter_mut().zip(&g[lo..hi]) {
            *d = -x;
        }
        let mut run: [&mut [S]; 3] = Default::default();
        for (d, x) in run.iter_mut().zip(s.iter_mut()) {
            *d = &mut x[lo..hi];
        }
        chunk(step, &mut p[lo..hi], &neg[..hi - lo], &mut run[..k]);
        lo = hi;
    }
}

/// Whether this CPU runs the 8-lane (AVX2) build of the loops (the f32 and bfloat16 steps take
/// the 16-lane AVX-512 build where [`crate::backend::host::has_avx512`] says so). The results
/// are bit-identical either way (`tests::every_vector_width_gives_the_same_bits_*`): every lane
/// does the same IEEE operations, and Rust never contracts a·b + c into a fused multiply-add on
/// its own.
pub(super) fn wide_vectors() -> bool {
    crate::backend::host::has_avx2_fma()
}

/// The chunk's state slices by binding (S0, S1, S2), `None` where the settings keep no slot.
fn bound<'a, S>(step: &OptimStep, s: &'a mut [&mut [S]]) -> [Option<&'a mut [S]>; 3] {
    let mut live = s.iter_mut();
    let mut out = [None, None, None];
    for (b, pos) in step.binding_positions().into_iter().enumerate() {
        if pos.is_some() {
            out[b] = live.next().map(|x| &mut **x);
        }
    }
    out
}

#[inline(always)]
pub(super) fn chunk<S: Cell>(step: &OptimStep, p: &mut [f32], g: &[f32], s: &mut [&mut [S]]) {
    let [s0, s1, s2] = bound(step, s);
    let n = p.len();
    // Slices of exactly n elements, so the loops below need no bounds checks.
    fn slot<S>(x: Option<&mut [S]>, n: usize) -> Option<&mut [S]> {
        x.map(|x| &mut x[..n])
    }
    match step {
        OptimStep::Sgd(h) => sgd(h, p, g, slot(s0, n)),
        OptimStep::Adagrad(h) => adagrad(h, p, g, slot(s0, n).expect("adagrad keeps sum")),
        OptimStep::Rmsprop(h) => {
            rmsprop(h, p, g, slot(s0, n).expect("rmsprop keeps square_avg"), slot(s1, n), slot(s2, n))
        }
        OptimStep::Adam(h) => adam(
            h,
            p,
            g,
            slot(s0, n).expect("adam keeps exp_avg"),
            slot(s1, n).expect("adam keeps exp_avg_sq"),
            slot(s2, n),
        ),
        OptimStep::LectureMomentum(h) => {
            lecture_momentum(h, p, g, slot(s0, n).expect("lecture momentum keeps a buffer"))
        }
        OptimStep::Nadam(h) => {
            nadam(h, p, g, slot(s0, n).expect("nadam keeps exp_avg"), slot(s1, n).expect("nadam keeps exp_avg_sq"))
        }
        OptimStep::Radam(h) => {
            radam(h, p, g, slot(s0, n).expect("radam keeps exp_avg"), slot(s1, n).expect("radam keeps exp_avg_sq"))
        }
        OptimStep::Adamax(h) => {
            adamax(h, p, g, slot(s0, n).expect("adamax keeps exp_avg"), slot(s1, n).expect("adamax keeps exp_inf"))
        }
        OptimStep::Adadelta(h) => adadelta(
            h,
            p,
            g,
            slot(s0, n).expect("adadelta keeps square_avg"),
            slot(s1, n).expect("adadelta keeps acc_delta"),
        ),
        OptimStep::Lion(h) => lion(h, p, g, slot(s0, n).expect("lion keeps exp_avg")),
        OptimStep::Rprop(h) => {
            rprop(h, p, g, slot(s0, n).expect("rprop keeps prev"), slot(s1, n).expect("rprop keeps step_size"))
        }
        OptimStep::Asgd(h) => asgd(h, p, g, slot(s0, n).expect("asgd keeps ax")),
        OptimStep::Ademamix(h) => ademamix(
            h,
            p,
            g,
            slot(s0, n).expect("ademamix keeps m1"),
            slot(s1, n).expect("ademamix keeps m2"),
            slot(s2, n).expect("ademamix keeps nu"),
        ),
        OptimStep::Schedulefree(h) => schedulefree(
            h,
            p,
            slot(s0, n).expect("schedule-free keeps z"),
            slot(s1, n).expect("schedule-free keeps exp_avg_sq"),
            g,
        ),
        OptimStep::SchedulefreeMode(h) => schedulefree_mode(h, p, slot(s0, n).expect("the switch binds z")),
        OptimStep::MuonMomentum(h) => muon_momentum(h, p, g, slot(s0, n).expect("muon keeps a momentum buffer")),
    }
}

/// [`directed`] compiled for AVX2: the same code, vectorized 8 lanes wide.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_avx2<S: Cell>(step: &OptimStep, objective: Objective, p: &mut [f32], g: &[f32], s: &mut [&mut [S]]) {
    directed(step, objective, p, g, s)
}

/// [`directed`] compiled for AVX-512: the same code, vectorized 16 lanes wide.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn chunk_avx512<S: Cell>(step: &OptimStep, objective: Objective, p: &mut [f32], g: &[f32], s: &mut [&mut [S]]) {
    directed(step, objective, p, g, s)
}

#[inline(always)]
fn sgd<S: Cell>(h: &SgdParams, p: &mut [f32], g: &[f32], buf: Option<&mut [S]>) {
    let (lr, mu, damp, wd) = (h.lr, h.momentum, h.dampening, h.weight_decay);
    let (nesterov, first) = (h.nesterov != 0, h.first_step != 0);
    let Some(buf) = buf.filter(|_| mu != 0.0) else {
        for (p, &g) in p.iter_mut().zip(g) {
            *p -= lr * (g + wd * *p);
        }
        return;
    };
    let update = |p: &mut f32, g: f32, buf: &mut S, first: bool, nesterov: bool| {
        let gi = g + wd * *p;
        let b = if first { gi } else { mu * buf.get() + (1.0 - damp) * gi };
        *buf = S::put(b);
        let d = if nesterov { gi + mu * b } else { b };
        *p -= lr * d;
    };
    // The flags chosen outside the loop, so each loop is branch-free and vectorizes (at 16
    // bits the loop with the flags inside ran 3× slower than the f32 one, measured).
    let lanes = p.iter_mut().zip(g).zip(buf.iter_mut());
    match (first, nesterov) {
        (true, true) => lanes.for_each(|((p, &g), b)| update(p, g, b, true, true)),
        (true, false) => lanes.for_each(|((p, &g), b)| update(p, g, b, true, false)),
        (false, true) => lanes.for_each(|((p, &g), b)| update(p, g, b, false, true)),
        (false, false) => lanes.for_each(|((p, &g), b)| update(p, g, b, false, false)),
    }
}

#[inline(always)]
fn adagrad<S: Cell>(h: &AdagradParams, p: &mut [f32], g: &[f32], sum: &mut [S]) {
    let (clr, wd, eps) = (h.clr, h.weight_decay, h.eps);
    for i in 0..p.len() {
        let gi = g[i] + wd * p[i];
        let s = sum[i].get() + gi * gi;
        sum[i] = S::put(s);
        p[i] -= clr * gi / (s.sqrt() + eps);
    }
}

#[inline(always)]
fn rmsprop<S: Cell>(
    h: &RmspropParams,
    p: &mut [f32],
    g: &[f32],
    sq: &mut [S],
    buf: Option<&mut [S]>,
    ga: Option<&mut [S]>,
) {
    let (lr, alpha, eps, wd) = (h.lr, h.alpha, h.eps, h.weight_decay);
    let mu = h.momentum;
    let update = |p: &mut f32, g: f32, sq: &mut S, buf: Option<&mut S>, ga: Option<&mut S>| {
        let gi = g + wd * *p;
        let v = alpha * sq.get() + (1.0 - alpha) * gi * gi;
        *sq = S::put(v);
        let avg = match ga {
            Some(ga) => {
                let a = alpha * ga.get() + (1.0 - alpha) * gi;
                *ga = S::put(a);
                (v - a * a).sqrt() + eps
            }
            None => v.sqrt() + eps,
        };
        match buf {
            Some(buf) => {
                let b = mu * buf.get() + gi / avg;
                *buf = S::put(b);
                *p -= lr * b;
            }
            None => *p -= lr * gi / avg,
        }
    };
    // One loop per combination of slots, each over zipped slices: a slot that is absent is
    // never touched inside a loop (an optional slice read in the loop compiled to masked loads
    // through its dangling pointer, each a microcode assist: 80× slower at 1e7, measured).
    let lanes = p.iter_mut().zip(g).zip(sq.iter_mut());
    match (buf, ga) {
        (None, None) => lanes.for_each(|((p, &g), sq)| update(p, g, sq, None, None)),
        (Some(buf), None) => lanes.zip(buf.iter_mut()).for_each(|(((p, &g), sq), b)| update(p, g, sq, Some(b), None)),
        (None, Some(ga)) => lanes.zip(ga.iter_mut()).for_each(|(((p, &g), sq), a)| update(p, g, sq, None, Some(a))),
        (Some(buf), Some(ga)) => lanes
            .zip(buf.iter_mut())
            .zip(ga.iter_mut())
            .for_each(|((((p, &g), sq), b), a)| update(p, g, sq, Some(b), Some(a))),
    }
}

#[inline(always)]
pub(super) fn adam<S: Cell>(
    h: &AdamParams,
    p: &mut [f32],
    g: &[f32],
    m: &mut [S],
    v: &mut [S],
    vmax: Option<&mut [S]>,
) {
    let (lr, b1, b2, eps, wd) = (h.lr, h.beta1, h.beta2, h.eps, h.weight_decay);
    let (step_size, bc2_sqrt, decoupled) = (h.step_size, h.bc2_sqrt, h.decoupled != 0);
    let n = p.len();
    // Decoupled decay scales p first; L2 decay adds wd·p to the gradient.
    let (p_scale, l2) = if decoupled { (1.0 - lr * wd, 0.0) } else { (1.0, wd) };
    let g = &g[..n];
    // Zipped slices of one length: no bounds checks, so the loops vectorize.
    let update = |p: &mut f32, g: f32, m: &mut S, v: &mut S, vmax: Option<&mut S>| {
        let pi = *p * p_scale;
        let gi = g + l2 * pi;
        let mi = b1 * m.get() + (1.0 - b1) * gi;
        let vi = b2 * v.get() + (1.0 - b2) * gi * gi;
        *m = S::put(mi);
        *v = S::put(vi);
        let denom_v = match vmax {
            Some(vm) => {
                let top = vm.get().max(vi);
                *vm = S::put(top);
                top
            }
            None => vi,
        };
        *p = pi - step_size * mi / (denom_v.sqrt() / bc2_sqrt + eps);
    };
    let lanes = p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut());
    if let Some(vmax) = vmax.filter(|_| h.amsgrad != 0) {
        for ((((p, &g), m), v), vm) in lanes.zip(vmax.iter_mut()) {
            update(p, g, m, v, Some(vm));
        }
    } else {
        for (((p, &g), m), v) in lanes {
            update(p, g, m, v, None);
        }
    }
}

#[inline(always)]
fn lecture_momentum<S: Cell>(h: &LectureMomentumParams, p: &mut [f32], g: &[f32], vel: &mut [S]) {
    let (lr, mu, wd) = (h.lr, h.momentum, h.weight_decay);
    for i in 0..p.len() {
        let v = mu * vel[i].get() - lr * (g[i] + wd * p[i]);
        vel[i] = S::put(v);
        p[i] += v;
    }
}

#[inline(always)]
fn nadam<S: Cell>(h: &NadamParams, p: &mut [f32], g: &[f32], m: &mut [S], v: &mut [S]) {
    let (b1, b2, eps, wd) = (h.beta1, h.beta2, h.eps, h.weight_decay);
    let (p_scale, l2) = if h.decoupled != 0 { (1.0 - h.lr * wd, 0.0) } else { (1.0, wd) };
    let (grad_step, avg_step, bc2_sqrt) = (h.grad_step, h.avg_step, h.bc2_sqrt);
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let pi = *p * p_scale;
        let gi = g + l2 * pi;
        let mi = b1 * m.get() + (1.0 - b1) * gi;
        let vi = b2 * v.get() + (1.0 - b2) * gi * gi;
        *m = S::put(mi);
        *v = S::put(vi);
        let den = vi.sqrt() / bc2_sqrt + eps;
        *p = pi - grad_step * gi / den - avg_step * mi / den;
    }
}

#[inline(always)]
fn radam<S: Cell>(h: &RadamParams, p: &mut [f32], g: &[f32], m: &mut [S], v: &mut [S]) {
    let (b1, b2, eps, wd) = (h.beta1, h.beta2, h.eps, h.weight_decay);
    let (p_scale, l2) = if h.decoupled != 0 { (1.0 - h.lr * wd, 0.0) } else { (1.0, wd) };
    let (step_size, scale, rectified) = (h.step_size, h.adaptive_scale, h.rectified != 0);
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let pi = *p * p_scale;
        let gi = g + l2 * pi;
        let mi = b1 * m.get() + (1.0 - b1) * gi;
        let vi = b2 * v.get() + (1.0 - b2) * gi * gi;
        *m = S::put(mi);
        *v = S::put(vi);
        let mut d = step_size * mi;
        if rectified {
            d = d * scale / (vi.sqrt() + eps);
        }
        *p = pi - d;
    }
}

#[inline(always)]
fn adamax<S: Cell>(h: &AdamaxParams, p: &mut [f32], g: &[f32], m: &mut [S], u: &mut [S]) {
    let (b1, b2, eps, wd, clr) = (h.beta1, h.beta2, h.eps, h.weight_decay, h.clr);
    for (((p, &g), m), u) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(u.iter_mut()) {
        let gi = g + wd * *p;
        let mi = b1 * m.get() + (1.0 - b1) * gi;
        let ui = (b2 * u.get()).max(gi.abs() + eps);
        *m = S::put(mi);
        *u = S::put(ui);
        *p -= clr * mi / ui;
    }
}

#[inline(always)]
fn adadelta<S: Cell>(h: &AdadeltaParams, p: &mut [f32], g: &[f32], sq: &mut [S], acc: &mut [S]) {
    let (lr, rho, eps, wd) = (h.lr, h.rho, h.eps, h.weight_decay);
    for (((p, &g), sq), acc) in p.iter_mut().zip(g).zip(sq.iter_mut()).zip(acc.iter_mut()) {
        let gi = g + wd * *p;
        let v = rho * sq.get() + (1.0 - rho) * gi * gi;
        let a0 = acc.get();
        let d = (a0 + eps).sqrt() / (v + eps).sqrt() * gi;
        *sq = S::put(v);
        *acc = S::put(rho * a0 + (1.0 - rho) * d * d);
        *p -= lr * d;
    }
}

/// WGSL's `sign` (and torch's): 0 at ±0, unlike `f32::signum`.
#[inline(always)]
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

#[inline(always)]
fn lion<S: Cell>(h: &LionParams, p: &mut [f32], g: &[f32], m: &mut [S]) {
    let (lr, b1, b2, wd) = (h.lr, h.beta1, h.beta2, h.weight_decay);
    for ((p, &g), m) in p.iter_mut().zip(g).zip(m.iter_mut()) {
        let pi = *p * (1.0 - lr * wd);
        let m0 = m.get();
        let c = b1 * m0 + (1.0 - b1) * g;
        *m = S::put(b2 * m0 + (1.0 - b2) * g);
        *p = pi - lr * sign(c);
    }
}

#[inline(always)]
fn rprop<S: Cell>(h: &RpropParams, p: &mut [f32], g: &[f32], prev: &mut [S], size: &mut [S]) {
    let (minus, plus, lo, hi) = (h.eta_minus, h.eta_plus, h.step_min, h.step_max);
    for (((p, &g0), prev), size) in p.iter_mut().zip(g).zip(prev.iter_mut()).zip(size.iter_mut()) {
        let d = g0 * prev.get();
        let (factor, g) = if d > 0.0 {
            (plus, g0)
        } else if d < 0.0 {
            (minus, 0.0)
        } else {
            (1.0, g0)
        };
        // WGSL's clamp: min(max(x, lo), hi).
        let s = (size.get() * factor).max(lo).min(hi);
        *prev = S::put(g);
        *size = S::put(s);
        *p -= sign(g) * s;
    }
}

#[inline(always)]
fn asgd<S: Cell>(h: &AsgdParams, p: &mut [f32], g: &[f32], ax: &mut [S]) {
    let (eta, lambd, mu, wd, copy) = (h.eta, h.lambd, h.mu, h.weight_decay, h.copy != 0);
    for ((p, &g), ax) in p.iter_mut().zip(g).zip(ax.iter_mut()) {
        let gi = g + wd * *p;
        let pi = *p * (1.0 - lambd * eta) - eta * gi;
        *ax = S::put(if copy { pi } else { ax.get() + (pi - ax.get()) * mu });
        *p = pi;
    }
}

#[inline(always)]
fn ademamix<S: Cell>(h: &AdemamixParams, p: &mut [f32], g: &[f32], m1: &mut [S], m2: &mut [S], nu: &mut [S]) {
    let (b1, b2, b3, c3) = (h.beta1, h.beta2, h.beta3, h.one_minus_beta3);
    let (alpha, eps, wd, lr) = (h.alpha, h.eps, h.weight_decay, h.lr);
    let (bc1, bc2_sqrt) = (h.bc1, h.bc2_sqrt);
    for ((((p, &g), m1), m2), nu) in p.iter_mut().zip(g).zip(m1.iter_mut()).zip(m2.iter_mut()).zip(nu.iter_mut()) {
        let a = b1 * m1.get() + (1.0 - b1) * g;
        let b = b3 * m2.get() + c3 * g;
        let v = b2 * nu.get() + (1.0 - b2) * g * g;
        *m1 = S::put(a);
        *m2 = S::put(b);
        *nu = S::put(v);
        let den = v.sqrt() / bc2_sqrt + eps;
        let u = (a / bc1 + alpha * b) / den + wd * *p;
        *p -= lr * u;
    }
}

#[inline(always)]
fn schedulefree<S: Cell>(h: &SchedulefreeParams, y: &mut [f32], z: &mut [S], v: &mut [S], g: &[f32]) {
    let (lr, b1, b2, eps, wd, c, bc2_sqrt) = (h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.ckp1, h.bc2_sqrt);
    for (((y, &g), z), v) in y.iter_mut().zip(g).zip(z.iter_mut()).zip(v.iter_mut()) {
        let vi = b2 * v.get() + (1.0 - b2) * g * g;
        let u = g / (vi.sqrt() / bc2_sqrt + eps) + wd * *y;
        let z0 = z.get();
        let y1 = *y + c * (z0 - *y);
        *y = y1 + lr * (b1 * (1.0 - c) - 1.0) * u;
        *z = S::put(z0 - lr * u);
        *v = S::put(vi);
    }
}

/// PyTorch's `lerp(a, b, w)`: exact at w = 1 (WGSL's `lerp_t` in `optim.wgsl`).
#[inline(always)]
fn lerp(a: f32, b: f32, w: f32) -> f32 {
    if w < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    }
}

#[inline(always)]
fn muon_momentum<S: Cell>(h: &MuonMomentumParams, out: &mut [f32], g: &[f32], buf: &mut [S]) {
    let (mu, nesterov) = (h.momentum, h.nesterov != 0);
    for ((o, &g), b) in out.iter_mut().zip(g).zip(buf.iter_mut()) {
        let nb = lerp(b.get(), g, 1.0 - mu);
        *b = S::put(nb);
        *o = if nesterov { lerp(g, nb, mu) } else { nb };
    }
}

#[inline(always)]
fn schedulefree_mode<S: Cell>(h: &SchedulefreeModeParams, p: &mut [f32], z: &mut [S]) {
    if h.init != 0 {
        for (p, z) in p.iter().zip(z.iter_mut()) {
            *z = S::put(*p);
        }
        return;
    }
    let w = h.weight;
    for (p, z) in p.iter_mut().zip(z.iter()) {
        *p += w * (z.get() - *p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{Adam, Carried, OptimConfig, Rmsprop, Sgd, Step, OPTIMIZER_NAMES};

    /// Every fused optimizer's step, and the flags that change its loops, at its second step.
    fn steps() -> Vec<OptimStep> {
        let mut configs: Vec<OptimConfig> = OPTIMIZER_NAMES.iter().map(|n| OptimConfig::defaults(n).unwrap()).collect();
        configs.extend([
            OptimConfig::Sgd(Sgd { momentum: 0.9, nesterov: true, weight_decay: 0.01, ..Sgd::default() }),
            OptimConfig::Sgd(Sgd { momentum: 0.9, dampening: 0.1, ..Sgd::default() }),
            OptimConfig::Rmsprop(Rmsprop { centered: true, momentum: 0.9, ..Rmsprop::default() }),
            OptimConfig::Adam(Adam { amsgrad: true, weight_decay: 0.01, ..Adam::default() }),
        ]);
        let steps: Vec<OptimStep> = configs
            .iter()
            .filter_map(|c| match c.kernel_step(2, 1e-2, &Carried::replay(c, 2, |_| 1e-2)) {
                Step::Fused(s) => Some(s),
                _ => None,
            })
            .collect();
        // All but Adafactor and Muon, which step matrices in passes of their own.
        assert_eq!(steps.len(), configs.len() - 2, "the fused optimizers");
        steps
    }

    fn random(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
        crate::rng::Rng::new(seed).uniform_vec(n, lo, hi)
    }

    /// The loops' bits for one step, run by `path` (None: the portable build).
    type Path<S> = unsafe fn(&OptimStep, Objective, &mut [f32], &[f32], &mut [&mut [S]]);

    /// The 16- and 8-lane builds of the loops give the portable build's bits: for every fused
    /// optimizer, both objectives, at odd lengths, with state cells of type `S`.
    fn every_vector_width_gives_the_same_bits<S: Cell + Copy>(paths: &[(&str, Path<S>)], cell: impl Fn(f32) -> S) {
        let mut compared = 0;
        for step in steps() {
            let k = step.slots().len();
            for objective in [Objective::Minimize, Objective::Maximize] {
                for n in [1, 7, 1023, 4099] {
                    let p0 = random(n, 1, -1.0, 1.0);
                    let g = random(n, 2, -1.0, 1.0);
                    // Positive state (a centered RMSProp's may still take the root of a
                    // negative number: NaN, whose bits every width must give alike too).
                    let s0: Vec<Vec<S>> =
                        (0..k).map(|j| random(n, 3 + j as u64, 0.01, 0.5).into_iter().map(&cell).collect()).collect();
                    let run = |path: Option<Path<S>>| {
                        let mut p = p0.clone();
                        let mut s = s0.clone();
                        let mut views: Vec<&mut [S]> = s.iter_mut().map(|v| v.as_mut_slice()).collect();
                        match path {
                            // SAFETY: each path is listed only where the CPU has its features.
                            Some(f) => unsafe { f(&step, objective, &mut p, &g, &mut views) },
                            None => directed(&step, objective, &mut p, &g, &mut views),
                        }
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        let cells: Vec<Vec<f32>> = s.iter().map(|v| v.iter().map(|c| c.get()).collect()).collect();
                        (bits(&p), cells.iter().map(|v| bits(v)).collect::<Vec<_>>())
                    };
                    let want = run(None);
                    for &(name, f) in paths {
                        assert!(
                            run(Some(f)) == want,
                            "{step:?} {objective:?} n {n}: {name} against the portable loops"
                        );
                        compared += 1;
                    }
                }
            }
        }
        assert_eq!(compared, paths.len() * steps().len() * 2 * 4);
    }

    #[test]
    fn every_vector_width_gives_the_same_bits_with_f32_state() {
        let mut paths: Vec<(&str, Path<f32>)> = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if crate::backend::host::has_avx2_fma() {
                paths.push(("avx2", chunk_avx2::<f32>));
            }
            if crate::backend::host::has_avx512() {
                paths.push(("avx512", chunk_avx512::<f32>));
            }
        }
        every_vector_width_gives_the_same_bits(&paths, |x| x);
    }

    #[test]
    fn every_vector_width_gives_the_same_bits_with_bf16_state() {
        let mut paths: Vec<(&str, Path<Bf16>)> = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if crate::backend::host::has_avx2_fma() {
                paths.push(("avx2", chunk_avx2::<Bf16>));
            }
            if crate::backend::host::has_avx512() {
                paths.push(("avx512", chunk_avx512::<Bf16>));
            }
        }
        every_vector_width_gives_the_same_bits(&paths, Bf16::put);
    }
}
