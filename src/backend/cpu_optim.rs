//! The rayon twins of `shaders/optim_<kernel>.wgsl`: each optimizer as one fused, parallel
//! pass over the parameter arena, reading the same parameter structs
//! ([`super::optim_kernel`]). Formulas follow `torch.optim` (see `optim::reference` for the
//! plain f64 version).

use super::optim_kernel::*;
use super::quant::{bf16_from_f32, bf16_to_f32, Block, BlockKind, DynamicMap, BLOCK};
use rayon::prelude::*;

/// Elements per parallel task, at least: large enough to amortise scheduling.
const CHUNK: usize = 1 << 15;

/// Tasks per thread for large arenas: few, long, contiguous runs keep the hardware
/// prefetchers streaming (measured: many 32K-element tasks interleaved between threads move
/// memory about 20% slower at 1e8 parameters than one contiguous run per thread).
fn chunk_len(n: usize) -> usize {
    CHUNK.max(n.div_ceil(rayon::current_num_threads() * 4))
}

/// Apply one step to `p` (in place) from `g` with the optimizer's state slots.
pub fn apply(step: &OptimStep, p: &mut [f32], g: &[f32], slots: Vec<&mut [f32]>) {
    let n = p.len();
    assert_eq!(g.len(), n);
    assert!(slots.iter().all(|s| s.len() == n));
    // Cut every slice into the same chunks, then run the chunks in parallel.
    let len = chunk_len(n);
    let mut slot_chunks: Vec<_> = slots.into_iter().map(|s| s.chunks_mut(len)).collect();
    let mut work = Vec::with_capacity(n.div_ceil(len));
    for (pc, gc) in p.chunks_mut(len).zip(g.chunks(len)) {
        let sc: Vec<&mut [f32]> = slot_chunks.iter_mut().map(|it| it.next().expect("slot as long as p")).collect();
        work.push((pc, gc, sc));
    }
    let step = *step;
    let wide = wide_vectors();
    work.into_par_iter().for_each(|(p, g, mut s)| {
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: the CPU has AVX2 and FMA (checked at run time by `wide_vectors`).
            return unsafe { chunk_avx2(&step, p, g, &mut s) };
        }
        let _ = wide;
        chunk(&step, p, g, &mut s)
    });
}

/// Whether this CPU runs the 8-lane (AVX2) build of the loops. The results are bit-identical
/// either way: every lane does the same IEEE operations, and Rust never contracts a·b + c into
/// a fused multiply-add on its own.
fn wide_vectors() -> bool {
    super::cpu::has_avx2_fma()
}

/// The chunk's state slices by binding (S0, S1, S2), `None` where the settings keep no slot.
fn bound<'a>(step: &OptimStep, s: &'a mut [&mut [f32]]) -> [Option<&'a mut [f32]>; 3] {
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
fn chunk(step: &OptimStep, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
    let [s0, s1, s2] = bound(step, s);
    let n = p.len();
    // Slices of exactly n elements, so the loops below need no bounds checks.
    fn slot(x: Option<&mut [f32]>, n: usize) -> Option<&mut [f32]> {
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
    }
}

/// [`chunk`] compiled for AVX2: the same code, vectorized 8 lanes wide.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_avx2(step: &OptimStep, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
    chunk(step, p, g, s)
}

#[inline(always)]
fn sgd(h: &SgdParams, p: &mut [f32], g: &[f32], buf: Option<&mut [f32]>) {
    let (lr, mu, damp, wd) = (h.lr, h.momentum, h.dampening, h.weight_decay);
    let (nesterov, first) = (h.nesterov != 0, h.first_step != 0);
    let Some(buf) = buf.filter(|_| mu != 0.0) else {
        for (p, &g) in p.iter_mut().zip(g) {
            *p -= lr * (g + wd * *p);
        }
        return;
    };
    for i in 0..p.len() {
        let gi = g[i] + wd * p[i];
        let b = if first { gi } else { mu * buf[i] + (1.0 - damp) * gi };
        buf[i] = b;
        let d = if nesterov { gi + mu * b } else { b };
        p[i] -= lr * d;
    }
}

#[inline(always)]
fn adagrad(h: &AdagradParams, p: &mut [f32], g: &[f32], sum: &mut [f32]) {
    let (clr, wd, eps) = (h.clr, h.weight_decay, h.eps);
    for i in 0..p.len() {
        let gi = g[i] + wd * p[i];
        let s = sum[i] + gi * gi;
        sum[i] = s;
        p[i] -= clr * gi / (s.sqrt() + eps);
    }
}

#[inline(always)]
fn rmsprop(
    h: &RmspropParams,
    p: &mut [f32],
    g: &[f32],
    sq: &mut [f32],
    mut buf: Option<&mut [f32]>,
    mut ga: Option<&mut [f32]>,
) {
    let (lr, alpha, eps, wd) = (h.lr, h.alpha, h.eps, h.weight_decay);
    let mu = h.momentum;
    let n = p.len();
    for i in 0..n {
        let gi = g[i] + wd * p[i];
        let v = alpha * sq[i] + (1.0 - alpha) * gi * gi;
        sq[i] = v;
        let avg = match ga.as_deref_mut() {
            Some(ga) => {
                let a = alpha * ga[i] + (1.0 - alpha) * gi;
                ga[i] = a;
                (v - a * a).sqrt() + eps
            }
            None => v.sqrt() + eps,
        };
        match buf.as_deref_mut() {
            Some(buf) => {
                let b = mu * buf[i] + gi / avg;
                buf[i] = b;
                p[i] -= lr * b;
            }
            None => p[i] -= lr * gi / avg,
        }
    }
}

