//! The rayon CPU backend: host `Vec<f32>` storage, matmul in [`matmul`] (AVX2 kernels for
//! the MLP's shapes, the `gemm` crate for long inner sizes), everything else as parallel loops.
//!
//! Worker threads run with flush-to-zero and denormals-are-zero set, so optimizer state that
//! decays into subnormal floats (AdamW on CIFAR-10's dead ReLU units) does not slow a step
//! down by an order of magnitude; see `../shared/PERF-NOTES.md` and BENCHMARKS.md.

pub mod adafactor;
pub mod code8;
pub mod dropout;
mod elementwise;
pub mod gram;
pub mod matmul;
pub mod ns_bf16;
pub mod optim;
mod optim8;
pub mod store;
pub mod vector;

use self::elementwise::*;
use self::matmul::gemm_f32;
use self::store::Store;
use crate::backend::host::host_available_bytes;
pub use crate::backend::host::{
    advise_huge_pages, flush_to_zero_is_set, has_avx2_fma, init_thread_pool, set_flush_to_zero,
};
use crate::backend::op_set::{Backend, Capacity, Counters};
use crate::backend::ops::{
    class_index, Act, Axis, Bcast, BinaryOp, ByteBuffer, CeOutputs, Dims, DropoutMask, Epilogue, Form, Gather, Layout,
    UnaryOp,
};
use crate::backend::optim_kernel::{AdafactorParams, Blockwise8, Factored, Objective, OptimStep};
use crate::backend::pending::Pending;
use crate::tensor::View;
use anyhow::{bail, Result};
use rayon::prelude::*;
use std::f32::consts::FRAC_1_SQRT_2;

/// Below this many elements a loop runs on the calling thread.
const PAR_MIN: usize = 1 << 14;

/// Whether a loop over `len` elements splits across the pool: large enough, and not inside a
/// data-parallel slice (see [`crate::backend::host::SerialSection`]).
fn fork(len: usize) -> bool {
    len >= PAR_MIN && crate::backend::host::may_fork()
}

/// The rayon backend: host memory, parallel loops on flush-to-zero worker threads.
pub struct CpuBackend {
    /// This backend's own buffers; buffer id `base + i` is `bufs[i]`.
    bufs: Vec<Store>,
    /// 0 for a device's backend. A data-parallel worker numbers its own buffers from
    /// [`store::WORKER_BASE`], so ids below it name the main device's buffers, held in `outer`.
    base: usize,
    /// A worker's view of the main device's buffers: shared read-only, or its private copy of
    /// a gradient or accumulator buffer.
    outer: std::collections::HashMap<usize, Store>,
    /// Main-device buffers a worker wrote that were not its private ones (copied on write).
    foreign_writes: Vec<usize>,
    ops: u64,
    /// Muon's bfloat16 Newton–Schulz buffers, kept from step to step.
    ns_workspace: ns_bf16::Workspace,
}

impl Default for CpuBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuBackend {
    /// A backend on rayon's global pool (built with one worker per core if nothing built it yet).
    pub fn new() -> CpuBackend {
        init_thread_pool();
        set_flush_to_zero();
        CpuBackend {
            bufs: Vec::new(),
            base: 0,
            outer: Default::default(),
            foreign_writes: Vec::new(),
            ops: 0,
            ns_workspace: Default::default(),
        }
    }

    /// Run `f` on the output range and the input slices. An input in the output's own buffer
    /// is copied first, so in-place and aliased calls are safe.
    fn run(&mut self, out: View, ins: &[View], f: impl FnOnce(&mut [f32], &[&[f32]])) {
        self.ops += 1;
        let mut o = self.take(out.buf);
        let copies: Vec<Option<Vec<f32>>> =
            ins.iter().map(|v| (v.buf == out.buf).then(|| o[v.range()].to_vec())).collect();
        {
            let slices: Vec<&[f32]> = ins
                .iter()
                .zip(&copies)
                .map(|(v, c)| match c {
                    Some(c) => &c[..],
                    None => &self.vec(v.buf)[v.range()],
                })
                .collect();
            f(&mut o[out.range()], &slices);
        }
        self.put(out.buf, o);
    }
}

