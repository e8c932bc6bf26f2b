//! Each optimizer's hyperparameters: one struct per optimizer with PyTorch's names and
//! defaults (the reference library's, for optimizers PyTorch lacks). [`super::OptimConfig`]
//! holds one of them and checks it.

use super::OptimBits;
use serde::{Deserialize, Serialize};

/// SGD's hyperparameters (PyTorch's defaults: lr 1e-3, the rest 0 or false).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor; 0 keeps no state.
    pub momentum: f64,
    /// Dampening of the gradient's share of the momentum.
    pub dampening: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Ascend instead: the gradient is read negated (PyTorch's `maximize`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maximize: bool,
    /// Width of the state: 32 (f32), 16 (bfloat16) or 8 (blockwise 8-bit, Adam and AdamW only).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

/// Adagrad's hyperparameters (PyTorch's defaults: lr 1e-2, eps 1e-10).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adagrad {
    /// Learning rate.
    pub lr: f64,
    /// The learning rate's decay per step.
    pub lr_decay: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// The sum of squares' starting value.
    pub initial_accumulator_value: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Ascend instead: the gradient is read negated (PyTorch's `maximize`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maximize: bool,
    /// Width of the state: 32 (f32), 16 (bfloat16) or 8 (blockwise 8-bit, Adam and AdamW only).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

/// RMSProp's hyperparameters (PyTorch's defaults: lr 1e-2, alpha 0.99, eps 1e-8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rmsprop {
    /// Learning rate.
    pub lr: f64,
    /// Smoothing constant.
    pub alpha: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Momentum factor; 0 keeps no momentum buffer.
    pub momentum: f64,
    /// Normalise by the centered second moment.
    pub centered: bool,
    /// Ascend instead: the gradient is read negated (PyTorch's `maximize`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maximize: bool,
    /// Width of the state: 32 (f32), 16 (bfloat16) or 8 (blockwise 8-bit, Adam and AdamW only).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

/// Adam's and AdamW's hyperparameters (PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps
/// 1e-8, weight_decay 0 for Adam and 0.01 for AdamW).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adam {
    /// Learning rate.
    pub lr: f64,
    /// Decay rates of the running averages of the gradient and its square.
    pub betas: (f64, f64),
    /// Added to the denominator.
    pub eps: f64,
    /// L2 penalty (Adam) or decoupled decay (AdamW).
    pub weight_decay: f64,
    /// Keep the maximum of past second moments (AMSGrad).
    pub amsgrad: bool,
    /// Ascend instead: the gradient is read negated (PyTorch's `maximize`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maximize: bool,
    /// Width of the state: 32 (f32), 16 (bfloat16) or 8 (blockwise 8-bit, Adam and AdamW only).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

/// The lecture's momentum (defaults: lr 1e-2, momentum 0.9).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LectureMomentum {
    /// Learning rate.
    pub lr: f64,
    /// Momentum factor.
    pub momentum: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Ascend instead: the gradient is read negated (PyTorch's `maximize`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maximize: bool,
    /// Width of the state: 32 (f32), 16 (bfloat16) or 8 (blockwise 8-bit, Adam and AdamW only).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

impl Default for Sgd {
    fn default() -> Sgd {
        Sgd {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            maximize: false,
            optim_bits: OptimBits::B32,
        }
    }
}

impl Default for Adagrad {
    fn default() -> Adagrad {
        Adagrad {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
            optim_bits: OptimBits::B32,
        }
    }
}

impl Default for Rmsprop {
    fn default() -> Rmsprop {
        Rmsprop {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
            optim_bits: OptimBits::B32,
        }
    }
}

impl Default for Adam {
    /// Adam's defaults; AdamW's differ in `weight_decay` (see [`Adam::adamw`]).
    fn default() -> Adam {
        Adam {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: false,
            optim_bits: OptimBits::B32,
        }
    }
}

impl Adam {
    /// PyTorch's defaults for `torch.optim.AdamW`.
    pub fn adamw() -> Adam {
        Adam { weight_decay: 1e-2, ..Adam::default() }
    }
}

impl Default for LectureMomentum {
    fn default() -> LectureMomentum {
        LectureMomentum { lr: 1e-2, momentum: 0.9, weight_decay: 0.0, maximize: false, optim_bits: OptimBits::B32 }
    }
}

/// NAdam's hyperparameters (PyTorch's defaults: lr 2e-3, betas (0.9, 0.999), eps 1e-8,
/// momentum_decay 4e-3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nadam {
    /// Learning rate.
    pub lr: f64,
    /// Decay rates of the running averages of the gradient and its square.
    pub betas: (f64, f64),
    /// Added to the denominator.
    pub eps: f64,
    /// L2 penalty, or decoupled decay with `decoupled_weight_decay` (NAdamW).
    pub weight_decay: f64,
    /// ψ of the momentum schedule μ_t = β1·(1 − ½·0.96^(t·ψ)).
    pub momentum_decay: f64,
    /// Decay the parameters by lr·weight_decay instead of adding an L2 term to the gradient.
    pub decoupled_weight_decay: bool,
    /// Ascend instead: the gradient is read negated (PyTorch's `maximize`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maximize: bool,
    /// Width of the state: 32 (f32) or 16 (bfloat16).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

/// RAdam's hyperparameters (PyTorch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Radam {
    /// Learning rate.
    pub lr: f64,
    /// Decay rates of the running averages of the gradient and its square.
    pub betas: (f64, f64),
    /// Added to the square root of the second moment.
    pub eps: f64,
    /// L2 penalty, or decoupled decay with `decoupled_weight_decay` (RAdamW).
    pub weight_decay: f64,
    /// Decay the parameters by lr·weight_decay instead of adding an L2 term to the gradient.
    pub decoupled_weight_decay: bool,
    /// Ascend instead: the gradient is read negated (PyTorch's `maximize`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maximize: bool,
    /// Width of the state: 32 (f32) or 16 (bfloat16).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

/// Adamax's hyperparameters (PyTorch's defaults: lr 2e-3, betas (0.9, 0.999), eps 1e-8).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adamax {
    /// Learning rate.
    pub lr: f64,
    /// Decay rates of the first moment and of the infinity norm.
    pub betas: (f64, f64),
    /// Added to |g| inside the infinity norm's max.
    pub eps: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Ascend instead: the gradient is read negated (PyTorch's `maximize`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maximize: bool,
    /// Width of the state: 32 (f32) or 16 (bfloat16).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

/// Adadelta's hyperparameters (PyTorch's defaults: lr 1.0, rho 0.9, eps 1e-6).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adadelta {
    /// Scale of each update (Zeiler's method has none: PyTorch's default is 1).
    pub lr: f64,
    /// Decay of the running averages of squared gradients and squared updates.
    pub rho: f64,
    /// Added inside both square roots.
    pub eps: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Ascend instead: the gradient is read negated (PyTorch's `maximize`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maximize: bool,
    /// Width of the state: 32 (f32) or 16 (bfloat16).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

/// Lion's hyperparameters (Chen et al. 2023, as lion-pytorch: lr 1e-4, betas (0.9, 0.99),
/// decoupled weight decay 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lion {
    /// Learning rate (Lion's steps are ±lr per element: use 3–10× less than AdamW's).
    pub lr: f64,
    /// β1 interpolates the update's sign, β2 the kept momentum.
    pub betas: (f64, f64),
    /// Decoupled decay: p ← p·(1 − lr·weight_decay) before the update.
    pub weight_decay: f64,
    /// Ascend instead: the gradient is read negated (PyTorch's `maximize`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maximize: bool,
    /// Width of the state: 32 (f32) or 16 (bfloat16).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

impl Default for Nadam {
    fn default() -> Nadam {
        Nadam {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            momentum_decay: 4e-3,
            decoupled_weight_decay: false,
            maximize: false,
            optim_bits: OptimBits::B32,
        }
    }
}

impl Default for Radam {
    fn default() -> Radam {
        Radam {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
            maximize: false,
            optim_bits: OptimBits::B32,
        }
    }
}

impl Default for Adamax {
    fn default() -> Adamax {
        Adamax {
            lr: 2e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            maximize: false,
            optim_bits: OptimBits::B32,
        }
    }
}

impl Default for Adadelta {
    fn default() -> Adadelta {
        Adadelta { lr: 1.0, rho: 0.9, eps: 1e-6, weight_decay: 0.0, maximize: false, optim_bits: OptimBits::B32 }
    }
}

impl Default for Lion {
    fn default() -> Lion {
        Lion { lr: 1e-4, betas: (0.9, 0.99), weight_decay: 0.0, maximize: false, optim_bits: OptimBits::B32 }
    }
}

/// Rprop's hyperparameters (PyTorch's defaults: lr 1e-2, etas (0.5, 1.2), step_sizes (1e-6,
/// 50)). No weight decay, as in PyTorch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rprop {
    /// Every element's first step size. Read once, when the state is made, as PyTorch does: a
    /// schedule does not change Rprop's steps.
    pub lr: f64,
    /// (η−, η+): the step size's factor when the gradient's sign flips, and when it holds.
    pub etas: (f64, f64),
    /// (minimum, maximum) step size.
    pub step_sizes: (f64, f64),
    /// Ascend instead: the gradient is read negated (PyTorch's `maximize`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maximize: bool,
    /// Width of the state: 32 (f32) or 16 (bfloat16).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

/// ASGD's hyperparameters (PyTorch's defaults: lr 1e-2, lambd 1e-4, alpha 0.75, t0 1e6).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Asgd {
    /// Learning rate (η follows it one step late, as in PyTorch).
    pub lr: f64,
    /// Decay term λ.
    pub lambd: f64,
    /// Power of η's decay.
    pub alpha: f64,
    /// The step from which `ax` averages (before it, `ax` copies the parameters).
    pub t0: f64,
    /// L2 penalty added to the gradient.
    pub weight_decay: f64,
    /// Ascend instead: the gradient is read negated (PyTorch's `maximize`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maximize: bool,
    /// Width of the state: 32 (f32) or 16 (bfloat16).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

/// AdEMAMix's hyperparameters (Pagliardini et al. 2024, bitsandbytes' defaults: lr 1e-3, betas
/// (0.9, 0.999, 0.9999), alpha 5, eps 1e-8, weight_decay 1e-2, no warm-ups).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ademamix {
    /// Learning rate.
    pub lr: f64,
    /// (β1, β2, β3): the fast average, the second moment, the slow average.
    pub betas: (f64, f64, f64),
    /// Weight of the slow average.
    pub alpha: f64,
    /// Steps over which alpha warms up linearly (none: alpha from the start).
    pub t_alpha: Option<u64>,
    /// Steps over which β3 warms up from β1 (none: β3 from the start).
    pub t_beta3: Option<u64>,
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled decay, applied with the update.
    pub weight_decay: f64,
    /// Ascend instead: the gradient is read negated (PyTorch's `maximize`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maximize: bool,
    /// Width of the state: 32 (f32) or 16 (bfloat16).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

/// Schedule-Free AdamW's hyperparameters (schedulefree 1.4.1's `AdamWScheduleFree`: lr 0.0025,
/// betas (0.9, 0.999), eps 1e-8, weight_decay 0, warmup_steps 0, r 0, weight_lr_power 2).
///
/// The parameters it steps are y; evaluation and export want x. [`crate::optim::Optimizer::eval`]
/// and [`crate::optim::Optimizer::train`] switch between them, as the reference's `eval()` and
/// `train()` do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulefreeAdamw {
    /// Learning rate (times its own linear warm-up).
    pub lr: f64,
    /// β1 interpolates y between x and z; β2 decays the second moment.
    pub betas: (f64, f64),
    /// Added to the denominator.
    pub eps: f64,
    /// Decay, evaluated at y.
    pub weight_decay: f64,
    /// Steps of its own linear learning-rate warm-up.
    pub warmup_steps: u64,
    /// Power of the step in the averaging weight.
    pub r: f64,
    /// Power of the largest learning rate so far in the averaging weight.
    pub weight_lr_power: f64,
    /// Ascend instead: the gradient is read negated (PyTorch's `maximize`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maximize: bool,
    /// Width of the state: 32 (f32) or 16 (bfloat16).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

impl Default for Rprop {
    fn default() -> Rprop {
        Rprop { lr: 1e-2, etas: (0.5, 1.2), step_sizes: (1e-6, 50.0), maximize: false, optim_bits: OptimBits::B32 }
    }
}

impl Default for Asgd {
    fn default() -> Asgd {
        Asgd {
            lr: 1e-2,
            lambd: 1e-4,
            alpha: 0.75,
            t0: 1e6,
            weight_decay: 0.0,
            maximize: false,
            optim_bits: OptimBits::B32,
        }
    }
}

impl Default for Ademamix {
    fn default() -> Ademamix {
        Ademamix {
            lr: 1e-3,
            betas: (0.9, 0.999, 0.9999),
            alpha: 5.0,
            t_alpha: None,
            t_beta3: None,
            eps: 1e-8,
            weight_decay: 1e-2,
            maximize: false,
            optim_bits: OptimBits::B32,
        }
    }
}

impl Default for SchedulefreeAdamw {
    fn default() -> SchedulefreeAdamw {
        SchedulefreeAdamw {
            lr: 0.0025,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            warmup_steps: 0,
            r: 0.0,
            weight_lr_power: 2.0,
            maximize: false,
            optim_bits: OptimBits::B32,
        }
    }
}
