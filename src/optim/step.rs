//! The step an optimizer configuration becomes: the kernel's scalars for step t
//! ([`OptimConfig::kernel_step`]), and the few scalars some optimizers carry from step to step
//! on the host ([`Carried`]).

use super::config::*;
use super::{OptimStep, Slot};
use crate::backend::optim_kernel::*;

fn flag(b: bool) -> u32 {
    b as u32
}

/// What one optimizer step launches.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    /// One fused elementwise pass over the arena (or over its trainable runs).
    Fused(OptimStep),
    /// Adafactor's passes over its per-tensor table ([`crate::backend::factored`]).
    Factored(AdafactorParams),
    /// Muon's passes per matrix (momentum, Newton–Schulz on the matmul kernels, the update)
    /// and one fused AdamW pass over the other tensors.
    Muon(MuonStep),
}

/// One Muon step's scalars.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MuonStep {
    /// The momentum pass (writes the matrix to orthogonalize).
    pub momentum: OptimStep,
    /// The auxiliary AdamW's step (decoupled decay).
    pub aux: OptimStep,
    /// This step's rate of the matrices (before the shape's adjustment).
    pub lr: f64,
    /// 1 − lr·weight_decay.
    pub decay: f32,
    /// (a, b, c) of the Newton–Schulz step.
    pub ns_coefficients: (f32, f32, f32),
    /// Newton–Schulz steps.
    pub ns_steps: u64,
    /// Floor of the Frobenius norm.
    pub eps: f32,
    /// How the rate scales with each matrix's shape.
    pub adjust_lr_fn: AdjustLr,
    /// Newton–Schulz's precision.
    pub ns_dtype: NsDtype,
}

impl Step {
    /// The per-element state slots the step keeps, in binding order (none for Adafactor,
    /// whose state is per row and column).
    pub fn slots(&self) -> Vec<Slot> {
        match self {
            Step::Fused(k) => k.slots(),
            Step::Factored(_) => Vec::new(),
            Step::Muon(m) => m.momentum.slots().into_iter().chain(m.aux.slots()).collect(),
        }
    }
}

/// Scalars carried from step to step on the host, where PyTorch keeps them in its state or
/// param groups: ASGD's η follows the previous step's rate, and Schedule-Free's averaging
/// weight sums over every step so far. A pure function of the rates so far, so a resumed
/// optimizer recomputes it ([`Carried::replay`]) rather than storing it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Carried {
    /// Steps taken.
    pub t: u64,
    /// The rate of step `t`.
    pub last_lr: f64,
    /// The rate ASGD's η of step `t` is computed from: step t−1's (step 1: its own).
    pub eta_lr: f64,
    /// Schedule-Free: the largest warmed-up rate so far (−1 before any).
    pub lr_max: f64,
    /// Schedule-Free: step t's averaging weight.
    pub weight: f64,
    /// Schedule-Free: the sum of every step's weight so far.
    pub weight_sum: f64,
}

impl Carried {
    /// Before the first step.
    pub fn new() -> Carried {
        Carried { lr_max: -1.0, ..Carried::default() }
    }

    /// After `t` steps at the rates `lr_at(k)` (0-based step index).
    pub fn replay(config: &OptimConfig, t: u64, lr_at: impl Fn(u64) -> f64) -> Carried {
        let mut c = Carried::new();
        for k in 0..t {
            c.advance(config, lr_at(k));
        }
        c
    }

    /// Count one more step, taken at rate `lr`.
    pub fn advance(&mut self, config: &OptimConfig, lr: f64) {
        self.eta_lr = if self.t == 0 { lr } else { self.last_lr };
        if let OptimConfig::SchedulefreeAdamw(c) = config {
            let k = self.t;
            self.lr_max = self.lr_max.max(schedulefree_lr(c, k, lr));
            self.weight = ((k + 1) as f64).powf(c.r) * self.lr_max.powf(c.weight_lr_power);
            self.weight_sum += self.weight;
        }
        self.last_lr = lr;
        self.t += 1;
    }
}

/// Schedule-Free's own warm-up on step index `k` (0-based): lr·(k + 1)/warmup_steps.
pub fn schedulefree_lr(c: &SchedulefreeAdamw, k: u64, lr: f64) -> f64 {
    if k < c.warmup_steps {
        lr * (k + 1) as f64 / c.warmup_steps as f64
    } else {
        lr
    }
}