/// The first `k` consecutive pieces of `len` elements of `x` (empty when `len` is 0).
fn parts(x: &mut [f32], k: usize, len: usize) -> Vec<&mut [f32]> {
    let mut rest = &mut x[..k * len];
    let mut out = Vec::with_capacity(k);
    for _ in 0..k {
        let (piece, tail) = std::mem::take(&mut rest).split_at_mut(len);
        out.push(piece);
        rest = tail;
    }
    out
}

impl Backend for CpuBackend {
    fn describe(&self) -> String {
        if cfg!(target_arch = "wasm32") {
            return "cpu (wasm, one thread)".into();
        }
        // Flush-to-zero is an x86-64 MXCSR setting; elsewhere subnormals stay.
        let ftz = if cfg!(target_arch = "x86_64") { "flush-to-zero on" } else { "no flush-to-zero" };
        let n = rayon::current_num_threads();
        format!("cpu (rayon, {n} thread{}, {ftz})", if n == 1 { "" } else { "s" })
    }

    fn is_gpu(&self) -> bool {
        false
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }

    fn alloc(&mut self, len: usize) -> Result<usize> {
        let mut v = Vec::new();
        if v.try_reserve_exact(len).is_err() {
            bail!("cannot allocate {len} f32 values ({} MiB) in host memory", (len * 4) >> 20);
        }
        advise_huge_pages(&mut v);
        v.resize(len, 0.0);
        Ok(self.push(Store::F32(v)))
    }

    fn alloc_bytes(&mut self, data: &[u8]) -> Result<usize> {
        Ok(self.push(Store::Bytes(data.to_vec())))
    }

    fn free(&mut self, buf: usize) {
        *self.slot_mut(buf) = Store::Freed;
    }

    fn write(&mut self, dst: View, data: &[f32]) -> Result<()> {
        if data.len() != dst.len {
            bail!("write of {} values into a view of {}", data.len(), dst.len);
        }
        self.run(dst, &[], |o, _| o.copy_from_slice(data));
        Ok(())
    }

    fn read_async(&mut self, src: View) -> Pending<Vec<f32>> {
        Pending::ready(Ok(self.vec(src.buf)[src.range()].to_vec()))
    }

    fn fill(&mut self, dst: View, value: f32) {
        self.run(dst, &[], |o, _| {
            if fork(o.len()) {
                o.par_chunks_mut(CHUNK).for_each(|c| c.fill(value));
            } else {
                o.fill(value);
            }
        });
    }

    fn copy(&mut self, src: View, dst: View) {
        self.run(dst, &[src], |o, i| map1(o, i[0], |x| x));
    }

    fn matmul(&mut self, form: Form, d: Dims, a: View, b: View, out: View, epi: &Epilogue) {
        let mut ins = vec![a, b];
        ins.extend(epi.bias);
        ins.extend(epi.act_grad.map(|(_, y)| y));
        self.run(out, &ins, |o, i| {
            gemm_f32(form, d, i[0], i[1], o);
            let mut next = 2;
            let bias = epi.bias.map(|_| {
                next += 1;
                i[next - 1]
            });
            let grad_of = epi.act_grad.map(|(act, _)| (act, i[next]));
            if bias.is_none() && grad_of.is_none() && epi.act.is_none() {
                return;
            }
            let act = epi.act.unwrap_or(Act::Identity);
            rows_mut(o, d.n, |r, row| {
                let grad_row = grad_of.map(|(ga, y)| (ga, &y[r * d.n..(r + 1) * d.n]));
                epilogue_row(row, grad_row, bias, act)
            });
        });
        if let Some(cs) = epi.a_colsum {
            self.sum_axis(a, cs, d.m, Axis::Rows, 1.0);
        }
    }

    fn gram(&mut self, form: Form, side: usize, k: usize, x: View, out: View) {
        self.run(out, &[x], |o, i| gram::gram(form, side, k, i[0], o));
    }

    /// The members in parallel, each the product [`Backend::matmul`] computes for it alone
    /// (whose bits do not depend on the threads that run it), so small members keep every core
    /// busy without a fork and join per product.
    fn matmul_batched(&mut self, form: Form, d: Dims, batch: usize, a: View, b: View, out: View) {
        let Dims { m, k, n } = d;
        if batch == 0 || m * n == 0 {
            return;
        }
        self.run(out, &[a, b], |o, i| {
            o[..batch * m * n].par_chunks_mut(m * n).enumerate().for_each(|(j, c)| {
                gemm_f32(form, d, &i[0][j * m * k..(j + 1) * m * k], &i[1][j * k * n..(j + 1) * k * n], c)
            })
        });
    }

