//! Kernel parity: run every kernel on a device with fresh random inputs and compare it with
//! the plain f64 reference. Output buffers are poisoned with NaN first, so an element a kernel
//! fails to write fails the check. `descent parity` prints these rows; the tests assert them.

mod config;
mod optim;

pub use config::*;

use crate::backend::gpu::{MatmulKernels, MatmulPlan};
use crate::backend::optim_kernel::{MuonMomentumParams, Objective, SchedulefreeModeParams};
use crate::backend::quant::{self, DynamicMap, TensorState};
use crate::backend::{
    Act, Axis, Bcast, BinaryOp, CeOutputs, Device, Dims, DropoutMask, Epilogue, Form, Layout, NewtonSchulz, UnaryOp,
    IGNORE_INDEX,
};
use crate::optim::{
    reference as optim_ref, Carried, Muon, NsDtype, OptimBits, OptimConfig, OptimStep, Optimizer, Schedule, Step,
    StoredState,
};
use crate::reference::{self as r, compare, compare_nan, matmul_abs_tol, ABS_TOL, CODE_TIE_TOL, NS_BF16_TOL, REL_TOL};
use crate::rng::Rng;
use crate::tensor::View;
use anyhow::{bail, Context, Result};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct ParityRow {
    pub device: String,
    pub kernel: String,
    pub shape: String,
    pub max_abs_err: f64,
    pub max_rel_err: f64,
    pub pass: bool,
}

/// How a check compares outputs with the reference: (max abs error, max rel error, pass).
type Comparison = fn(&[f32], &[f64], f64, f64) -> (f64, f64, bool);

struct Checker<'a> {
    dev: &'a mut Device,
    rng: Rng,
    rows: Vec<ParityRow>,
}

