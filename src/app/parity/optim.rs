//! The optimizer checks of parity: every fused kernel against the f64 reference over several
//! steps, its bfloat16 state bit for bit against its f32 entry, every blockwise 8-bit form, and the
//! optimizers that are not one elementwise pass (Adafactor, Muon) through `Optimizer`.

use super::*;
use crate::backend::GroupedStep;

impl Checker<'_> {
    /// A row from the worst of several comparisons (one per step).
    pub(super) fn row(&mut self, kernel: String, shape: &str, results: &[(f64, f64, bool)]) {
        let worst = |f: fn(&(f64, f64, bool)) -> f64| results.iter().map(f).fold(0f64, f64::max);
        self.rows.push(ParityRow {
            device: self.dev.describe(),
            kernel,
            shape: shape.to_string(),
            max_abs_err: worst(|r| r.0),
            max_rel_err: worst(|r| r.1),
            pass: results.iter().all(|r| r.2),
        });
    }

    /// Fresh gradients of mixed scale for step `t`, bounded away from zero (see `optimizer`).
    pub(super) fn gradients(&mut self, n: usize, t: u64) -> Vec<f32> {
        let scale = [1.0f32, 10.0, 0.5][(t as usize - 1) % 3];
        self.random(n, 0.1 * scale, scale).into_iter().map(|v| if self.rng.below(2) == 0 { v } else { -v }).collect()
    }

    /// bfloat16 state, step by step: each step, the device's f32 kernel runs from the same
    /// parameters and the same state widened to f32, and the bfloat16 kernel must give exactly
    /// its parameters and its state rounded to nearest-even. That checks the widening, rounding
    /// and packing bit for bit; the formulas' accuracy against the f64 reference is what the
    /// f32 rows check (an f64 comparison here would measure the formulas' conditioning, which
    /// rounded state can make poor, as for centered RMSProp's `v − avg²`).
    pub(super) async fn optimizer_bf16(&mut self, label: &str, cfg: &OptimConfig, n: usize, steps: u64) -> Result<()> {
        let names = cfg.state_names();
        let p0 = self.random(n, -1.0, 1.0);
        let pv = self.input(&p0)?;
        let gv = self.dev.alloc(n)?;
        let pf = self.dev.alloc(n)?;
        let sf: Vec<View> = names.iter().map(|_| self.dev.alloc(n)).collect::<Result<_>>()?;
        let mut opt = Optimizer::for_len(self.dev, cfg.clone(), Schedule::Constant, n)?;
        let (mut pres, mut sres) = (Vec::new(), vec![Vec::new(); names.len()]);
        let mut carried = Carried::new();
        for t in 1..=steps {
            // The f32 kernel from the same parameters and the widened state.
            let p_now = self.dev.read_async(pv).await?;
            self.dev.write(pf, &p_now)?;
            for ((_, v), &s) in opt.read_state_async(self.dev).await?.iter().zip(&sf) {
                self.dev.write(s, v)?;
            }
            if let (OptimConfig::SchedulefreeAdamw(_), 1) = (cfg, t) {
                // The optimizer's first step begins with z = p (its init pass), stored in bfloat16.
                let z: Vec<f32> = p_now.iter().map(|&x| quant::bf16_to_f32(quant::bf16_from_f32(x))).collect();
                self.dev.write(sf[0], &z)?;
            }
            let g = self.gradients(n, t);
            self.dev.write(gv, &g)?;
            carried.advance(cfg, cfg.lr());
            let Step::Fused(k) = cfg.kernel_step(t, cfg.lr(), &carried) else { bail!("{label}: not a fused step") };
            self.dev.optim_step(&k, cfg.objective(), pf, gv, &sf);
            opt.step_views(self.dev, pv, gv)?;
            let want_p: Vec<f64> = self.dev.read_async(pf).await?.iter().map(|&v| v as f64).collect();
            pres.push(compare(&self.dev.read_async(pv).await?, &want_p, 0.0, 0.0));
            for (k, (_, got)) in opt.read_state_async(self.dev).await?.into_iter().enumerate() {
                let want: Vec<f64> =
                    self.dev.read_async(sf[k]).await?.iter().map(|&v| optim_ref::round_bf16(v as f64)).collect();
                sres[k].push(compare(&got, &want, 0.0, 0.0));
            }
        }
        let shape = format!("{n} x {steps} steps");
        self.row(format!("{label} param"), &shape, &pres);
        for (name, res) in names.iter().zip(&sres) {
            self.row(format!("{label} {name}"), &shape, res);
        }
        opt.release(self.dev);
        self.done(&[pv, gv, pf]);
        self.done(&sf);
        Ok(())
    }

    /// A blockwise 8-bit optimizer over tensors of `lens` in one arena (offsets padded as a
    /// model's are), step by step from the device's state. Codes must equal the reference's
    /// except where the reference's value lies within rounding ([`CODE_TIE_TOL`], relative to
    /// the larger of the value and the terms it was summed from) of the midpoint between the
    /// two codes; those are counted (the codes row's max abs err) and
    /// bounded (one per thousand elements, at least one).
    pub(super) async fn optimizer_8bit(
        &mut self,
        label: &str,
        cfg: &OptimConfig,
        lens: &[usize],
        steps: u64,
    ) -> Result<()> {
        let shapes: Vec<Vec<usize>> = lens.iter().map(|&len| vec![len]).collect();
        let (layout, n) = crate::nn::arena_layout(&shapes);
        let tensors: Vec<(usize, usize)> = layout.iter().map(|(at, s)| (*at, s[0])).collect();
        let p0 = self.random(n, -1.0, 1.0);
        let pv = self.input(&p0)?;
        let gv = self.dev.alloc(n)?;
        let mut opt = Optimizer::for_tensors(self.dev, cfg.clone(), Schedule::Constant, n, &tensors)?;
        let table = opt.block_table().cloned().context("8-bit state has a block table")?;
        let maps: Vec<&DynamicMap> = cfg.slots().iter().map(|s| quant::map_8bit(s.signed_8bit())).collect();
        let slots = maps.len();
        let (mut pres, mut cres, mut ares, mut fres) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let elements: usize = lens.iter().sum();
        for t in 1..=steps {
            let p_dev = self.dev.read_async(pv).await?;
            let StoredState::Blockwise8 { codes, absmax, small } = opt.read_stored_async(self.dev).await? else {
                unreachable!("an 8-bit optimizer stores codes")
            };
            let g = self.gradients(n, t);
            self.dev.write(gv, &g)?;
            opt.step_views(self.dev, pv, gv)?;
            let p_new = self.dev.read_async(pv).await?;
            let StoredState::Blockwise8 { codes: codes_new, absmax: absmax_new, small: small_new } =
                opt.read_stored_async(self.dev).await?
            else {
                unreachable!("an 8-bit optimizer stores codes")
            };
            let (mut want_p, mut got_p) = (Vec::new(), Vec::new());
            let lrs = vec![cfg.lr(); t as usize];
            let (mut want_a, mut got_a) = (Vec::new(), Vec::new());
            let (mut want_s, mut got_s) = (Vec::new(), Vec::new());
            let (mut ties, mut wrong) = (0usize, 0usize);
            for &(at, len) in &tensors {
                let r = at..at + len;
                let mut p: Vec<f64> = p_dev[r.clone()].iter().map(|&v| v as f64).collect();
                let g64: Vec<f64> = g[r.clone()].iter().map(|&v| v as f64).collect();
                match table.tensor_state(at, len).context("each tensor has blocks")? {
                    TensorState::Quantized(ab) => {
                        let mut q = optim_ref::Quantized {
                            codes: (0..slots).map(|k| codes[k][r.clone()].to_vec()).collect(),
                            absmax: (0..slots)
                                .map(|k| absmax[k][ab.clone()].iter().map(|&a| a as f64).collect())
                                .collect(),
                        };
                        // What rounding is relative to: a running average β·m + (1 − β)·g can
                        // cancel, leaving a value far smaller than its terms; the old value
                        // bounds them (a sum of squares never cancels, and its old value is
                        // below the new).
                        let old: Vec<Vec<f64>> = (0..slots)
                            .map(|k| {
                                (0..len)
                                    .map(|i| {
                                        (maps[k].values[q.codes[k][i] as usize] as f64 * q.absmax[k][i / quant::BLOCK])
                                            .abs()
                                    })
                                    .collect()
                            })
                            .collect();
                        let values = optim_ref::step_8bit(cfg, t, &lrs, &mut p, &g64, &mut q);
                        for k in 0..slots {
                            want_a.extend(q.absmax[k].iter().copied());
                            got_a.extend(absmax_new[k][ab.clone()].iter().copied());
                            for (i, (&got, &want)) in codes_new[k][r.clone()].iter().zip(&q.codes[k]).enumerate() {
                                if got == want {
                                    continue;
                                }
                                let mid =
                                    (maps[k].values[got as usize] as f64 + maps[k].values[want as usize] as f64) / 2.0;
                                let x = values[k][i];
                                let top = q.absmax[k][i / quant::BLOCK];
                                // (Only a signed slot can cancel: the unsigned one holds squares.)
                                let scale =
                                    if maps[k].signed && top > 0.0 { x.abs().max(old[k][i] / top) } else { x.abs() };
                                if got.abs_diff(want) == 1 && (x - mid).abs() <= CODE_TIE_TOL * scale.max(1e-6) {
                                    ties += 1;
                                } else {
                                    wrong += 1;
                                }
                            }
                        }
                    }
                    TensorState::Full(s) => {
                        let mut state: Vec<Vec<f64>> =
                            (0..slots).map(|k| small[k][s.clone()].iter().map(|&v| v as f64).collect()).collect();
                        optim_ref::step(cfg, t, &lrs, &mut p, &g64, &mut state);
                        for k in 0..slots {
                            want_s.extend(state[k].iter().copied());
                            got_s.extend(small_new[k][s.clone()].iter().copied());
                        }
                    }
                }
                want_p.extend(p);
                got_p.extend(p_new[r].iter().copied());
            }
            pres.push(compare(&got_p, &want_p, ABS_TOL, REL_TOL));
            ares.push(compare(&got_a, &want_a, ABS_TOL, REL_TOL));
            fres.push(compare(&got_s, &want_s, ABS_TOL, REL_TOL));
            cres.push((ties as f64, wrong as f64, wrong == 0 && ties <= (elements / 1000).max(1)));
        }
        let shape = format!("{} x {steps} steps", lens.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("+"));
        self.row(format!("{label} 8bit param"), &shape, &pres);
        if lens.iter().any(|&l| quant::is_quantized(l)) {
            self.row(format!("{label} 8bit codes (ties, wrong)"), &shape, &cres);
            self.row(format!("{label} 8bit absmax"), &shape, &ares);
        }
        if lens.iter().any(|&l| !quant::is_quantized(l)) {
            self.row(format!("{label} 8bit f32 state"), &shape, &fres);
        }
        opt.release(self.dev);
        self.done(&[pv, gv]);
        Ok(())
    }

    pub(super) async fn optimizer(&mut self, label: &str, cfg: &OptimConfig, n: usize, steps: u64) -> Result<()> {
        let names = cfg.state_names();
        let p0 = self.random(n, -1.0, 1.0);
        let mut p: Vec<f64> = p0.iter().map(|&v| v as f64).collect();
        let inits = cfg.state_inits(cfg.lr());
        let mut state: Vec<Vec<f64>> = inits.iter().map(|&x| vec![x as f64; n]).collect();
        let pv = self.input(&p0)?;
        let gv = self.dev.alloc(n)?;
        let mut slots = Vec::new();
        for &init in &inits {
            let s = self.dev.alloc(n)?;
            self.dev.fill(s, init);
            slots.push(s);
        }
        if let OptimConfig::SchedulefreeAdamw(_) = cfg {
            // z starts as a copy of the parameters: the init pass, checked as its own row.
            let init = OptimStep::SchedulefreeMode(SchedulefreeModeParams { weight: 0.0, init: 1 });
            self.dev.optim_step(&init, Objective::Minimize, pv, gv, &slots);
            state[0].clone_from(&p);
            self.check(&format!("{label} init z"), format!("{n}"), slots[0], &p, 0.0, 0.0).await?;
        }
        let mut carried = Carried::new();
        let mut lrs = Vec::new();
        let mut ties = vec![false; n];
        for t in 1..=steps {
            // Fresh gradients of mixed scale, bounded away from zero so that g + wd·p cannot
            // cancel: a cancellation makes any f32 result differ from f64 by more than the
            // tolerance, whatever the kernel. (Tiny gradients are covered by the PyTorch
            // fixtures in tests/optim_fixtures.rs.)
            let scale = [1.0f32, 10.0, 0.5][(t as usize - 1) % 3];
            let g: Vec<f32> = self
                .random(n, 0.1 * scale, scale)
                .into_iter()
                .map(|v| if self.rng.below(2) == 0 { v } else { -v })
                .collect();
            self.dev.write(gv, &g)?;
            let lr = cfg.lr();
            carried.advance(cfg, lr);
            lrs.push(lr);
            let Step::Fused(k) = cfg.kernel_step(t, lr, &carried) else { bail!("{label}: not a fused step") };
            self.dev.optim_step(&k, cfg.objective(), pv, gv, &slots);
            let g64: Vec<f64> = g.iter().map(|&v| v as f64).collect();
            for (tie, now) in ties.iter_mut().zip(optim_ref::sign_ties(cfg, &g64, &state)) {
                *tie |= now;
            }
            optim_ref::step(cfg, t, &lrs, &mut p, &g64, &mut state);
        }
        // Elements whose sign was within rounding of 0 at some step are counted, not compared;
        // more than one in a thousand fails (a kernel off by a sign would hide among them).
        let count = ties.iter().filter(|&&t| t).count();
        if count > n / 1000 + 1 {
            ties.iter_mut().for_each(|t| *t = false);
        }
        let shape =
            if count > 0 { format!("{n} x {steps} steps, {count} sign ties") } else { format!("{n} x {steps} steps") };
        self.check_ties(&format!("{label} param"), shape.clone(), pv, &p, &ties).await?;
        for (i, name) in names.iter().enumerate() {
            self.check_ties(&format!("{label} {name}"), shape.clone(), slots[i], &state[i], &ties).await?;
        }
        if let OptimConfig::SchedulefreeAdamw(c) = cfg {
            // The switch to eval mode: x = y + (1 − 1/β1)·(z − y), as the reference's lerp.
            let weight = 1.0 - 1.0 / c.betas.0;
            let switch = OptimStep::SchedulefreeMode(SchedulefreeModeParams { weight: weight as f32, init: 0 });
            self.dev.optim_step(&switch, Objective::Minimize, pv, gv, &slots);
            for (x, z) in p.iter_mut().zip(&state[0]) {
                *x += weight * (z - *x);
            }
            let shape = format!("{n} after {steps} steps");
            self.check(&format!("{label} eval x"), shape, pv, &p, ABS_TOL, REL_TOL).await?;
        }
        self.done(&[pv, gv]);
        self.done(&slots);
        Ok(())
    }

    /// Parameter groups in one launch ([`GroupedStep`]): AdamW and SGD with momentum over three
    /// runs of two groups, each group with its own rate and decay, and a gap between runs that no
    /// step may touch, against the reference run by run.
    pub(super) async fn optimizer_groups(&mut self, n: usize, steps: u64) -> Result<()> {
        if n < 8 {
            return Ok(());
        }
        let (a, b, c) = (n / 3, n / 3 + 2, 2 * n / 3 + 1);
        let runs = vec![(0..a, 0), (b..c, 1), (c..n, 0)];
        let cases = [
            ("adamw", r#"{"name": "adamw", "lr": 0.01, "weight_decay": 0.1}"#, r#"{"name": "adamw", "lr": 0.03}"#),
            (
                "sgd momentum",
                r#"{"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}"#,
                r#"{"name": "sgd", "lr": 0.02, "momentum": 0.9}"#,
            ),
        ];
        for (label, g0, g1) in cases {
            let cfgs = [g0, g1].map(|j| serde_json::from_str(j).map_err(anyhow::Error::from));
            let cfgs: Vec<OptimConfig> =
                cfgs.into_iter().map(|j| OptimConfig::from_json(&j?, "parity")).collect::<Result<_>>()?;
            let p0 = self.random(n, -1.0, 1.0);
            let mut p: Vec<f64> = p0.iter().map(|&v| v as f64).collect();
            let inits = cfgs[0].state_inits(cfgs[0].lr());
            let mut state: Vec<Vec<f64>> = inits.iter().map(|&x| vec![x as f64; n]).collect();
            let (pv, gv) = (self.input(&p0)?, self.dev.alloc(n)?);
            let mut slots = Vec::new();
            for &init in &inits {
                let s = self.dev.alloc(n)?;
                self.dev.fill(s, init);
                slots.push(s);
            }
            let Step::Fused(first) = cfgs[0].kernel_step(1, cfgs[0].lr(), &Carried::new()) else {
                bail!("{label}: not a fused step")
            };
            let words = cfgs.len() * first.kernel().size / 4;
            let (runs_table, groups_table) = (self.dev.alloc(1 + 3 * runs.len())?, self.dev.alloc(words)?);
            let mut carried = [Carried::new(), Carried::new()];
            let mut lrs: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
            for t in 1..=steps {
                let g: Vec<f32> =
                    self.random(n, 0.1, 1.0).into_iter().map(|v| if self.rng.below(2) == 0 { v } else { -v }).collect();
                self.dev.write(gv, &g)?;
                let mut kernel_steps = Vec::new();
                for (k, cfg) in cfgs.iter().enumerate() {
                    carried[k].advance(cfg, cfg.lr());
                    lrs[k].push(cfg.lr());
                    let Step::Fused(s) = cfg.kernel_step(t, cfg.lr(), &carried[k]) else { bail!("{label}: not fused") };
                    kernel_steps.push(s);
                }
                let grouped = GroupedStep { steps: kernel_steps, runs: runs.clone(), runs_table, groups_table };
                self.dev.optim_step_groups(&grouped, Objective::Minimize, pv, gv, &slots, false);
                let g64: Vec<f64> = g.iter().map(|&v| v as f64).collect();
                for (r, k) in &runs {
                    let mut ps = p[r.clone()].to_vec();
                    let mut ss: Vec<Vec<f64>> = state.iter().map(|s| s[r.clone()].to_vec()).collect();
                    optim_ref::step(&cfgs[*k], t, &lrs[*k], &mut ps, &g64[r.clone()], &mut ss);
                    p[r.clone()].copy_from_slice(&ps);
                    for (s, new) in state.iter_mut().zip(ss) {
                        s[r.clone()].copy_from_slice(&new);
                    }
                }
            }
            let shape = format!("{n} x {steps} steps, runs 0..{a} {b}..{c} {c}..{n}");
            self.check(&format!("{label} groups param"), shape.clone(), pv, &p, ABS_TOL, REL_TOL).await?;
            for (i, name) in cfgs[0].state_names().iter().enumerate() {
                self.check(&format!("{label} groups {name}"), shape.clone(), slots[i], &state[i], ABS_TOL, REL_TOL)
                    .await?;
            }
            self.done(&[pv, gv, runs_table, groups_table]);
            self.done(&slots);
        }
        Ok(())
    }

    /// Adafactor over tensors of `shapes` in one arena, through [`Optimizer`] (its six passes
    /// over the per-tensor table), against the f64 reference tensor by tensor: parameters and
    /// statistics after `steps` steps. The work buffer starts poisoned with NaN (every sum a
    /// step reads, it writes first).
    pub(super) async fn adafactor(
        &mut self,
        label: &str,
        cfg: &OptimConfig,
        shapes: &[Vec<usize>],
        steps: u64,
    ) -> Result<()> {
        let (tensors, n) = crate::nn::arena_layout(shapes);
        let p0 = self.random(n, -1.0, 1.0);
        let pv = self.input(&p0)?;
        let gv = self.dev.alloc(n)?;
        let mut opt = Optimizer::for_shapes(self.dev, cfg.clone(), Schedule::Constant, n, &tensors)?;
        let mut p: Vec<f64> = p0.iter().map(|&v| v as f64).collect();
        let mut state: Vec<Vec<f64>> = tensors
            .iter()
            .map(|(_, s)| {
                let len: usize = s.iter().product();
                match s.len() {
                    0 | 1 => len,
                    d => len / (s[d - 2] * s[d - 1]).max(1) * (s[d - 2] + s[d - 1]),
                }
            })
            .map(|len| vec![0.0; len])
            .collect();
        for t in 1..=steps {
            let g = self.gradients(n, t);
            self.dev.write(gv, &g)?;
            opt.step_views(self.dev, pv, gv)?;
            for ((at, shape), st) in tensors.iter().zip(&mut state) {
                let r = *at..*at + shape.iter().product::<usize>();
                let g64: Vec<f64> = g[r.clone()].iter().map(|&v| v as f64).collect();
                optim_ref::adafactor_step(cfg, t, cfg.lr(), shape, &mut p[r], &g64, st);
            }
        }
        let names: Vec<String> = shapes.iter().map(|s| format!("{s:?}")).collect();
        let shape = format!("{} x {steps} steps", names.join(" "));
        self.check(&format!("{label} param"), shape.clone(), pv, &p, ABS_TOL, REL_TOL).await?;
        // The statistics, as the optimizer names them: R, C and V concatenated in arena order.
        let (mut rows, mut cols, mut var) = (Vec::new(), Vec::new(), Vec::new());
        for ((_, s), st) in tensors.iter().zip(&state) {
            if s.len() >= 2 {
                let batch = s[..s.len() - 2].iter().product::<usize>();
                let split = batch * s[s.len() - 2];
                rows.extend_from_slice(&st[..split]);
                cols.extend_from_slice(&st[split..]);
            } else {
                var.extend_from_slice(st);
            }
        }
        for (name, got) in opt.read_state_async(self.dev).await? {
            let want = match name {
                "row_var" => &rows,
                "col_var" => &cols,
                _ => &var,
            };
            let (max_abs_err, max_rel_err, pass) = compare(&got, want, ABS_TOL, REL_TOL);
            self.rows.push(ParityRow {
                device: self.dev.describe(),
                kernel: format!("{label} {name}"),
                shape: shape.clone(),
                max_abs_err,
                max_rel_err,
                pass: pass && got.len() == want.len(),
            });
        }
        opt.release(self.dev);
        self.done(&[pv, gv]);
        Ok(())
    }

    /// Adafactor with bfloat16 statistics over tensors of `shapes` in one arena, step by step:
    /// each step an f32 Adafactor runs from the same parameters and the same statistics
    /// widened to f32, and the bfloat16 one must give exactly its parameters and its
    /// statistics rounded to nearest-even (a step reads each new statistic in f32, so only
    /// what is stored is rounded).
    pub(super) async fn adafactor_bf16(
        &mut self,
        label: &str,
        cfg: &OptimConfig,
        shapes: &[Vec<usize>],
        steps: u64,
    ) -> Result<()> {
        let (tensors, n) = crate::nn::arena_layout(shapes);
        let p0 = self.random(n, -1.0, 1.0);
        let pv = self.input(&p0)?;
        let pf = self.dev.alloc(n)?;
        let gv = self.dev.alloc(n)?;
        let (c16, c32) = (cfg.clone().with_optim_bits(OptimBits::B16), cfg.clone().with_optim_bits(OptimBits::B32));
        let mut opt16 = Optimizer::for_shapes(self.dev, c16, Schedule::Constant, n, &tensors)?;
        let mut opt32 = Optimizer::for_shapes(self.dev, c32, Schedule::Constant, n, &tensors)?;
        let (mut pres, mut sres) = (Vec::new(), Vec::new());
        for t in 1..=steps {
            let p_now = self.dev.read_async(pv).await?;
            self.dev.write(pf, &p_now)?;
            let StoredState::FactoredBf16(h) = opt16.read_stored_async(self.dev).await? else {
                bail!("{label}: 16-bit adafactor stores bfloat16 statistics")
            };
            opt32.write_stored(self.dev, &StoredState::Factored(h.into_iter().map(quant::bf16_to_f32).collect()))?;
            let g = self.gradients(n, t);
            self.dev.write(gv, &g)?;
            opt32.step_views(self.dev, pf, gv)?;
            opt16.step_views(self.dev, pv, gv)?;
            let want_p: Vec<f64> = self.dev.read_async(pf).await?.iter().map(|&v| v as f64).collect();
            pres.push(compare(&self.dev.read_async(pv).await?, &want_p, 0.0, 0.0));
            let (StoredState::Factored(s32), StoredState::FactoredBf16(s16)) =
                (opt32.read_stored_async(self.dev).await?, opt16.read_stored_async(self.dev).await?)
            else {
                bail!("{label}: adafactor stores f32 or bfloat16 statistics")
            };
            let want: Vec<f64> = s32.iter().map(|&v| optim_ref::round_bf16(v as f64)).collect();
            let got: Vec<f32> = s16.into_iter().map(quant::bf16_to_f32).collect();
            sres.push(compare(&got, &want, 0.0, 0.0));
        }
        let names: Vec<String> = shapes.iter().map(|s| format!("{s:?}")).collect();
        let shape = format!("{} x {steps} steps", names.join(" "));
        self.row(format!("{label} bf16 param"), &shape, &pres);
        self.row(format!("{label} bf16 statistics"), &shape, &sres);
        opt16.release(self.dev);
        opt32.release(self.dev);
        self.done(&[pv, pf, gv]);
        Ok(())
    }

    /// Muon over tensors of `shapes` in one arena, through [`Optimizer`] (momentum,
    /// Newton–Schulz on the matmul kernels, the update; the auxiliary AdamW on the rest),
    /// against the f64 reference: Newton–Schulz in f64 per matrix, AdamW per other tensor.
    pub(super) async fn muon(
        &mut self,
        label: &str,
        cfg: &OptimConfig,
        shapes: &[Vec<usize>],
        steps: u64,
    ) -> Result<()> {
        let OptimConfig::Muon(mc) = cfg else { bail!("{label}: not a Muon configuration") };
        let (tensors, n) = crate::nn::arena_layout(shapes);
        let p0 = self.random(n, -1.0, 1.0);
        let pv = self.input(&p0)?;
        let gv = self.dev.alloc(n)?;
        let mut opt = Optimizer::for_shapes(self.dev, cfg.clone(), Schedule::Constant, n, &tensors)?;
        let layout = opt.muon_layout().context("a Muon optimizer has its layout")?;
        let matrices: Vec<(std::ops::Range<usize>, usize, usize)> =
            layout.matrices.iter().map(|m| (m.range.clone(), m.rows, m.cols)).collect();
        let aux = OptimConfig::muon_aux(mc);
        let mut p: Vec<f64> = p0.iter().map(|&v| v as f64).collect();
        let mut bufs: Vec<Vec<f64>> = matrices.iter().map(|(r, _, _)| vec![0.0; r.len()]).collect();
        let mut moments: Vec<Vec<Vec<f64>>> =
            tensors.iter().map(|(_, s)| vec![vec![0.0; s.iter().product()]; 2]).collect();
        let mut lrs = Vec::new();
        for t in 1..=steps {
            let g = self.gradients(n, t);
            self.dev.write(gv, &g)?;
            opt.step_views(self.dev, pv, gv)?;
            lrs.push(mc.aux_lr);
            for ((at, shape), m) in tensors.iter().zip(&mut moments) {
                let r = *at..*at + shape.iter().product::<usize>();
                let g64: Vec<f64> = g[r.clone()].iter().map(|&v| v as f64).collect();
                match matrices.iter().position(|(mr, _, _)| mr.start == r.start) {
                    Some(k) => {
                        let (_, rows, cols) = matrices[k];
                        optim_ref::muon_step(cfg, mc.lr, rows, cols, &mut p[r], &g64, &mut bufs[k]);
                    }
                    None => optim_ref::step(&aux, t, &lrs, &mut p[r], &g64, m),
                }
            }
        }
        let names: Vec<String> = shapes.iter().map(|s| format!("{s:?}")).collect();
        let shape = format!("{} x {steps} steps", names.join(" "));
        self.check(&format!("{label} param"), shape.clone(), pv, &p, ABS_TOL, REL_TOL).await?;
        // The momentum buffers, each matrix's from its place in the compact slot.
        let state = opt.read_state_async(self.dev).await?;
        let layout = opt.muon_layout().context("a Muon optimizer has its layout")?;
        if let Some((_, got)) = state.iter().find(|(name, _)| *name == "momentum_buffer") {
            let (mut g, mut w) = (Vec::new(), Vec::new());
            for (m, want) in layout.matrices.iter().zip(&bufs) {
                g.extend_from_slice(&got[m.at..m.at + m.range.len()]);
                w.extend_from_slice(want);
            }
            let (max_abs_err, max_rel_err, pass) = compare(&g, &w, ABS_TOL, REL_TOL);
            self.rows.push(ParityRow {
                device: self.dev.describe(),
                kernel: format!("{label} momentum_buffer"),
                shape: shape.clone(),
                max_abs_err,
                max_rel_err,
                pass: pass && !w.is_empty(),
            });
        }
        opt.release(self.dev);
        self.done(&[pv, gv]);
        Ok(())
    }

    /// A fused kernel `step` with bfloat16 state against its f32 entry from the same widened
    /// state, bit for bit (for the kernels no optimizer configuration runs alone: Muon's
    /// momentum, which writes its output in the place of the parameters).
    pub(super) async fn kernel_bf16(&mut self, label: &str, step: OptimStep, n: usize) -> Result<()> {
        let slots = step.slots().len();
        let p0 = self.random(n, -1.0, 1.0);
        let g = self.gradients(n, 1);
        let (pf, pb, gv) = (self.input(&p0)?, self.input(&p0)?, self.input(&g)?);
        let mut sf = Vec::new();
        let mut sb = Vec::new();
        let mut wide = Vec::new();
        for _ in 0..slots {
            let bits: Vec<u16> = self.random(n, -1.0, 1.0).iter().map(|&x| quant::bf16_from_f32(x)).collect();
            let f: Vec<f32> = bits.iter().map(|&h| quant::bf16_to_f32(h)).collect();
            let words: Vec<f32> = bits
                .chunks(2)
                .map(|c| f32::from_bits(c[0] as u32 | (c.get(1).copied().unwrap_or(0) as u32) << 16))
                .collect();
            sf.push(self.input(&f)?);
            let b = self.input(&words)?;
            sb.push(View { offset: 0, len: n, ..b });
            wide.push(b);
        }
        self.dev.optim_step(&step, Objective::Minimize, pf, gv, &sf);
        self.dev.optim_step_bf16(&step, Objective::Minimize, pb, gv, &sb);
        let want: Vec<f64> = self.dev.read_async(pf).await?.iter().map(|&v| v as f64).collect();
        self.check(&format!("{label} bf16 out"), n.to_string(), pb, &want, 0.0, 0.0).await?;
        for k in 0..slots {
            let want: Vec<f64> =
                self.dev.read_async(sf[k]).await?.iter().map(|&v| optim_ref::round_bf16(v as f64)).collect();
            let words = self.dev.read_async(wide[k]).await?;
            let got: Vec<f32> = words
                .iter()
                .flat_map(|w| [w.to_bits() as u16, (w.to_bits() >> 16) as u16])
                .take(n)
                .map(quant::bf16_to_f32)
                .collect();
            let (max_abs_err, max_rel_err, pass) = compare(&got, &want, 0.0, 0.0);
            self.rows.push(ParityRow {
                device: self.dev.describe(),
                kernel: format!("{label} bf16 state {k}"),
                shape: n.to_string(),
                max_abs_err,
                max_rel_err,
                pass,
            });
        }
        self.done(&[pf, pb, gv]);
        self.done(&sf);
        self.done(&wide);
        Ok(())
    }
}