    /// The members in parallel, as for `matmul_batched`.
    fn gram_batched(&mut self, form: Form, side: usize, k: usize, batch: usize, x: View, out: View) {
        if batch == 0 || side == 0 {
            return;
        }
        self.run(out, &[x], |o, i| {
            o[..batch * side * side]
                .par_chunks_mut(side * side)
                .enumerate()
                .for_each(|(j, c)| gram::gram(form, side, k, &i[0][j * side * k..(j + 1) * side * k], c))
        });
    }

    fn newton_schulz_bf16(
        &mut self,
        x: View,
        rows: usize,
        cols: usize,
        ns: &crate::backend::ops::NewtonSchulz,
    ) -> std::result::Result<(), String> {
        let mut ws = std::mem::take(&mut self.ns_workspace);
        let path = ns_bf16::Path::best();
        self.run(x, &[], |o, _| ns_bf16::newton_schulz_bf16_in(&mut ws, path, o, rows, cols, ns));
        self.ns_workspace = ws;
        Ok(())
    }

    fn bias_act(&mut self, x: View, bias: Option<View>, out: View, cols: usize, act: Act) {
        let mut ins = vec![x];
        ins.extend(bias);
        self.run(out, &ins, |o, i| {
            rows_mut(o, cols, |r, row| {
                for (c, v) in row.iter_mut().enumerate() {
                    let z = i[0][r * cols + c] + i.get(1).map_or(0.0, |b| b[c]);
                    *v = act_apply(act, z);
                }
            })
        });
    }

    fn act_backward(&mut self, act: Act, y: View, dy: View, dx: View) {
        self.run(dx, &[y, dy], |o, i| map2(o, i[0], i[1], |y, dy| dy * act_grad(act, y)));
    }

    fn sum_axis(&mut self, x: View, out: View, cols: usize, axis: Axis, scale: f32) {
        self.run(out, &[x], |o, i| match axis {
            Axis::Rows => o.iter_mut().zip(col_sums(i[0], cols)).for_each(|(o, s)| *o = s * scale),
            Axis::Cols => rows_mut(o, 1, |r, o| {
                let s: f64 = i[0][r * cols..(r + 1) * cols].iter().map(|&v| v as f64).sum();
                o[0] = (s * scale as f64) as f32;
            }),
        });
    }

    fn max_axis(&mut self, x: View, out: View, cols: usize, axis: Axis, argmax: bool) {
        let cols = cols.max(1);
        self.run(out, &[x], |o, i| {
            let rows = i[0].len() / cols;
            let pick = |(v, at): (f32, usize)| if argmax { at as f32 } else { v };
            match axis {
                Axis::Rows => rows_mut(o, 1, |c, o| o[0] = pick(max_run(i[0], c, rows, cols))),
                Axis::Cols => rows_mut(o, 1, |r, o| o[0] = pick(max_run(i[0], r * cols, cols, 1))),
            }
        });
    }

    fn binary(&mut self, op: BinaryOp, a: View, b: View, out: View, bcast: Bcast) {
        self.run(out, &[a, b], |o, i| {
            let (a, b) = (i[0], i[1]);
            if bcast.a == Layout::Full && bcast.b == Layout::Full {
                // Separate loops per op so each one vectorizes.
                match op {
                    BinaryOp::Add => map2(o, a, b, |x, y| x + y),
                    BinaryOp::Sub => map2(o, a, b, |x, y| x - y),
                    BinaryOp::Mul => map2(o, a, b, |x, y| x * y),
                    BinaryOp::Div => map2(o, a, b, |x, y| x / y),
                }
            } else {
                let cols = bcast.cols.max(1);
                map_mut(o, |k| binary_op(op, a[bcast.a.index(k, cols)], b[bcast.b.index(k, cols)]))
            }
        });
    }

    fn unary_grad(&mut self, op: UnaryOp, a: View, g: View, out: View) {
        self.run(out, &[a, g], |o, i| map2(o, i[0], i[1], |x, g| g * input_grad(op, x)));
    }