impl Checker<'_> {
    fn input(&mut self, data: &[f32]) -> Result<View> {
        self.dev.upload(data)
    }

    fn random(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        self.rng.uniform_vec(n, lo, hi)
    }

    fn poisoned(&mut self, n: usize) -> Result<View> {
        self.poisoned_with(n, f32::NAN)
    }

    /// An output filled with `value`: a finite poison where NaN is a right answer.
    fn poisoned_with(&mut self, n: usize, value: f32) -> Result<View> {
        let v = self.dev.alloc(n)?;
        self.dev.write(v, &vec![value; n])?;
        Ok(v)
    }

    async fn check(&mut self, kernel: &str, shape: String, out: View, want: &[f64], abs: f64, rel: f64) -> Result<()> {
        self.check_by(compare, kernel, shape, out, want, abs, rel).await
    }

    /// [`Checker::check`] with a comparison of one's choice ([`compare_nan`] where NaN is the
    /// right answer).
    #[allow(clippy::too_many_arguments)]
    async fn check_by(
        &mut self,
        by: Comparison,
        kernel: &str,
        shape: String,
        out: View,
        want: &[f64],
        abs: f64,
        rel: f64,
    ) -> Result<()> {
        let got = self.dev.read_async(out).await?;
        let (max_abs_err, max_rel_err, pass) = by(&got, want, abs, rel);
        self.rows.push(ParityRow {
            device: self.dev.describe(),
            kernel: kernel.into(),
            shape,
            max_abs_err,
            max_rel_err,
            pass,
        });
        Ok(())
    }

    /// [`Checker::check`] at the elementwise tolerances, except at the elements `ties` marks
    /// (near-ties of a sign), which are counted by the caller, not compared.
    async fn check_ties(&mut self, kernel: &str, shape: String, out: View, want: &[f64], ties: &[bool]) -> Result<()> {
        let got = self.dev.read_async(out).await?;
        let want: Vec<f64> =
            want.iter().zip(&got).zip(ties).map(|((&w, &g), &tie)| if tie { g as f64 } else { w }).collect();
        let (max_abs_err, max_rel_err, pass) = compare(&got, &want, ABS_TOL, REL_TOL);
        self.rows.push(ParityRow {
            device: self.dev.describe(),
            kernel: kernel.to_string(),
            shape,
            max_abs_err,
            max_rel_err,
            pass,
        });
        Ok(())
    }

    fn done(&mut self, views: &[View]) {
        for &v in views {
            self.dev.release(v);
        }
    }

    async fn matrix_kernels(&mut self, m: usize, k: usize, n: usize) -> Result<()> {
        let d = Dims { m, k, n };
        if self.dev.is_gpu() {
            // Each GPU matmul kernel the rule may pick, forced in turn: the tiled one (its rows
            // carry the plain names), split-K where this shape has k-steps to split, and the
            // large-tile one.
            let chosen = self.dev.matmul_kernels().unwrap_or_default();
            for (kernels, variant) in
                [(MatmulKernels::Tiled, ""), (MatmulKernels::SplitK, " [split-k]"), (MatmulKernels::Large, " [large]")]
            {
                self.dev.set_matmul_kernels(kernels)?;
                let runs = self.dev.matmul_plan(d) != Some(MatmulPlan::Tiled) || kernels == MatmulKernels::Tiled;
                if runs {
                    self.products(d, variant).await?;
                }
                // A batch is never split: its rows run on the tiled and the large kernels.
                if kernels != MatmulKernels::SplitK {
                    self.batched_products(d, variant).await?;
                }
            }
            self.dev.set_matmul_kernels(chosen)?;
        } else {
            self.products(d, "").await?;
            self.batched_products(d, "").await?;
        }
        self.symmetric_products(m, k, n).await
    }

    /// [`PARITY_BATCH`] products of `d` in one batched call (Muon's Newton–Schulz over
    /// same-shaped matrices), every member against its own f64 product.
    async fn batched_products(&mut self, d: Dims, variant: &str) -> Result<()> {
        let (Dims { m, k, n }, batch) = (d, PARITY_BATCH);
        for form in Form::ALL {
            let a = self.random(batch * m * k, -1.0, 1.0);
            let b = self.random(batch * k * n, -1.0, 1.0);
            let (av, bv, out) = (self.input(&a)?, self.input(&b)?, self.poisoned(batch * m * n)?);
            self.dev.matmul_batched(form, d, batch, av, bv, out);
            let want: Vec<f64> = (0..batch)
                .flat_map(|i| r::matmul(form, m, k, n, &a[i * m * k..][..m * k], &b[i * k * n..][..k * n]))
                .collect();
            let name = format!("{} batch {batch}{variant}", form.name());
            self.check(&name, format!("{m}x{k}x{n}"), out, &want, matmul_abs_tol(k), REL_TOL).await?;
            self.done(&[av, bv, out]);
        }
        Ok(())
    }

    /// The three forms and their fused epilogues at `d`, each row's kernel name followed by
    /// `variant`.
    async fn products(&mut self, d: Dims, variant: &str) -> Result<()> {
        let Dims { m, k, n } = d;
        let shape = format!("{m}x{k}x{n}");
        let named = |kernel: &str| format!("{kernel}{variant}");
        let tol = matmul_abs_tol(k);
        for form in Form::ALL {
            let a = self.random(m * k, -1.0, 1.0);
            let b = self.random(k * n, -1.0, 1.0);
            let (av, bv, out) = (self.input(&a)?, self.input(&b)?, self.poisoned(m * n)?);
            self.dev.matmul(form, d, av, bv, out, &Epilogue::default());
            let want = r::matmul(form, m, k, n, &a, &b);
            self.check(&named(form.name()), shape.clone(), out, &want, tol, REL_TOL).await?;
            // The fused epilogues the layers use.
            let epi_kernel = match form {
                Form::NT => {
                    let bias = self.random(n, -1.0, 1.0);
                    let biasv = self.input(&bias)?;
                    let out2 = self.poisoned(m * n)?;
                    self.dev.matmul(
                        form,
                        d,
                        av,
                        bv,
                        out2,
                        &Epilogue { bias: Some(biasv), act: Some(Act::Relu), ..Default::default() },
                    );
                    let want: Vec<f64> =
                        want.iter().enumerate().map(|(i, &z)| r::act(Act::Relu, z + bias[i % n] as f64)).collect();
                    self.check(&named("matmul_nt+bias+relu"), shape.clone(), out2, &want, tol, REL_TOL).await?;
                    vec![biasv, out2]
                }
                Form::NN => {
                    let y = self.random(m * n, -1.0, 1.0).iter().map(|v| v.tanh()).collect::<Vec<_>>();
                    let yv = self.input(&y)?;
                    let out2 = self.poisoned(m * n)?;
                    self.dev.matmul(
                        form,
                        d,
                        av,
                        bv,
                        out2,
                        &Epilogue { act_grad: Some((Act::Tanh, yv)), ..Default::default() },
                    );
                    let want: Vec<f64> =
                        want.iter().zip(&y).map(|(&z, &y)| z * r::act_grad(Act::Tanh, y as f64)).collect();
                    self.check(&named("matmul_nn*tanh'"), shape.clone(), out2, &want, tol, REL_TOL).await?;
                    vec![yv, out2]
                }
                Form::TN => {
                    // A is stored k×m: its column sums have length m.
                    let out2 = self.poisoned(m * n)?;
                    let cs = self.poisoned(m)?;
                    self.dev.matmul(form, d, av, bv, out2, &Epilogue { a_colsum: Some(cs), ..Default::default() });
                    self.check(&named("matmul_tn+colsum"), shape.clone(), out2, &want, tol, REL_TOL).await?;
                    let want_cs = r::col_sum(&a, m);
                    self.check(&named("matmul_tn colsum"), format!("{k}x{m}"), cs, &want_cs, tol, REL_TOL).await?;
                    vec![out2, cs]
                }
            };
            self.done(&epi_kernel);
            self.done(&[av, bv, out]);
        }
        Ok(())
    }

    /// Gram products, and (on the CPU) Muon's bfloat16 Newton–Schulz, at the matmul's sizes.
    async fn symmetric_products(&mut self, m: usize, k: usize, n: usize) -> Result<()> {
        // Gram products: X (m×k) times its own transpose, and Xᵀ·X for X of k rows of n.
        for (form, side, inner) in [(Form::NT, m, k), (Form::TN, n, k)] {
            let x = self.random(side * inner, -1.0, 1.0);
            let (xv, out) = (self.input(&x)?, self.poisoned(side * side)?);
            self.dev.gram(form, side, inner, xv, out);
            let want = r::matmul(form, side, inner, side, &x, &x);
            let name = format!("gram_{}", form.name().trim_start_matches("matmul_"));
            self.check(&name, format!("{side}x{inner}"), out, &want, matmul_abs_tol(inner), REL_TOL).await?;
            self.done(&[xv, out]);
        }
        // Muon's bfloat16 Newton–Schulz (the CPU backend's op; a GPU has none) against the f64
        // iteration with PyTorch's roundings.
        if !self.dev.is_gpu() {
            let x = self.random(m * k, -1.0, 1.0);
            let xv = self.input(&x)?;
            let mc = Muon { ns_dtype: NsDtype::Bfloat16, ..Muon::default() };
            let (a, b, c) = mc.ns_coefficients;
            let ns =
                NewtonSchulz { coefficients: (a as f32, b as f32, c as f32), steps: mc.ns_steps, eps: mc.eps as f32 };
            let cfg = OptimConfig::Muon(mc);
            self.dev.newton_schulz_bf16(xv, m, k, &ns);
            let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let want = optim_ref::newton_schulz(&x64, m, k, &cfg);
            self.check("newton_schulz_bf16", format!("{m}x{k}"), xv, &want, NS_BF16_TOL, 0.0).await?;
            self.done(&[xv]);
        }
        let shape2 = format!("{m}x{n}");
        for act in Act::ALL {
            let x = self.random(m * n, -2.0, 2.0);
            let bias = self.random(n, -1.0, 1.0);
            let (xv, bv, out) = (self.input(&x)?, self.input(&bias)?, self.poisoned(m * n)?);
            self.dev.bias_act(xv, Some(bv), out, n, act);
            let want = r::bias_act(&x, Some(&bias), n, act);
            self.check(&format!("bias_act_{}", act.name()), shape2.clone(), out, &want, ABS_TOL, REL_TOL).await?;
            let y: Vec<f32> = want.iter().map(|&v| v as f32).collect();
            let dy = self.random(m * n, -1.0, 1.0);
            let (yv, dyv, dx) = (self.input(&y)?, self.input(&dy)?, self.poisoned(m * n)?);
            self.dev.act_backward(act, yv, dyv, dx);
            let want = r::act_backward(act, &y, &dy);
            self.check(&format!("act_backward_{}", act.name()), shape2.clone(), dx, &want, ABS_TOL, REL_TOL).await?;
            self.done(&[xv, bv, out, yv, dyv, dx]);
        }
        self.broadcast_kernels(m, n).await?;
        self.softmax_ce_kernels(m, n).await
    }

    /// Softmax cross-entropy with n classes over m rows: class labels; every third row at
    /// `ignore_index`; and every fourth row a label that names no class (n, −1, NaN, 1.5),
    /// whose row, loss and loss sum must come out NaN.
    async fn softmax_ce_kernels(&mut self, m: usize, n: usize) -> Result<()> {
        let shape2 = format!("{m}x{n}");
        let bad = [n as f32, -1.0, f32::NAN, 1.5];
        for case in ["", " ignore_index", " bad labels"] {
            let z = self.random(m * n, -5.0, 5.0);
            let labels: Vec<f32> = (0..m)
                .map(|r| match case {
                    " ignore_index" if r % 3 == 1 => IGNORE_INDEX as f32,
                    " bad labels" if r % 4 == 0 => bad[(r / 4) % bad.len()],
                    _ => self.rng.below(n) as f32,
                })
                .collect();
            let (zv, lv) = (self.input(&z)?, self.input(&labels)?);
            let (loss, dz, metrics) =
                (self.poisoned_with(1, 777.0)?, self.poisoned_with(m * n, 777.0)?, self.dev.alloc_zeroed(2)?);
            let out = CeOutputs { loss: Some(loss), dlogits: Some(dz), metrics: Some(metrics) };
            self.dev.softmax_ce(zv, lv, n, IGNORE_INDEX, out);
            let (want_loss, want_d, total, correct) = r::softmax_ce(&z, &labels, n, IGNORE_INDEX);
            let (abs, rel) = (ABS_TOL, REL_TOL);
            self.check_by(compare_nan, &format!("softmax_ce loss{case}"), shape2.clone(), loss, &[want_loss], abs, rel)
                .await?;
            self.check_by(compare_nan, &format!("softmax_ce dlogits{case}"), shape2.clone(), dz, &want_d, abs, rel)
                .await?;
            let sums = [total, correct];
            self.check_by(
                compare_nan,
                &format!("softmax_ce metrics{case}"),
                shape2.clone(),
                metrics,
                &sums,
                abs * m as f64,
                rel,
            )
            .await?;
            self.done(&[zv, lv, loss, dz, metrics]);
        }
        Ok(())
    }

    /// Per-axis sums, their inverse (expand), and binary ops with a row, column or scalar
    /// operand broadcast over an m×n output.
    async fn broadcast_kernels(&mut self, m: usize, n: usize) -> Result<()> {
        let shape2 = format!("{m}x{n}");
        let x = self.random(m * n, -1.0, 1.0);
        let xv = self.input(&x)?;
        for (axis, len, k) in [(Axis::Rows, n, m), (Axis::Cols, m, n)] {
            let out = self.poisoned(len)?;
            self.dev.sum_axis(xv, out, n, axis, 0.5);
            let want = r::sum_axis(&x, n, axis, 0.5);
            self.check(&format!("sum_axis{}", axis.dim()), shape2.clone(), out, &want, matmul_abs_tol(k), REL_TOL)
                .await?;
            self.done(&[out]);
        }
        // Maxima and their indices on a coarse grid (ties: the first wins), with one NaN (the
        // maximum of its row and its column).
        let mut coarse: Vec<f32> = x.iter().map(|v| (v * 4.0).round() / 4.0).collect();
        coarse[(m - 1) * n + n / 2] = f32::NAN;
        let cv = self.input(&coarse)?;
        for (axis, len) in [(Axis::Rows, n), (Axis::Cols, m)] {
            for argmax in [false, true] {
                let out = self.poisoned(len)?;
                self.dev.max_axis(cv, out, n, axis, argmax);
                let want = r::max_axis(&coarse, n, axis, argmax);
                let name = format!("{}{}", if argmax { "argmax" } else { "max" }, axis.dim());
                self.check_by(compare_nan, &name, shape2.clone(), out, &want, 0.0, 0.0).await?;
                self.done(&[out]);
            }
        }
        self.done(&[cv]);
        for layout in [Layout::Row, Layout::Col, Layout::Scalar] {
            let src = self.random(layout.len(m, n), -1.0, 1.0);
            let (sv, out) = (self.input(&src)?, self.poisoned(m * n)?);
            self.dev.expand(sv, layout, out, n, -2.0);
            let want = r::expand(&src, layout, m * n, n, -2.0);
            self.check(&format!("expand_{layout:?}").to_lowercase(), shape2.clone(), out, &want, ABS_TOL, REL_TOL)
                .await?;
            self.done(&[sv, out]);
        }
        let pairs = [
            (Layout::Full, Layout::Row),
            (Layout::Col, Layout::Full),
            (Layout::Col, Layout::Row),
            (Layout::Full, Layout::Scalar),
        ];
        for (la, lb) in pairs {
            let a = self.random(la.len(m, n), -1.0, 1.0);
            // Divisors away from zero, of both signs.
            let b: Vec<f32> = self
                .random(lb.len(m, n), 0.5, 1.5)
                .iter()
                .enumerate()
                .map(|(i, v)| if i % 2 == 0 { *v } else { -v })
                .collect();
            let (av, bv) = (self.input(&a)?, self.input(&b)?);
            for op in BinaryOp::ALL {
                let out = self.poisoned(m * n)?;
                self.dev.binary_bcast(op, av, bv, out, Bcast { a: la, b: lb, cols: n });
                let want = r::binary_bcast(op, &a, la, &b, lb, m * n, n);
                let name = format!("{op:?}_{la:?}_{lb:?}").to_lowercase();
                self.check(&name, shape2.clone(), out, &want, ABS_TOL, REL_TOL).await?;
                self.done(&[out]);
            }
            self.done(&[av, bv]);
        }
        self.done(&[xv]);
        Ok(())
    }

    async fn vector_kernels(&mut self, n: usize, steps: u64) -> Result<()> {
        let shape = n.to_string();
        let a = self.random(n, -1.0, 1.0);
        // Divisors and logarithms away from zero.
        let b: Vec<f32> =
            self.random(n, 0.5, 1.5).iter().enumerate().map(|(i, v)| if i % 2 == 0 { *v } else { -v }).collect();
        let pos = self.random(n, 0.1, 2.0);
        let (av, bv, pv) = (self.input(&a)?, self.input(&b)?, self.input(&pos)?);
        for op in BinaryOp::ALL {
            let out = self.poisoned(n)?;
            self.dev.binary(op, av, bv, out);
            self.check(&format!("{op:?}").to_lowercase(), shape.clone(), out, &r::binary(op, &a, &b), ABS_TOL, REL_TOL)
                .await?;
            self.done(&[out]);
        }
        // sin and cos over several periods: every quadrant of the kernels' range reduction.
        let wide = self.random(n, -8.0, 8.0);
        let wv = self.input(&wide)?;
        // Every op of the table, each on the inputs its formula is defined on (the match has no
        // catch-all, so a new op must say which).
        let unary = UnaryOp::ALL.map(|op| {
            let input = match op {
                UnaryOp::Pow(p) if p.fract() != 0.0 => (pv, &pos),
                UnaryOp::Log => (pv, &pos),
                UnaryOp::Sin | UnaryOp::Cos | UnaryOp::Gelu | UnaryOp::GeluTanh | UnaryOp::Silu => (wv, &wide),
                UnaryOp::Scale(_)
                | UnaryOp::AddScalar(_)
                | UnaryOp::Pow(_)
                | UnaryOp::Exp
                | UnaryOp::Abs
                | UnaryOp::Sign => (av, &a),
            };
            (op.name(), op, input)
        });
        for (name, op, (src, data)) in unary {
            let out = self.poisoned(n)?;
            self.dev.unary(op, src, out);
            let want = r::unary(op, data);
            self.check(&name, shape.clone(), out, &want, ABS_TOL, REL_TOL).await?;
            self.done(&[out]);
        }
        // The derivatives taken from the input (GELU, SiLU), times an incoming gradient.
        for op in UnaryOp::ALL.into_iter().filter(|op| op.has_input_grad()) {
            let out = self.poisoned(n)?;
            self.dev.unary_grad(op, wv, bv, out);
            let want = r::unary_grad(op, &wide, &b);
            self.check(&format!("{}_grad", op.name()), shape.clone(), out, &want, ABS_TOL, REL_TOL).await?;
            self.done(&[out]);
        }
        self.done(&[wv]);
        let out = self.poisoned(1)?;
        self.dev.sum(av, out, 0.5);
        let want = a.iter().map(|&v| v as f64).sum::<f64>() * 0.5;
        self.check("sum", shape.clone(), out, &[want], matmul_abs_tol(n), REL_TOL).await?;
        self.done(&[out]);
        // The whole-vector ops: the inverse norm into a device scalar, scaling by it, a·x + b·y.
        let out = self.poisoned(1)?;
        self.dev.inv_norm(av, out, 1e-7);
        let norm = a.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        self.check("inv_norm", shape.clone(), out, &[1.0 / norm.max(1e-7)], ABS_TOL, REL_TOL).await?;
        let zero = self.input(&vec![0.0; n])?;
        self.dev.inv_norm(zero, out, 1e-3);
        self.check("inv_norm of zeros (eps)", shape.clone(), out, &[1e3], ABS_TOL, REL_TOL).await?;
        // clip_grad_norm's norm and coefficient, clipping (max_norm below the norm) and not.
        for max_norm in [0.5 * norm as f32, 2.0 * norm as f32 + 1.0] {
            let out2 = self.poisoned(2)?;
            self.dev.clip_coef(av, out2, max_norm);
            let coef = (max_norm as f64 / (norm + 1e-6)).min(1.0);
            self.check("clip_coef", format!("{shape} max_norm {max_norm}"), out2, &[norm, coef], ABS_TOL, REL_TOL)
                .await?;
            self.done(&[out2]);
        }
        self.done(&[zero]);
        let y = self.input(&b)?;
        self.dev.scale_by(y, out);
        self.check(
            "scale_by",
            shape.clone(),
            y,
            &b.iter().map(|&v| v as f64 * 1e3).collect::<Vec<_>>(),
            ABS_TOL,
            REL_TOL,
        )
        .await?;
        self.dev.write(y, &b)?;
        self.dev.axpby(-0.75, av, 1.5, y);
        let want: Vec<f64> = a.iter().zip(&b).map(|(&x, &y)| -0.75 * x as f64 + 1.5 * y as f64).collect();
        self.check("axpby", shape.clone(), y, &want, ABS_TOL, REL_TOL).await?;
        // Batched norms (Muon's same-shaped matrices): up to three members within the n
        // elements, each normalised by its own inverse norm.
        let members = n.min(3);
        let len = n / members;
        let (xs, ys) = (av.slice(0, members * len), y.slice(0, members * len));
        let norms = self.poisoned(members)?;
        self.dev.inv_norm_batched(xs, members, norms, 1e-7);
        let inv: Vec<f64> = a[..members * len]
            .chunks(len)
            .map(|m| 1.0 / m.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt().max(1e-7))
            .collect();
        let batch = format!("{members} x {len}");
        self.check("inv_norm batch", batch.clone(), norms, &inv, ABS_TOL, REL_TOL).await?;
        self.dev.write(y, &b)?;
        self.dev.scale_by_batched(ys, members, norms);
        let want: Vec<f64> = b[..members * len].iter().enumerate().map(|(i, &v)| v as f64 * inv[i / len]).collect();
        self.check("scale_by batch", batch, ys, &want, ABS_TOL, REL_TOL).await?;
        self.done(&[norms]);
        // The bench's vectorised streaming kernel: whole vec4s (the length rounded down to 4),
        // into an output poisoned past them too.
        let n4 = n / 4 * 4;
        if n4 > 0 {
            let out = self.poisoned(n)?;
            self.dev.stream_scale(av.slice(0, n4), out.slice(0, n4), -2.5);
            let mut want: Vec<f64> = a[..n4].iter().map(|&v| -2.5 * v as f64).collect();
            // Past the vec4s nothing is written: the poison (NaN) stays.
            want.extend(std::iter::repeat_n(f64::NAN, n - n4));
            self.check_by(compare_nan, "stream_scale", shape.clone(), out, &want, ABS_TOL, REL_TOL).await?;
            self.done(&[out]);
        }
        // clip_grad_value's clamp, in place, every fifth value a NaN that must stay NaN.
        let mut with_nan = b.clone();
        with_nan.iter_mut().step_by(5).for_each(|v| *v = f32::NAN);
        self.dev.write(y, &with_nan)?;
        self.dev.clamp(y, -0.25, 0.4);
        let want = r::clamp(&with_nan, -0.25, 0.4);
        self.check_by(compare_nan, "clamp", shape.clone(), y, &want, 0.0, 0.0).await?;
        // Dropout's mask, from Philox by element index: on ones, so that a wrong bit cannot hide
        // behind a small value; then on values with every fifth a NaN, which stays NaN where
        // dropped (x · 0, as PyTorch), into an output poisoned with a finite value.
        let (seed, offset) = (0x0123_4567_89ab_cdef_u64, 5u64 << 32 | 3);
        for p in [0.3f32, 0.9] {
            let mask = DropoutMask::new(p, seed, offset)?;
            let ones = self.input(&vec![1.0; n])?;
            let out = self.poisoned(n)?;
            self.dev.dropout(ones, out, &mask);
            let want = r::dropout(&vec![1.0; n], p as f64, seed, offset);
            self.check("dropout_mask", format!("{shape} p {p}"), out, &want, 0.0, REL_TOL).await?;
            let xs = self.input(&with_nan)?;
            let out2 = self.poisoned_with(n, 777.0)?;
            self.dev.dropout(xs, out2, &mask);
            let want = r::dropout(&with_nan, p as f64, seed, offset);
            self.check_by(compare_nan, "dropout", format!("{shape} p {p}"), out2, &want, ABS_TOL, REL_TOL).await?;
            self.done(&[ones, out, xs, out2]);
        }
        self.done(&[y]);
        // An f32 dataset's batch: rows picked by index (one past the end gives a NaN row), as
        // one column and, where the length allows, as rows of 7.
        for cols in [1, 7].into_iter().filter(|&c| n.is_multiple_of(c)) {
            let rows = n / cols;
            let mut picks: Vec<u32> = (0..rows.min(37)).map(|i| (i * 7919 % rows) as u32).collect();
            picks.push(rows as u32);
            let bytes: Vec<u8> = [0u32, 0].iter().chain(&picks).flat_map(|i| i.to_le_bytes()).collect();
            let idx = self.dev.upload_bytes(&bytes)?;
            let out = self.poisoned_with(picks.len() * cols, 777.0)?;
            self.dev.gather_rows(av, cols, idx, 2, out);
            let want = r::gather_rows(&a, cols, &picks);
            self.check_by(compare_nan, "gather_rows", format!("{shape} cols {cols}"), out, &want, 0.0, 0.0).await?;
            self.dev.free_bytes(idx);
            self.done(&[out]);
        }
        let bc = self.poisoned(n)?;
        self.dev.expand(out, Layout::Scalar, bc, 1, 2.0);
        let got = self.dev.read_async(out).await?[0] as f64 * 2.0;
        self.check("expand_scalar", shape.clone(), bc, &vec![got; n], ABS_TOL, REL_TOL).await?;
        self.done(&[out, bc, av, bv, pv]);
        for (label, cfg) in optimizer_cases() {
            let steps = case_steps(&cfg, steps);
            self.optimizer(&label, &cfg, n, steps).await?;
            self.optimizer_bf16(&format!("{label} bf16"), &cfg.with_optim_bits(OptimBits::B16), n, steps).await?;
        }
        self.optimizer_groups(n, steps).await?;
        Ok(())
    }
}