#[inline(always)]
fn adam(h: &AdamParams, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], vmax: Option<&mut [f32]>) {
    let (lr, b1, b2, eps, wd) = (h.lr, h.beta1, h.beta2, h.eps, h.weight_decay);
    let (step_size, bc2_sqrt, decoupled) = (h.step_size, h.bc2_sqrt, h.decoupled != 0);
    let n = p.len();
    // Decoupled decay scales p first; L2 decay adds wd·p to the gradient.
    let (p_scale, l2) = if decoupled { (1.0 - lr * wd, 0.0) } else { (1.0, wd) };
    let g = &g[..n];
    // Zipped slices of one length: no bounds checks, so the loops vectorize.
    let update = |p: &mut f32, g: f32, m: &mut f32, v: &mut f32, vmax: Option<&mut f32>| {
        let pi = *p * p_scale;
        let gi = g + l2 * pi;
        let mi = b1 * *m + (1.0 - b1) * gi;
        let vi = b2 * *v + (1.0 - b2) * gi * gi;
        *m = mi;
        *v = vi;
        let denom_v = match vmax {
            Some(vm) => {
                *vm = vm.max(vi);
                *vm
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
fn lecture_momentum(h: &LectureMomentumParams, p: &mut [f32], g: &[f32], vel: &mut [f32]) {
    let (lr, mu, wd) = (h.lr, h.momentum, h.weight_decay);
    for i in 0..p.len() {
        let v = mu * vel[i] - lr * (g[i] + wd * p[i]);
        vel[i] = v;
        p[i] += v;
    }
}

/// Elements decoded to f32 at a time in the bfloat16 pass: small enough that the f32 copies
/// of the state stay in L1, large enough that the f32 loops vectorize.
const BF16_RUN: usize = 512;

/// [`apply`] with bfloat16 state slots (`slots[k][i]` is element `i`'s slot `k`): each run of
/// [`BF16_RUN`] elements is widened to f32, stepped by the f32 formulas and rounded back.
pub fn apply_bf16(step: &OptimStep, p: &mut [f32], g: &[f32], slots: Vec<&mut [u16]>) {
    let n = p.len();
    assert_eq!(g.len(), n);
    assert!(slots.iter().all(|s| s.len() == n));
    let len = chunk_len(n);
    let mut slot_chunks: Vec<_> = slots.into_iter().map(|s| s.chunks_mut(len)).collect();
    let mut work = Vec::with_capacity(n.div_ceil(len));
    for (pc, gc) in p.chunks_mut(len).zip(g.chunks(len)) {
        let sc: Vec<&mut [u16]> = slot_chunks.iter_mut().map(|it| it.next().expect("slot as long as p")).collect();
        work.push((pc, gc, sc));
    }
    let step = *step;
    let wide = wide_vectors();
    work.into_par_iter().for_each(|(p, g, mut s)| {
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: the CPU has AVX2 and FMA (checked at run time by `wide_vectors`).
            return unsafe { chunk_bf16_avx2(&step, p, g, &mut s) };
        }
        let _ = wide;
        chunk_bf16(&step, p, g, &mut s)
    });
}

#[inline(always)]
fn chunk_bf16(step: &OptimStep, p: &mut [f32], g: &[f32], s: &mut [&mut [u16]]) {
    let mut wide = [[0f32; BF16_RUN]; 3];
    for at in (0..p.len()).step_by(BF16_RUN) {
        let n = BF16_RUN.min(p.len() - at);
        for (k, slot) in s.iter().enumerate() {
            for (w, &h) in wide[k][..n].iter_mut().zip(&slot[at..at + n]) {
                *w = bf16_to_f32(h);
            }
        }
        {
            let [w0, w1, w2] = &mut wide;
            let mut views: Vec<&mut [f32]> =
                [&mut w0[..n], &mut w1[..n], &mut w2[..n]].into_iter().take(s.len()).collect();
            chunk(step, &mut p[at..at + n], &g[at..at + n], &mut views);
        }
        for (k, slot) in s.iter_mut().enumerate() {
            for (h, &w) in slot[at..at + n].iter_mut().zip(&wide[k][..n]) {
                *h = bf16_from_f32(w);
            }
        }
    }
}

/// [`chunk_bf16`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_bf16_avx2(step: &OptimStep, p: &mut [f32], g: &[f32], s: &mut [&mut [u16]]) {
    chunk_bf16(step, p, g, s)
}

/// Blockwise 8-bit Adam/AdamW over the blocks of a table (see `quant::BlockTable`): the rayon
/// twin of `shaders/optim_adam8.wgsl`. Per block: dequantize, the f32 Adam formula of
/// [`apply`], the new absmax, requantize to the nearest code.
pub struct Blockwise8Mut<'a> {
    /// exp_avg codes, one per arena element.
    pub m_codes: &'a mut [u8],
    /// exp_avg_sq codes.
    pub v_codes: &'a mut [u8],
    /// exp_avg's absmax per quantized block.
    pub m_absmax: &'a mut [f32],
    /// exp_avg_sq's absmax per quantized block.
    pub v_absmax: &'a mut [f32],
    /// exp_avg of the small tensors.
    pub m_small: &'a mut [f32],
    /// exp_avg_sq of the small tensors.
    pub v_small: &'a mut [f32],
}

/// Blocks per parallel task.
const BLOCKS_PER_TASK: usize = 128;

/// One step of blockwise 8-bit Adam over every block of `blocks`, in parallel.
pub fn apply_blockwise8(h: &AdamParams, p: &mut [f32], g: &[f32], blocks: &[Block], s: Blockwise8Mut) {
    // Cut every buffer into the pieces each task's blocks cover (blocks ascend in every index).
    let Blockwise8Mut { mut m_codes, mut v_codes, mut m_absmax, mut v_absmax, mut m_small, mut v_small } = s;
    let (mut p, mut g) = (p, g);
    let mut at = [0usize; 3]; // arena element, absmax slot, small offset reached so far
    let mut tasks = Vec::new();
    for group in blocks.chunks(BLOCKS_PER_TASK) {
        let (first, last) = (group[0], group[group.len() - 1]);
        let end = last.start + last.len;
        let q: usize = group.iter().filter(|b| b.kind == BlockKind::Quantized).count();
        let sm: usize = group.iter().filter(|b| b.kind == BlockKind::Full).map(|b| b.len).sum();
        let skip = first.start - at[0];
        let pp = carve(&mut p, skip, end - first.start);
        let (gp, rest) = g[skip..].split_at(end - first.start);
        g = rest;
        let mc = carve(&mut m_codes, skip, end - first.start);
        let vc = carve(&mut v_codes, skip, end - first.start);
        let qa = group.iter().find(|b| b.kind == BlockKind::Quantized).map_or(at[1], |b| b.index);
        let ma = carve(&mut m_absmax, qa - at[1], q);
        let va = carve(&mut v_absmax, qa - at[1], q);
        let so = group.iter().find(|b| b.kind == BlockKind::Full).map_or(at[2], |b| b.index);
        let ms = carve(&mut m_small, so - at[2], sm);
        let vs = carve(&mut v_small, so - at[2], sm);
        tasks.push((group, pp, gp, mc, vc, ma, va, ms, vs));
        at = [end, qa + q, so + sm];
    }
    let h = *h;
    tasks.into_par_iter().for_each(|(group, p, g, mc, vc, ma, va, ms, vs)| {
        let base = group[0].start;
        let (mut qi, mut si) = (0, 0);
        for b in group {
            let r = b.start - base..b.start - base + b.len;
            match b.kind {
                BlockKind::Quantized => {
                    block8(
                        &h,
                        &mut p[r.clone()],
                        &g[r.clone()],
                        &mut mc[r.clone()],
                        &mut vc[r],
                        &mut ma[qi],
                        &mut va[qi],
                    );
                    qi += 1;
                }
                BlockKind::Full => {
                    let sr = si..si + b.len;
                    adam(&h, &mut p[r.clone()], &g[r], &mut ms[sr.clone()], &mut vs[sr], None);
                    si += b.len;
                }
            }
        }
    });
}

/// The next `n` elements of `x` after skipping `skip`; `x` keeps the rest.
fn carve<'a, T>(x: &mut &'a mut [T], skip: usize, n: usize) -> &'a mut [T] {
    let rest = std::mem::take(x);
    let (piece, rest) = rest[skip..].split_at_mut(n);
    *x = rest;
    piece
}

/// One quantized block: at most [`BLOCK`] elements.
#[inline(always)]
fn block8(h: &AdamParams, p: &mut [f32], g: &[f32], mc: &mut [u8], vc: &mut [u8], am: &mut f32, av: &mut f32) {
    let (sm, um) = (DynamicMap::signed(), DynamicMap::unsigned());
    let n = p.len();
    let mut m = [0f32; BLOCK];
    let mut v = [0f32; BLOCK];
    for i in 0..n {
        m[i] = sm.decode(mc[i], *am);
        v[i] = um.decode(vc[i], *av);
    }
    adam(h, p, g, &mut m[..n], &mut v[..n], None);
    let mx_m = m[..n].iter().fold(0f32, |a, &x| a.max(x.abs()));
    let mx_v = v[..n].iter().fold(0f32, |a, &x| a.max(x));
    *am = mx_m;
    *av = mx_v;
    for i in 0..n {
        mc[i] = if mx_m > 0.0 { sm.code(m[i] / mx_m) } else { sm.zero };
        vc[i] = if mx_v > 0.0 { um.code(v[i] / mx_v) } else { um.zero };
    }
}