impl OptimConfig {
    /// The kernel scalars for step `t` (1-based, as PyTorch counts) at learning rate `lr`,
    /// with `carried` the host scalars after this step ([`Carried::advance`]).
    pub fn kernel_step(&self, t: u64, lr: f64, carried: &Carried) -> Step {
        let f = |x: f64| x as f32;
        let fused = match self {
            OptimConfig::Sgd(c) => OptimStep::Sgd(SgdParams {
                lr: f(lr),
                momentum: f(c.momentum),
                dampening: f(c.dampening),
                weight_decay: f(c.weight_decay),
                nesterov: flag(c.nesterov),
                first_step: flag(t == 1),
            }),
            OptimConfig::Adagrad(c) => OptimStep::Adagrad(AdagradParams {
                clr: f(lr / (1.0 + (t as f64 - 1.0) * c.lr_decay)),
                weight_decay: f(c.weight_decay),
                eps: f(c.eps),
            }),
            OptimConfig::Rmsprop(c) => OptimStep::Rmsprop(RmspropParams {
                lr: f(lr),
                alpha: f(c.alpha),
                eps: f(c.eps),
                weight_decay: f(c.weight_decay),
                momentum: f(c.momentum),
                centered: flag(c.centered),
            }),
            OptimConfig::Adam(c) | OptimConfig::Adamw(c) => {
                let (b1, b2) = c.betas;
                OptimStep::Adam(AdamParams {
                    lr: f(lr),
                    beta1: f(b1),
                    beta2: f(b2),
                    eps: f(c.eps),
                    weight_decay: f(c.weight_decay),
                    step_size: f(lr / (1.0 - b1.powi(t as i32))),
                    bc2_sqrt: f((1.0 - b2.powi(t as i32)).sqrt()),
                    decoupled: flag(matches!(self, OptimConfig::Adamw(_))),
                    amsgrad: flag(c.amsgrad),
                })
            }
            OptimConfig::LectureMomentum(c) => OptimStep::LectureMomentum(LectureMomentumParams {
                lr: f(lr),
                momentum: f(c.momentum),
                weight_decay: f(c.weight_decay),
            }),
            OptimConfig::Nadam(c) => {
                let (b1, b2) = c.betas;
                let mu = |s: u64| nadam_mu(b1, c.momentum_decay, s);
                let product = nadam_mu_product(b1, c.momentum_decay, t);
                OptimStep::Nadam(NadamParams {
                    lr: f(lr),
                    beta1: f(b1),
                    beta2: f(b2),
                    eps: f(c.eps),
                    weight_decay: f(c.weight_decay),
                    grad_step: f(lr * (1.0 - mu(t)) / (1.0 - product)),
                    avg_step: f(lr * mu(t + 1) / (1.0 - product * mu(t + 1))),
                    bc2_sqrt: f((1.0 - b2.powi(t as i32)).sqrt()),
                    decoupled: flag(c.decoupled_weight_decay),
                })
            }
            OptimConfig::Radam(c) => {
                let (b1, b2) = c.betas;
                let bc2 = 1.0 - b2.powi(t as i32);
                let rect = radam_rectification(b2, t);
                OptimStep::Radam(RadamParams {
                    lr: f(lr),
                    beta1: f(b1),
                    beta2: f(b2),
                    eps: f(c.eps),
                    weight_decay: f(c.weight_decay),
                    step_size: f(lr / (1.0 - b1.powi(t as i32))),
                    adaptive_scale: f(rect.map_or(0.0, |r| r * bc2.sqrt())),
                    rectified: flag(rect.is_some()),
                    decoupled: flag(c.decoupled_weight_decay),
                })
            }
            OptimConfig::Adamax(c) => {
                let (b1, b2) = c.betas;
                OptimStep::Adamax(AdamaxParams {
                    beta1: f(b1),
                    beta2: f(b2),
                    eps: f(c.eps),
                    weight_decay: f(c.weight_decay),
                    clr: f(lr / (1.0 - b1.powi(t as i32))),
                })
            }
            OptimConfig::Adadelta(c) => OptimStep::Adadelta(AdadeltaParams {
                lr: f(lr),
                rho: f(c.rho),
                eps: f(c.eps),
                weight_decay: f(c.weight_decay),
            }),
            OptimConfig::Lion(c) => OptimStep::Lion(LionParams {
                lr: f(lr),
                beta1: f(c.betas.0),
                beta2: f(c.betas.1),
                weight_decay: f(c.weight_decay),
            }),
            OptimConfig::Rprop(c) => OptimStep::Rprop(RpropParams {
                eta_minus: f(c.etas.0),
                eta_plus: f(c.etas.1),
                step_min: f(c.step_sizes.0),
                step_max: f(c.step_sizes.1),
            }),
            OptimConfig::Asgd(c) => {
                // PyTorch computes η and μ at the end of the previous step, from its rate.
                let done = (t - 1) as f64;
                let l = carried.eta_lr;
                let mu = 1.0 / (done - c.t0).max(1.0);
                OptimStep::Asgd(AsgdParams {
                    eta: f(l / (1.0 + c.lambd * l * done).powf(c.alpha)),
                    lambd: f(c.lambd),
                    mu: f(mu),
                    weight_decay: f(c.weight_decay),
                    copy: flag(mu == 1.0),
                })
            }
            OptimConfig::Ademamix(c) => {
                let (b1, b2, b3) = c.betas;
                let tf = t as f64;
                let alpha = c.t_alpha.map_or(c.alpha, |ta| (tf * c.alpha / ta as f64).min(c.alpha));
                let beta3 = c.t_beta3.map_or(b3, |tb| {
                    let (l1, l3) = (b1.ln(), b3.ln());
                    let s = tf / tb as f64;
                    ((l1 * l3) / ((1.0 - s) * l3 + s * l1)).exp().min(b3)
                });
                OptimStep::Ademamix(AdemamixParams {
                    lr: f(lr),
                    beta1: f(b1),
                    beta2: f(b2),
                    beta3: f(beta3),
                    one_minus_beta3: f(1.0 - beta3),
                    alpha: f(alpha),
                    eps: f(c.eps),
                    weight_decay: f(c.weight_decay),
                    bc1: f(1.0 - b1.powi(t as i32)),
                    bc2_sqrt: f((1.0 - b2.powi(t as i32)).sqrt()),
                })
            }
            OptimConfig::SchedulefreeAdamw(c) => {
                let (b1, b2) = c.betas;
                OptimStep::Schedulefree(SchedulefreeParams {
                    lr: f(schedulefree_lr(c, t - 1, lr)),
                    beta1: f(b1),
                    beta2: f(b2),
                    eps: f(c.eps),
                    weight_decay: f(c.weight_decay),
                    ckp1: f(if carried.weight_sum != 0.0 { carried.weight / carried.weight_sum } else { 0.0 }),
                    bc2_sqrt: f((1.0 - b2.powi(t as i32)).sqrt()),
                })
            }
            OptimConfig::Muon(c) => {
                // The auxiliary AdamW's rate follows the schedule as the matrices' does.
                let aux_lr = c.aux_lr * lr / c.lr;
                let (b1, b2) = c.aux_betas;
                let aux = OptimStep::Adam(AdamParams {
                    lr: f(aux_lr),
                    beta1: f(b1),
                    beta2: f(b2),
                    eps: f(c.aux_eps),
                    weight_decay: f(c.aux_weight_decay),
                    step_size: f(aux_lr / (1.0 - b1.powi(t as i32))),
                    bc2_sqrt: f((1.0 - b2.powi(t as i32)).sqrt()),
                    decoupled: 1,
                    amsgrad: 0,
                });
                let momentum =
                    OptimStep::MuonMomentum(MuonMomentumParams { momentum: f(c.momentum), nesterov: flag(c.nesterov) });
                let (a, b, cc) = c.ns_coefficients;
                return Step::Muon(MuonStep {
                    momentum,
                    aux,
                    lr,
                    decay: f(1.0 - lr * c.weight_decay),
                    ns_coefficients: (f(a), f(b), f(cc)),
                    ns_steps: c.ns_steps,
                    eps: f(c.eps),
                    adjust_lr_fn: c.adjust_lr_fn,
                    ns_dtype: c.ns_dtype,
                });
            }
            OptimConfig::Adafactor(c) => {
                let tf = t as f64;
                return Step::Factored(AdafactorParams {
                    beta2_t: f(tf.powf(c.beta2_decay)),
                    rho: f(lr.min(1.0 / tf.sqrt())),
                    // PyTorch's eps1 of None: the machine epsilon of the parameters' dtype.
                    eps1: f(c.eps.0.unwrap_or(f32::EPSILON as f64)),
                    eps2: f(c.eps.1),
                    d: f(c.d),
                    decay: f(1.0 - lr * c.weight_decay),
                    pad0: 0,
                    pad1: 0,
                });
            }
        };
        Step::Fused(fused)
    }
}

