//! The lecture's demos: an optimizer walking down a function of one or two variables, and
//! exponentially weighted averages of a series.
//!
//! Each step records the function on a tape, takes the gradient from [`Tape::backward`] and
//! applies the same fused optimizer kernel that trains the MLPs.

use crate::app::functions::Function;
use crate::autograd::Tape;
use crate::backend::Device;
use crate::optim::{OptimConfig, Optimizer, Schedule};
use crate::tensor::Tensor;
use anyhow::{ensure, Result};

/// One row of the step table: the point after `t` steps, the function and its gradient there,
/// and the learning rate of the step that reached it (None for the start).
#[derive(Clone, Debug, PartialEq)]
pub struct Iterate {
    pub t: usize,
    pub x: Vec<f32>,
    pub f: f32,
    pub grad: Vec<f32>,
    pub lr: Option<f64>,
}

/// Run `steps` optimizer steps on `function` from `start` (one coordinate per variable).
/// Returns `steps + 1` iterates, the start first; stops early if the point is no longer finite.
pub fn descend(
    dev: &mut Device,
    function: &Function,
    start: &[f32],
    config: &OptimConfig,
    schedule: &Schedule,
    steps: usize,
) -> Result<Vec<Iterate>> {
    ensure!(start.len() == function.dims, "{} takes {} coordinates, got {}", function.name, function.dims, start.len());
    let n = function.dims;
    let params = dev.upload(start)?;
    let grads = dev.alloc_zeroed(n)?;
    let mut opt = Optimizer::for_len(dev, config.clone(), schedule.clone(), n)?;
    let mut out = Vec::with_capacity(steps + 1);
    let mut lr = None;
    for t in 0..=steps {
        let (value, x, grad) = {
            let mut tape = Tape::new(dev);
            let mut vars = Vec::with_capacity(n);
            for i in 0..n {
                vars.push(tape.param(Tensor::new(params.slice(i, 1), &[1])?, grads.slice(i, 1))?);
            }
            let f = function.build(&mut tape, &vars)?;
            tape.backward(f)?;
            (tape.read(f)?[0], tape.device().read(params)?, tape.device().read(grads)?)
        };
        let finite = x.iter().chain(&grad).all(|v| v.is_finite()) && value.is_finite();
        out.push(Iterate { t, x, f: value, grad, lr });
        if t == steps || !finite {
            break;
        }
        lr = Some(opt.lr_at(opt.step));
        opt.step_views(dev, params, grads)?;
    }
    opt.release(dev);
    dev.release(params);
    dev.release(grads);
    Ok(out)
}

/// The series the lecture averages (`descent ewa`'s default, the web page's too).
pub const LECTURE_SERIES: &str = "3,8,6,5,1,9,0,8,4";

/// Exponentially weighted averages `V_t = ρ V_{t-1} + (1 − ρ) s_t`, V_0 = 0, for t = 1..=len;
/// with `bias_correction` each is divided by `1 − ρ^t`.
pub fn ewa(series: &[f64], rho: f64, bias_correction: bool) -> Vec<f64> {
    let mut v = 0.0;
    let mut out = Vec::with_capacity(series.len());
    for (i, s) in series.iter().enumerate() {
        v = rho * v + (1.0 - rho) * s;
        let t = (i + 1) as i32;
        out.push(if bias_correction { v / (1.0 - rho.powi(t)) } else { v });
    }
    out
}

/// The weight of each of s_1..s_t in V_t: `ρ^(t−i) (1 − ρ)`.
pub fn ewa_weights(rho: f64, t: usize) -> Vec<f64> {
    (1..=t).map(|i| rho.powi((t - i) as i32) * (1.0 - rho)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ewa_is_the_weighted_sum_of_its_weights() {
        let s = [3.0, 8.0, 6.0, 5.0, 1.0];
        for rho in [0.5, 0.9, 0.98] {
            let v = ewa(&s, rho, false);
            let w = ewa_weights(rho, s.len());
            let direct: f64 = w.iter().zip(&s).map(|(w, s)| w * s).sum();
            assert!((v[4] - direct).abs() < 1e-12, "rho {rho}: {} vs {direct}", v[4]);
        }
    }

    #[test]
    fn bias_correction_makes_a_constant_series_exact() {
        for v in ewa(&[7.0; 20], 0.98, true) {
            assert!((v - 7.0).abs() < 1e-12);
        }
    }
}