    fn unary(&mut self, op: UnaryOp, a: View, out: View) {
        self.run(out, &[a], |o, i| {
            let a = i[0];
            match op {
                UnaryOp::Scale(s) => map1(o, a, |x| x * s),
                UnaryOp::AddScalar(s) => map1(o, a, |x| x + s),
                UnaryOp::Pow(p) => map1(o, a, |x| pow(x, p)),
                UnaryOp::Log => map1(o, a, f32::ln),
                UnaryOp::Exp => map1(o, a, f32::exp),
                UnaryOp::Sin => map1(o, a, f32::sin),
                UnaryOp::Cos => map1(o, a, f32::cos),
                UnaryOp::Abs => map1(o, a, f32::abs),
                UnaryOp::Sign => map1(o, a, |x| {
                    if x > 0.0 {
                        1.0
                    } else if x < 0.0 {
                        -1.0
                    } else {
                        0.0
                    }
                }),
                UnaryOp::Gelu => map1(o, a, |x| 0.5 * x * (1.0 + libm::erff(x * FRAC_1_SQRT_2))),
                UnaryOp::GeluTanh => {
                    map1(o, a, |x| 0.5 * x * (1.0 + (elementwise::GELU_K * (x + 0.044715 * x * x * x)).tanh()))
                }
                UnaryOp::Silu => map1(o, a, |x| x / (1.0 + (-x).exp())),
            }
        });
    }

    fn sum(&mut self, a: View, out: View, scale: f32) {
        self.run(out, &[a], |o, i| {
            let s: f64 = i[0].iter().map(|&v| v as f64).sum();
            o[0] = (s * scale as f64) as f32;
        });
    }

    fn expand(&mut self, src: View, layout: Layout, out: View, cols: usize, scale: f32) {
        let cols = cols.max(1);
        self.run(out, &[src], |o, i| map_mut(o, |k| i[0][layout.index(k, cols)] * scale));
    }

    fn softmax_ce(&mut self, logits: View, labels: View, cols: usize, ignore_index: i32, out: CeOutputs) {
        let CeOutputs { loss, dlogits, metrics } = out;
        let rows = logits.len / cols;
        let z = &self.vec(logits.buf)[logits.range()];
        let y = &self.vec(labels.buf)[labels.range()];
        let ignore = ignore_index as f32;
        let kept = y.iter().filter(|&&l| l != ignore).count();
        let inv = 1.0 / kept.max(1) as f32;
        // Per row: (loss, correct, max, Σ exp, the class or `None`, whether ignored).
        let per_row = |r: usize| {
            let row = &z[r * cols..(r + 1) * cols];
            let ignored = y[r] == ignore;
            let class = (!ignored).then(|| class_index(y[r], cols)).flatten();
            let (mut best, mut arg) = (f32::NEG_INFINITY, 0);
            for (c, &v) in row.iter().enumerate() {
                if v > best {
                    best = v;
                    arg = c;
                }
            }
            let sum: f32 = row.iter().map(|&v| (v - best).exp()).sum();
            let (l, ok) = match class {
                Some(k) => (sum.ln() + best - row[k], (arg == k) as u32 as f32),
                None if ignored => (0.0, 0.0),
                None => (f32::NAN, 0.0),
            };
            (l, ok, best, sum, class, ignored)
        };
        let stats: Vec<_> = if fork(rows * cols) {
            (0..rows).into_par_iter().map(per_row).collect()
        } else {
            (0..rows).map(per_row).collect()
        };
        let loss_sum: f64 = stats.iter().map(|s| s.0 as f64).sum();
        let correct: f64 = stats.iter().map(|s| s.1 as f64).sum();
        if let Some(d) = dlogits {
            self.run(d, &[logits], |o, i| {
                rows_mut(o, cols, |r, row| {
                    let (_, _, best, sum, class, ignored) = stats[r];
                    for (c, v) in row.iter_mut().enumerate() {
                        let p = (i[0][r * cols + c] - best).exp() / sum;
                        *v = match class {
                            Some(k) => (p - if c == k { 1.0 } else { 0.0 }) * inv,
                            None if ignored => 0.0,
                            None => f32::NAN,
                        };
                    }
                })
            });
        }
        if let Some(l) = loss {
            let mean = if kept == 0 { f64::NAN } else { loss_sum / kept as f64 };
            self.run(l, &[], |o, _| o[0] = mean as f32);
        }
        if let Some(m) = metrics {
            self.run(m, &[], |o, _| {
                o[0] += loss_sum as f32;
                o[1] += correct as f32;
            });
        }
    }