/// NAdam's momentum coefficient of step `t`: μ_t = β1·(1 − ½·0.96^(t·ψ)).
pub fn nadam_mu(beta1: f64, momentum_decay: f64, t: u64) -> f64 {
    beta1 * (1.0 - 0.5 * 0.96f64.powf(t as f64 * momentum_decay))
}

/// NAdam's `mu_product` after step `t`, Π_{s=1..t} μ_s, in closed form so that it is a pure
/// function of `t` (no host state, nothing more in a checkpoint, O(1) per step):
/// ln Π(1 − ½qˢ) = −Σ_k (½)ᵏ/k · qᵏ(1 − q^{kt})/(1 − qᵏ) with q = 0.96^ψ, a series whose terms
/// shrink by at least ½ each. PyTorch multiplies the factors one by one; the two agree to
/// about 1e-15 relative (tested against the product).
pub fn nadam_mu_product(beta1: f64, momentum_decay: f64, t: u64) -> f64 {
    if t == 0 {
        return 1.0;
    }
    let ln_q = momentum_decay * 0.96f64.ln();
    let tf = t as f64;
    let mut log_sum = 0.0;
    let mut half_k = 1.0;
    for k in 1..=60 {
        let kf = k as f64;
        half_k *= 0.5;
        // Σ_{s=1..t} q^{ks}: t when q = 1, else a geometric sum (expm1 keeps it exact near 1).
        let geometric =
            if ln_q == 0.0 { tf } else { (kf * ln_q).exp() * (kf * tf * ln_q).exp_m1() / (kf * ln_q).exp_m1() };
        let term = half_k / kf * geometric;
        log_sum -= term;
        if term < 1e-18 * log_sum.abs() {
            break;
        }
    }
    beta1.powf(tf) * log_sum.exp()
}

