//! The hyperparameters of the optimizers that step matrices as matrices: Adafactor (factored
//! second moments) and Muon (Newton–Schulz), with PyTorch's names and defaults.

use super::OptimBits;
use serde::{Deserialize, Serialize};

/// Adafactor's hyperparameters (PyTorch's defaults: lr 1e-2, beta2_decay −0.8, eps (None,
/// 1e-3), d 1, weight_decay 0).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adafactor {
    /// Learning rate: the relative step is min(lr, 1/√t); the decay is lr·weight_decay.
    pub lr: f64,
    /// 1 − β2 of step t is t^beta2_decay.
    pub beta2_decay: f64,
    /// (eps1, eps2): the floor of the second-moment estimate (None: the machine epsilon of
    /// f32, what PyTorch uses for f32 parameters) and of the parameters' RMS.
    pub eps: (Option<f64>, f64),
    /// The update's RMS is clipped to d.
    pub d: f64,
    /// Decoupled decay: p ← p·(1 − lr·weight_decay).
    pub weight_decay: f64,
    /// Ascend instead: the gradient is read negated (PyTorch's `maximize`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maximize: bool,
    /// Width of the state: 32 (f32; its factored state is rows + columns per matrix).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

impl Default for Adafactor {
    fn default() -> Adafactor {
        Adafactor {
            lr: 1e-2,
            beta2_decay: -0.8,
            eps: (None, 1e-3),
            d: 1.0,
            weight_decay: 0.0,
            maximize: false,
            optim_bits: OptimBits::B32,
        }
    }
}

/// How Muon scales its rate by the matrix's shape A×B (PyTorch's `adjust_lr_fn`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustLr {
    /// √max(1, A/B) (PyTorch's default, `None`).
    #[default]
    Original,
    /// 0.2·√max(A, B): the update's RMS of AdamW's, so AdamW's rate carries over.
    MatchRmsAdamw,
    /// √(A/B).
    SpectralUnclamped,
}

impl NsDtype {
    /// Whether the iteration rounds to bfloat16.
    pub fn is_bfloat16(self) -> bool {
        self == NsDtype::Bfloat16
    }
}

impl AdjustLr {
    /// The factor for a matrix of `rows` × `cols`.
    pub fn ratio(self, rows: usize, cols: usize) -> f64 {
        let (a, b) = (rows as f64, cols as f64);
        match self {
            AdjustLr::Original => (a / b).max(1.0).sqrt(),
            AdjustLr::MatchRmsAdamw => 0.2 * a.max(b).sqrt(),
            AdjustLr::SpectralUnclamped => (a / b).sqrt(),
        }
    }
}

/// The precision Muon's Newton–Schulz iteration runs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NsDtype {
    /// f32 throughout: the mode checked against the f64 reference at descent's tolerance.
    #[default]
    Float32,
    /// PyTorch's: bfloat16 operands, f32 sums, each op's result rounded to bfloat16 (the CPU
    /// backend only; `vdpbf16ps` where the CPU has AVX-512 BF16).
    Bfloat16,
}

/// Muon's hyperparameters (PyTorch's defaults: lr 1e-3, weight_decay 0.1, momentum 0.95,
/// nesterov, ns_coefficients (3.4445, −4.775, 2.0315), eps 1e-7, ns_steps 5), and those of the
/// AdamW it steps every other tensor with (Keller Jordan's `MuonWithAuxAdam`: lr 3e-4, betas
/// (0.9, 0.95), eps 1e-10, weight_decay 0).
///
/// Muon steps matrices: each 2-D tensor of the arena, except, where the arena has three or
/// more, the first and the last (an MLP's input and output layers), which Muon's authors leave
/// to AdamW (`aux_first_last`). Everything else (biases) goes to the auxiliary AdamW. The
/// Newton–Schulz iteration runs in f32 by default; `ns_dtype` bfloat16 runs it as PyTorch does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Muon {
    /// Learning rate of the matrices (scaled by `adjust_lr_fn`; the decay uses it unscaled).
    pub lr: f64,
    /// Decoupled decay of the matrices: p ← p·(1 − lr·weight_decay).
    pub weight_decay: f64,
    /// The momentum buffer's decay: buf ← lerp(buf, g, 1 − momentum).
    pub momentum: f64,
    /// Orthogonalize lerp(g, buf, momentum) instead of buf.
    pub nesterov: bool,
    /// (a, b, c) of the quintic Newton–Schulz step X ← aX + (bS + cS²)X, S = XXᵀ.
    pub ns_coefficients: (f64, f64, f64),
    /// Floor of the Frobenius norm the iteration starts by dividing by.
    pub eps: f64,
    /// Newton–Schulz steps (under 100, as PyTorch requires).
    pub ns_steps: u64,
    /// How the rate scales with the matrix's shape.
    pub adjust_lr_fn: AdjustLr,
    /// Newton–Schulz's precision: float32 (the default), or bfloat16 as PyTorch computes it.
    #[serde(default)]
    pub ns_dtype: NsDtype,
    /// With three or more matrices, the first and the last go to the auxiliary AdamW.
    pub aux_first_last: bool,
    /// The auxiliary AdamW's learning rate (a schedule scales it as it scales `lr`).
    pub aux_lr: f64,
    /// The auxiliary AdamW's betas.
    pub aux_betas: (f64, f64),
    /// The auxiliary AdamW's eps.
    pub aux_eps: f64,
    /// The auxiliary AdamW's decoupled weight decay.
    pub aux_weight_decay: f64,
    /// Ascend instead: the gradient is read negated (PyTorch's `maximize`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maximize: bool,
    /// Width of the state (momentum buffer and AdamW's moments): 32 (f32) or 16 (bfloat16).
    #[serde(default, skip_serializing_if = "OptimBits::is_b32")]
    pub optim_bits: OptimBits,
}

impl Default for Muon {
    fn default() -> Muon {
        Muon {
            lr: 1e-3,
            weight_decay: 0.1,
            momentum: 0.95,
            nesterov: true,
            ns_coefficients: (3.4445, -4.775, 2.0315),
            eps: 1e-7,
            ns_steps: 5,
            adjust_lr_fn: AdjustLr::Original,
            ns_dtype: NsDtype::Float32,
            aux_first_last: true,
            aux_lr: 3e-4,
            aux_betas: (0.9, 0.95),
            aux_eps: 1e-10,
            aux_weight_decay: 0.0,
            maximize: false,
            optim_bits: OptimBits::B32,
        }
    }
}
