//! Gradient clipping as the trainer applies it, and how checkpoints record it.

use anyhow::{bail, Result};

/// Gradient clipping between the backward pass and the optimizer step, over the trainable
/// tensors, on the device: PyTorch's `clip_grad_norm_` or `clip_grad_value_` (the command
/// line's `--clip-grad-norm` and `--clip-grad-value`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GradClip {
    /// Scale every gradient by `min(1, max_norm / (total 2-norm + 1e-6))`.
    Norm(f32),
    /// Clamp every gradient to `[-clip_value, clip_value]`.
    Value(f32),
}

impl GradClip {
    /// How checkpoints record it: `norm:MAX` or `value:V` (the bound written so it parses back
    /// to the same f32).
    pub fn spec(self) -> String {
        match self {
            GradClip::Norm(m) => format!("norm:{m:?}"),
            GradClip::Value(v) => format!("value:{v:?}"),
        }
    }

    /// The inverse of [`GradClip::spec`].
    pub fn parse(s: &str) -> Result<GradClip> {
        let bound = |v: &str| -> Result<f32> {
            v.parse().map_err(|_| anyhow::anyhow!("gradient clip '{s}': '{v}' is not a number"))
        };
        match s.split_once(':') {
            Some(("norm", v)) => Ok(GradClip::Norm(bound(v)?)),
            Some(("value", v)) => Ok(GradClip::Value(bound(v)?)),
            _ => bail!("gradient clip '{s}': expected norm:MAX or value:V"),
        }
    }
}
