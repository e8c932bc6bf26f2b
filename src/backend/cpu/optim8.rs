//! The rayon twin of `shaders/optim_adam8.wgsl`: blockwise 8-bit Adam/AdamW over the blocks of
//! a table (`quant::BlockTable`), in parallel tasks of consecutive blocks.

use super::code8::Coder;
use super::optim::{adam, wide_vectors};
use crate::backend::optim_kernel::*;
use crate::backend::quant::{Block, BlockKind, DynamicMap, BLOCK};
use rayon::prelude::*;

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
pub fn apply_blockwise8(
    h: &AdamParams,
    objective: Objective,
    p: &mut [f32],
    g: &[f32],
    blocks: &[Block],
    s: Blockwise8Mut,
) {
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
    let wide = wide_vectors();
    tasks.into_par_iter().for_each(|(group, p, g, mc, vc, ma, va, ms, vs)| {
        let task = Task8 { blocks: group, p, g, mc, vc, ma, va, ms, vs };
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: the CPU has AVX2 and FMA (checked at run time by `wide_vectors`).
            return unsafe { task8_avx2(&h, objective, task) };
        }
        let _ = wide;
        task8(&h, objective, task)
    });
}

/// One parallel task of [`apply_blockwise8`]: consecutive blocks and the pieces of every
/// buffer they cover.
struct Task8<'a> {
    blocks: &'a [Block],
    p: &'a mut [f32],
    g: &'a [f32],
    mc: &'a mut [u8],
    vc: &'a mut [u8],
    ma: &'a mut [f32],
    va: &'a mut [f32],
    ms: &'a mut [f32],
    vs: &'a mut [f32],
}

#[inline(always)]
fn task8(h: &AdamParams, objective: Objective, t: Task8) {
    let base = t.blocks[0].start;
    let (mut qi, mut si) = (0, 0);
    let mut neg = [0f32; BLOCK];
    for b in t.blocks {
        let r = b.start - base..b.start - base + b.len;
        // The block's gradient as the objective reads it (negated on the stack to maximize).
        let g = match objective {
            Objective::Minimize => &t.g[r.clone()],
            Objective::Maximize => {
                for (d, &x) in neg.iter_mut().zip(&t.g[r.clone()]) {
                    *d = -x;
                }
                &neg[..b.len]
            }
        };
        match b.kind {
            BlockKind::Quantized => {
                let p = &mut t.p[r.clone()];
                block8(h, p, g, &mut t.mc[r.clone()], &mut t.vc[r], &mut t.ma[qi], &mut t.va[qi]);
                qi += 1;
            }
            BlockKind::Full => {
                let sr = si..si + b.len;
                adam(h, &mut t.p[r], g, &mut t.ms[sr.clone()], &mut t.vs[sr], None);
                si += b.len;
            }
        }
    }
}

/// [`task8`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn task8_avx2(h: &AdamParams, objective: Objective, t: Task8) {
    task8(h, objective, t)
}

/// The largest of `xs` (all ≥ 0 or their absolute values), in eight lanes so it vectorizes.
#[inline(always)]
fn max_abs(xs: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut it = xs.chunks_exact(8);
    for c in &mut it {
        for k in 0..8 {
            lanes[k] = lanes[k].max(c[k].abs());
        }
    }
    for &x in it.remainder() {
        lanes[0] = lanes[0].max(x.abs());
    }
    lanes.iter().fold(0f32, |a, &b| a.max(b))
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
    let (m, v) = (&mut m[..n], &mut v[..n]);
    let (a_m, a_v) = (*am, *av);
    let (sv, uv) = (&sm.values, &um.values);
    for (x, &c) in m.iter_mut().zip(mc.iter()) {
        *x = sv[c as usize] * a_m;
    }
    for (x, &c) in v.iter_mut().zip(vc.iter()) {
        *x = uv[c as usize] * a_v;
    }
    adam(h, p, g, m, v, None);
    let (mx_m, mx_v) = (max_abs(m), max_abs(v));
    *am = mx_m;
    *av = mx_v;
    // Normalize in place (exact division, vectorized), then look the codes up.
    for x in m.iter_mut() {
        *x = if mx_m > 0.0 { *x / mx_m } else { 0.0 };
    }
    for x in v.iter_mut() {
        *x = if mx_v > 0.0 { *x / mx_v } else { 0.0 };
    }
    Coder::<true>::new(sm).codes(m, mc);
    Coder::<false>::new(um).codes(v, vc);
}