    fn gather(&mut self, g: &Gather) {
        let idx = self.indices(g.indices.id, g.start, g.count);
        let images = std::mem::take(self.slot_mut(g.images.id));
        let labels = std::mem::take(self.slot_mut(g.labels.id));
        if let (Some(im), Some(lb)) = (images.bytes(), labels.bytes()) {
            let (rl, scale) = (g.row_len, g.scale);
            self.run(g.x, &[], |o, _| {
                rows_mut(o, rl, |r, row| {
                    let src = &im[idx[r] * rl..(idx[r] + 1) * rl];
                    for (v, &b) in row.iter_mut().zip(src) {
                        *v = b as f32 * scale;
                    }
                })
            });
            self.run(g.y, &[], |o, _| map_mut(o, |r| lb[idx[r]] as f32));
        }
        *self.slot_mut(g.images.id) = images;
        *self.slot_mut(g.labels.id) = labels;
    }

    fn gather_rows(&mut self, src: View, cols: usize, indices: ByteBuffer, start: usize, dst: View) {
        let count = dst.len / cols.max(1);
        let idx = self.indices(indices.id, start, count);
        let rows = src.len / cols.max(1);
        self.run(dst, &[src], |o, i| {
            rows_mut(o, cols, |r, row| match idx[r] {
                k if k < rows => row.copy_from_slice(&i[0][k * cols..(k + 1) * cols]),
                _ => row.fill(f32::NAN),
            })
        });
    }

    fn inv_norm(&mut self, x: View, out: View, eps: f32) {
        self.run(out.slice(0, 1), &[x], |o, i| o[0] = vector::inv_norm(i[0], eps));
    }

    fn clip_coef(&mut self, x: View, out: View, max_norm: f32) {
        self.run(out.slice(0, 2), &[x], |o, i| {
            let norm = vector::norm(i[0]);
            o[0] = norm;
            o[1] = (max_norm / (norm + 1e-6)).min(1.0);
        });
    }

    fn scale_by(&mut self, y: View, s: View) {
        self.run(y, &[s.slice(0, 1)], |o, i| vector::scale_by(o, i[0][0]));
    }

    fn axpby(&mut self, alpha: f32, x: View, beta: f32, y: View) {
        self.run(y, &[x], |o, i| vector::axpby(alpha, i[0], beta, o));
    }

    fn stream_scale(&mut self, x: View, y: View, scale: f32) {
        self.run(y, &[x], |o, i| vector::stream_scale(i[0], o, scale));
    }

    fn dropout(&mut self, x: View, y: View, mask: &DropoutMask) {
        self.run(y, &[x], |o, i| dropout::dropout(i[0], o, 0, mask));
    }

    fn clamp(&mut self, y: View, lo: f32, hi: f32) {
        self.run(y, &[], |o, _| vector::clamp(o, lo, hi));
    }

    fn find_nonfinite(&mut self, src: View, flag: View, tag: f32) {
        self.run(flag, &[src], |o, i| {
            if o[0] < 0.0 {
                if let Some(k) = first_nonfinite(i[0]) {
                    o[0] = tag;
                    o[1] = k as f32;
                }
            }
        });
    }

    fn optim_step(&mut self, step: &OptimStep, objective: Objective, params: View, grads: View, state: &[View]) {
        self.ops += 1;
        let mut p = self.take(params.buf);
        // State slots live in one buffer (the optimizer's), possibly several: take each once.
        let mut state_bufs: Vec<(usize, Vec<f32>)> = Vec::new();
        for v in state {
            if !state_bufs.iter().any(|(b, _)| *b == v.buf) {
                state_bufs.push((v.buf, self.take(v.buf)));
            }
        }
        {
            let mut slots: Vec<Option<&mut [f32]>> = (0..state.len()).map(|_| None).collect();
            for (b, data) in state_bufs.iter_mut() {
                // Split this buffer into the slot views that point into it, in offset order.
                let mut mine: Vec<(usize, View)> =
                    state.iter().copied().enumerate().filter(|(_, v)| v.buf == *b).collect();
                mine.sort_by_key(|(_, v)| v.offset);
                let mut rest: &mut [f32] = data;
                let mut at = 0;
                for (slot, v) in mine {
                    let (_, tail) = rest.split_at_mut(v.offset - at);
                    let (head, tail) = tail.split_at_mut(v.len);
                    slots[slot] = Some(head);
                    rest = tail;
                    at = v.offset + v.len;
                }
            }
            let slots: Vec<&mut [f32]> = slots.into_iter().map(|s| s.expect("every slot found")).collect();
            let g = &self.vec(grads.buf)[grads.range()];
            optim::apply(step, objective, &mut p[params.range()], g, slots);
        }
        self.put(params.buf, p);
        for (b, data) in state_bufs {
            self.put(b, data);
        }
    }