/// Run every kernel on `dev` against the reference (natively; [`run_async`] in the browser).
pub fn run(dev: &mut Device, cfg: &ParityConfig) -> Result<Vec<ParityRow>> {
    crate::backend::wait(run_async(dev, cfg))
}

/// [`run`] as a future: every readback is awaited, so it runs on a browser's WebGPU device.
pub async fn run_async(dev: &mut Device, cfg: &ParityConfig) -> Result<Vec<ParityRow>> {
    cfg.check_fits(dev)?;
    let mut c = Checker { dev, rng: Rng::new(cfg.seed), rows: Vec::new() };
    for &(m, k, n) in &cfg.shapes {
        c.matrix_kernels(m, k, n).await?;
    }
    for &n in &cfg.lengths {
        c.vector_kernels(n, cfg.optim_steps).await?;
    }
    for &n in &cfg.lengths {
        let momentum = OptimStep::MuonMomentum(MuonMomentumParams { momentum: 0.95, nesterov: 1 });
        c.kernel_bf16("muon_momentum", momentum, n).await?;
    }
    // Muon runs on the matmul kernels: with the matrix checks (a run of vectors alone skips it).
    for (label, case) in muon_cases().into_iter().filter(|_| !cfg.shapes.is_empty()) {
        // Wide and tall matrices, a square one, and vectors for the auxiliary AdamW; with the
        // shapes the kernels run at their odd sizes. Shapes that repeat run Newton–Schulz as
        // one batch.
        let mut shapes = vec![
            vec![1, 1],
            vec![3, 5],
            vec![5, 3],
            vec![7],
            vec![129, 65],
            vec![784, 128],
            vec![6, 6],
            vec![5, 3],
            vec![129, 65],
        ];
        for &(m, k, _) in &cfg.shapes {
            shapes.push(vec![m, k]);
        }
        c.muon(&label, &case, &shapes, cfg.optim_steps).await?;
    }
    for (label, case) in adafactor_cases() {
        for &n in &cfg.lengths {
            c.adafactor(&label, &case, &[vec![n]], cfg.optim_steps).await?;
        }
        for &(m, k, n) in &cfg.shapes {
            // Both orientations, a vector and a batch of two in one arena: one launch of each
            // pass over all of them.
            let shapes = [vec![m, k], vec![k, n], vec![n], vec![2, m, n]];
            c.adafactor(&label, &case, &shapes, cfg.optim_steps).await?;
            c.adafactor_bf16(&label, &case, &shapes, cfg.optim_steps).await?;
        }
        for &n in &cfg.lengths {
            c.adafactor_bf16(&label, &case, &[vec![n]], cfg.optim_steps).await?;
        }
    }
    if !cfg.blockwise_lengths.is_empty() {
        for (label, case) in blockwise_cases() {
            for &n in &cfg.blockwise_lengths {
                c.optimizer_8bit(&label, &case, &[n], cfg.optim_steps).await?;
            }
            // Several tensors, small and large, in one arena: one launch over all their blocks.
            c.optimizer_8bit(&label, &case, &cfg.blockwise_lengths, cfg.optim_steps).await?;
        }
    }
    c.dev.finish_async().await?;
    Ok(c.rows)
}

/// The table `descent parity` prints.
pub fn table(rows: &[ParityRow]) -> String {
    let mut s = format!(
        "{:<8} {:<36} {:<18} {:>12} {:>12}  {}\n",
        "device", "kernel", "shape", "max abs err", "max rel err", "result"
    );
    for r in rows {
        let dev = if r.device.starts_with("gpu") { "gpu" } else { "cpu" };
        s += &format!(
            "{:<8} {:<36} {:<18} {:>12.3e} {:>12.3e}  {}\n",
            dev,
            r.kernel,
            r.shape,
            r.max_abs_err,
            r.max_rel_err,
            if r.pass { "pass" } else { "FAIL" }
        );
    }
    s
}