/// RAdam's rectification r_t at step `t`, or `None` while ρ_t ≤ 5 (PyTorch then takes the
/// unadapted step): ρ∞ = 2/(1 − β2) − 1, ρ_t = ρ∞ − 2tβ2ᵗ/(1 − β2ᵗ).
pub fn radam_rectification(beta2: f64, t: u64) -> Option<f64> {
    let rho_inf = 2.0 / (1.0 - beta2) - 1.0;
    let b2t = beta2.powi(t as i32);
    let rho_t = rho_inf - 2.0 * t as f64 * b2t / (1.0 - b2t);
    (rho_t > 5.0)
        .then(|| ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed form against PyTorch's running product, at the default ψ, a large one, ψ = 0
    /// and far into training.
    #[test]
    fn nadam_mu_product_is_the_running_product() {
        for (b1, psi) in [(0.9, 4e-3), (0.8, 0.5), (0.9, 0.0), (0.99, 4e-3)] {
            let mut product = 1.0f64;
            for t in 1..=200_000u64 {
                product *= nadam_mu(b1, psi, t);
                if t <= 50 || t % 9973 == 0 {
                    let closed = nadam_mu_product(b1, psi, t);
                    let rel = (closed - product).abs() / product.abs().max(f64::MIN_POSITIVE);
                    // Both underflow together far out; where they are normal they agree closely.
                    assert!(
                        rel < 1e-9 || (product < 1e-290 && closed < 1e-290),
                        "b1 {b1} psi {psi} t {t}: {closed} vs {product}"
                    );
                }
            }
        }
        assert_eq!(nadam_mu_product(0.9, 4e-3, 0), 1.0);
    }

    /// RAdam: steps 1 to 5 unrectified, step 6 the first rectified, for the β2 people use; a
    /// β2 of 0.6 (ρ∞ = 4) never rectifies.
    #[test]
    fn radam_rectifies_from_step_six() {
        for b2 in [0.9, 0.99, 0.999, 0.9999] {
            for t in 1..=5 {
                assert!(radam_rectification(b2, t).is_none(), "b2 {b2} t {t}");
            }
            let r = radam_rectification(b2, 6).expect("rectified at 6");
            assert!(r > 0.0 && r < 1.0, "{r}");
        }
        assert!((1..1000).all(|t| radam_rectification(0.6, t).is_none()));
    }
}