    fn optim_step_bf16(&mut self, step: &OptimStep, objective: Objective, params: View, grads: View, state: &[View]) {
        self.ops += 1;
        let mut p = self.take(params.buf);
        let mut bufs: Vec<Vec<f32>> = state.iter().map(|v| self.take(v.buf)).collect();
        {
            let slots: Vec<&mut [u16]> = bufs
                .iter_mut()
                .zip(state)
                .map(|(b, v)| &mut bytemuck::cast_slice_mut::<f32, u16>(b)[v.range()])
                .collect();
            let g = &self.vec(grads.buf)[grads.range()];
            optim::apply_bf16(step, objective, &mut p[params.range()], g, slots);
        }
        self.put(params.buf, p);
        for (v, b) in state.iter().zip(bufs) {
            self.put(v.buf, b);
        }
    }

    fn adafactor_step(&mut self, h: &AdafactorParams, objective: Objective, params: View, grads: View, s: &Factored) {
        self.ops += 1;
        let mut p = self.take(params.buf);
        let mut state = self.take(s.state.buf);
        let mut work = self.take(s.work.buf);
        {
            let g = &self.vec(grads.buf)[grads.range()];
            let pm = &mut p[params.range()];
            let n = s.state.len.min(state.len());
            if s.bf16 {
                let cells: &mut [optim::Bf16] = bytemuck::cast_slice_mut(&mut state[..n]);
                adafactor::apply(h, objective, &s.layout, pm, g, cells, &mut work);
            } else {
                adafactor::apply(h, objective, &s.layout, pm, g, &mut state[..n], &mut work);
            }
        }
        self.put(params.buf, p);
        self.put(s.state.buf, state);
        self.put(s.work.buf, work);
    }

    fn step_8bit(&mut self, step: &OptimStep, objective: Objective, params: View, grads: View, s: &Blockwise8) {
        self.ops += 1;
        let slots = s.codes.len();
        let mut p = self.take(params.buf);
        let ids: Vec<usize> = s.codes.iter().map(|c| c.buf).chain([s.absmax.buf, s.small.buf]).collect();
        let mut bufs: Vec<Vec<f32>> = ids.iter().map(|&b| self.take(b)).collect();
        {
            let (code_bufs, rest) = bufs.split_at_mut(slots);
            let [ab, sm] = rest else { unreachable!("absmax and small follow the codes") };
            let state = optim::Blockwise8Mut {
                codes: code_bufs.iter_mut().map(|c| bytemuck::cast_slice_mut::<f32, u8>(&mut c[..])).collect(),
                absmax: parts(ab, slots, s.quantized_blocks),
                small: parts(sm, slots, s.small_len),
                signed: s.signed,
            };
            let g = &self.vec(grads.buf)[grads.range()];
            let n = params.len;
            let (pm, gm) = (&mut p[params.range()], &g[..n]);
            optim::apply_blockwise8(step, objective, pm, gm, &s.rows, state);
        }
        self.put(params.buf, p);
        for (&b, data) in ids.iter().zip(bufs) {
            self.put(b, data);
        }
    }

    fn finish(&mut self) -> Pending<()> {
        Pending::ready(Ok(()))
    }

    fn capacity(&self) -> Capacity {
        Capacity {
            max_buffer_bytes: isize::MAX as u64,
            max_binding_bytes: isize::MAX as u64,
            available_bytes: host_available_bytes(),
        }
    }

    fn counters(&self) -> Counters {
        Counters { dispatches: self.ops, submits: 0, bytes_read_back: 0, compute_passes: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn worker_threads_flush_subnormals_to_zero() {
        let _backend = CpuBackend::new();
        assert!(flush_to_zero_is_set(), "calling thread");
        let all: Vec<bool> = (0..64).into_par_iter().map(|_| flush_to_zero_is_set()).collect();
        assert!(all.iter().all(|&b| b), "a rayon worker runs without flush-to-zero");
        // A subnormal product becomes zero.
        let tiny = std::hint::black_box(1e-30f32);
        assert_eq!(tiny * std::hint::black_box(1e-10f32), 0.0);
    }
}
