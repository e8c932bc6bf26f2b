//! The rayon twin of `shaders/optim8.wgsl`: blockwise 8-bit state over the blocks of a table
//! (`quant::BlockTable`), in parallel tasks of consecutive blocks. Per block: dequantize each
//! kept slot (its map times the block's absmax), the optimizer's f32 formula (the same loop as
//! its f32 state's, [`chunk`]), each slot's new absmax, requantize to the nearest code.

use super::code8::Coder;
use super::optim::{chunk, wide_vectors};
use crate::backend::optim_kernel::*;
use crate::backend::quant::{Block, BlockKind, DynamicMap, BLOCK};
use rayon::prelude::*;

/// The 8-bit state's buffers as slices, one per kept slot (one to three).
pub struct Blockwise8Mut<'a> {
    /// Each slot's codes, one per arena element.
    pub codes: Vec<&'a mut [u8]>,
    /// Each slot's absmax, one per quantized block.
    pub absmax: Vec<&'a mut [f32]>,
    /// Each slot's f32 state of the small tensors.
    pub small: Vec<&'a mut [f32]>,
    /// Bit k set: slot k's codes are on the signed map.
    pub signed: u32,
}

/// Blocks per parallel task.
const BLOCKS_PER_TASK: usize = 128;

/// One step `step` with blockwise 8-bit state over every block of `blocks`, in parallel.
pub fn apply_blockwise8(
    step: &OptimStep,
    objective: Objective,
    p: &mut [f32],
    g: &[f32],
    blocks: &[Block],
    s: Blockwise8Mut,
) {
    // Cut every buffer into the pieces each task's blocks cover (blocks ascend in every index).
    let Blockwise8Mut { mut codes, mut absmax, mut small, signed } = s;
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
        let qa = group.iter().find(|b| b.kind == BlockKind::Quantized).map_or(at[1], |b| b.index);
        let so = group.iter().find(|b| b.kind == BlockKind::Full).map_or(at[2], |b| b.index);
        let c: Vec<&mut [u8]> = codes.iter_mut().map(|x| carve(x, skip, end - first.start)).collect();
        let a: Vec<&mut [f32]> = absmax.iter_mut().map(|x| carve(x, qa - at[1], q)).collect();
        let s: Vec<&mut [f32]> = small.iter_mut().map(|x| carve(x, so - at[2], sm)).collect();
        tasks.push(Task8 { blocks: group, p: pp, g: gp, codes: c, absmax: a, small: s });
        at = [end, qa + q, so + sm];
    }
    let step = *step;
    let wide = wide_vectors();
    let widest = crate::backend::host::has_avx512();
    tasks.into_par_iter().for_each(|task| {
        #[cfg(target_arch = "x86_64")]
        if widest {
            // SAFETY: the CPU has AVX-512 F/BW/VL, AVX2 and FMA (checked at run time).
            return unsafe { task8_avx512(&step, objective, signed, task) };
        }
        #[cfg(target_arch = "x86_64")]
        if wide {
            // SAFETY: the CPU has AVX2 and FMA (checked at run time by `wide_vectors`).
            return unsafe { task8_avx2(&step, objective, signed, task) };
        }
        let _ = (wide, widest);
        task8(&step, objective, signed, task)
    });
}

/// One parallel task of [`apply_blockwise8`]: consecutive blocks and the pieces of every
/// buffer they cover.
struct Task8<'a> {
    blocks: &'a [Block],
    p: &'a mut [f32],
    g: &'a [f32],
    codes: Vec<&'a mut [u8]>,
    absmax: Vec<&'a mut [f32]>,
    small: Vec<&'a mut [f32]>,
}

#[inline(always)]
fn task8(step: &OptimStep, objective: Objective, signed: u32, mut t: Task8) {
    let base = t.blocks[0].start;
    let slots = t.codes.len();
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
        let p = &mut t.p[r.clone()];
        match b.kind {
            BlockKind::Quantized => {
                let mut codes: Vec<&mut [u8]> = t.codes.iter_mut().map(|c| &mut c[r.clone()]).collect();
                let mut absmax = [0f32; 3];
                for (k, a) in absmax.iter_mut().enumerate().take(slots) {
                    *a = t.absmax[k][qi];
                }
                block8(step, signed, p, g, &mut codes, &mut absmax[..slots]);
                for (k, a) in absmax.iter().enumerate().take(slots) {
                    t.absmax[k][qi] = *a;
                }
                qi += 1;
            }
            BlockKind::Full => {
                let sr = si..si + b.len;
                let mut state: Vec<&mut [f32]> = t.small.iter_mut().map(|s| &mut s[sr.clone()]).collect();
                chunk(step, p, g, &mut state);
                si += b.len;
            }
        }
    }
}

/// [`task8`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn task8_avx2(step: &OptimStep, objective: Objective, signed: u32, t: Task8) {
    task8(step, objective, signed, t)
}

/// [`task8`] compiled for AVX-512 (16 lanes; the coder's own AVX-512 path).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn task8_avx512(step: &OptimStep, objective: Objective, signed: u32, t: Task8) {
    task8(step, objective, signed, t)
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

/// One quantized block of at most [`BLOCK`] elements: each slot's `codes` and `absmax`.
#[inline(always)]
fn block8(step: &OptimStep, signed: u32, p: &mut [f32], g: &[f32], codes: &mut [&mut [u8]], absmax: &mut [f32]) {
    let n = p.len();
    let maps = [DynamicMap::unsigned(), DynamicMap::signed()];
    let map = |k: usize| maps[(signed >> k & 1) as usize];
    let mut values = [[0f32; BLOCK]; 3];
    for (k, (vals, c)) in values.iter_mut().zip(codes.iter()).enumerate() {
        let (table, a) = (&map(k).values, absmax[k]);
        for (x, &c) in vals[..n].iter_mut().zip(c.iter()) {
            *x = table[c as usize] * a;
        }
    }
    {
        let [v0, v1, v2] = &mut values;
        let mut slots: [&mut [f32]; 3] = [&mut v0[..n], &mut v1[..n], &mut v2[..n]];
        chunk(step, p, g, &mut slots[..codes.len()]);
    }
    for (k, (vals, c)) in values.iter_mut().zip(codes.iter_mut()).enumerate() {
        let x = &mut vals[..n];
        let top = max_abs(x);
        absmax[k] = top;
        // Normalize in place (exact division, vectorized), then look the codes up.
        for v in x.iter_mut() {
            *v = if top > 0.0 { *v / top } else { 0.0 };
        }
        if signed >> k & 1 == 1 {
            Coder::<true>::new(map(k)).codes(x, c);
        } else {
            Coder::<false>::new(map(k)).codes(x, c);
        }
    }
}
