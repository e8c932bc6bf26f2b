//! Initialisation schemes as PyTorch's `torch.nn.init` defines them (Glorot & Bengio 2010,
//! He et al. 2015), drawn from a [`TorchGenerator`] as PyTorch draws them: a generator seeded
//! like `torch.manual_seed(s)` gives `xavier_uniform_`'s and `kaiming_uniform_`'s values bit for
//! bit, and the normal schemes' to within an ulp or two (see [`TorchGenerator::normal_vec`]).
//!
//! ```
//! use descent::backend::{Act, Device};
//! use descent::nn::{Init, Mlp, Nonlinearity};
//! use descent::torch_rng::TorchGenerator;
//!
//! # fn main() -> anyhow::Result<()> {
//! let mut dev = Device::cpu();
//! let mut rng = TorchGenerator::new(0);
//! let model = Mlp::new(&mut dev, &[4, 16, 3], Act::Relu, &mut rng)?;
//! // nn.init.kaiming_normal_(model[0].weight, nonlinearity="relu"); nn.init.zeros_(model[0].bias)
//! let layer = model.layers()[0];
//! model.arena.init(&mut dev, layer.weight, &Init::kaiming_normal(Nonlinearity::Relu), &mut rng)?;
//! model.arena.init(&mut dev, layer.bias, &Init::Constant(0.0), &mut rng)?;
//! # Ok(()) }
//! ```

use crate::torch_rng::TorchGenerator;
use anyhow::{ensure, Result};

/// Which fan a Kaiming scheme divides by (PyTorch's `mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FanMode {
    /// Preserves the variance of the forward pass (PyTorch's default).
    #[default]
    FanIn,
    /// Preserves the variance of the backward pass.
    FanOut,
}

/// The nonlinearity a gain is computed for (`torch.nn.init.calculate_gain`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    /// Linear, convolutions and sigmoid: gain 1.
    Linear,
    /// Sigmoid: gain 1.
    Sigmoid,
    /// tanh: gain 5/3.
    Tanh,
    /// ReLU: gain √2.
    Relu,
    /// Leaky ReLU with this negative slope: gain √(2 / (1 + slope²)).
    LeakyRelu(f64),
    /// SELU: gain 3/4.
    Selu,
}

impl Nonlinearity {
    /// `torch.nn.init.calculate_gain`.
    pub fn gain(self) -> f64 {
        match self {
            Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
            Nonlinearity::Tanh => 5.0 / 3.0,
            Nonlinearity::Relu => 2f64.sqrt(),
            Nonlinearity::LeakyRelu(slope) => (2.0 / (1.0 + slope * slope)).sqrt(),
            Nonlinearity::Selu => 3.0 / 4.0,
        }
    }
}

/// A scheme for a tensor's initial values, under `torch.nn.init`'s names and defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// `uniform_(a, b)`.
    Uniform {
        /// Lower bound.
        a: f64,
        /// Upper bound.
        b: f64,
    },
    /// `normal_(mean, std)`.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
    /// `constant_(val)` (`zeros_` and `ones_` with 0 and 1); draws nothing.
    Constant(f32),
    /// `xavier_uniform_(gain)`: U(±a), a = gain·√(6 / (fan_in + fan_out)).
    XavierUniform {
        /// The gain (1 by default; [`Nonlinearity::gain`] gives PyTorch's per activation).
        gain: f64,
    },
    /// `xavier_normal_(gain)`: N(0, std²), std = gain·√(2 / (fan_in + fan_out)).
    XavierNormal {
        /// The gain.
        gain: f64,
    },
    /// `kaiming_uniform_(a, mode, nonlinearity)`: U(±bound), bound = gain·√(3 / fan).
    KaimingUniform {
        /// The fan divided by.
        mode: FanMode,
        /// The nonlinearity whose gain scales it (its slope is PyTorch's `a`).
        nonlinearity: Nonlinearity,
    },
    /// `kaiming_normal_(a, mode, nonlinearity)`: N(0, std²), std = gain / √fan.
    KaimingNormal {
        /// The fan divided by.
        mode: FanMode,
        /// The nonlinearity whose gain scales it.
        nonlinearity: Nonlinearity,
    },
}

impl Init {
    /// `kaiming_uniform_(mode="fan_in", nonlinearity=…)`.
    pub fn kaiming_uniform(nonlinearity: Nonlinearity) -> Init {
        Init::KaimingUniform { mode: FanMode::FanIn, nonlinearity }
    }

    /// `kaiming_normal_(mode="fan_in", nonlinearity=…)`.
    pub fn kaiming_normal(nonlinearity: Nonlinearity) -> Init {
        Init::KaimingNormal { mode: FanMode::FanIn, nonlinearity }
    }

    /// Values for a tensor of `shape`, drawn from `rng` as PyTorch draws them. The Xavier and
    /// Kaiming schemes need two or more dimensions (PyTorch's rule: `fan_in = shape[1]·receptive field`,
    /// `fan_out = shape[0]·receptive field`), and no scale may be negative or non-finite.
    pub fn draw(&self, shape: &[usize], rng: &mut TorchGenerator) -> Result<Vec<f32>> {
        let n: usize = shape.iter().product();
        // Scales computed in f64, as PyTorch computes them in Python floats.
        Ok(match *self {
            Init::Uniform { a, b } => {
                ensure!(a.is_finite() && b.is_finite() && a <= b, "uniform init needs finite a <= b, got {a} and {b}");
                rng.uniform_vec(n, a, b)
            }
            Init::Normal { mean, std } => {
                ensure!(
                    mean.is_finite() && std.is_finite() && std >= 0.0,
                    "normal init needs a finite mean and std >= 0"
                );
                rng.normal_vec(n, mean, std)
            }
            Init::Constant(v) => vec![v; n],
            Init::XavierUniform { gain } => {
                let (fan_in, fan_out) = fans(shape, "xavier_uniform")?;
                let std = checked_gain(gain)? * (2.0 / (fan_in + fan_out) as f64).sqrt();
                let a = 3f64.sqrt() * std;
                rng.uniform_vec(n, -a, a)
            }
            Init::XavierNormal { gain } => {
                let (fan_in, fan_out) = fans(shape, "xavier_normal")?;
                let std = checked_gain(gain)? * (2.0 / (fan_in + fan_out) as f64).sqrt();
                rng.normal_vec(n, 0.0, std)
            }
            Init::KaimingUniform { mode, nonlinearity } => {
                let std = kaiming_std(shape, mode, nonlinearity, "kaiming_uniform")?;
                let bound = 3f64.sqrt() * std;
                rng.uniform_vec(n, -bound, bound)
            }
            Init::KaimingNormal { mode, nonlinearity } => {
                let std = kaiming_std(shape, mode, nonlinearity, "kaiming_normal")?;
                rng.normal_vec(n, 0.0, std)
            }
        })
    }
}

fn checked_gain(gain: f64) -> Result<f64> {
    ensure!(gain.is_finite() && gain >= 0.0, "an init gain must be finite and >= 0, got {gain}");
    Ok(gain)
}

/// gain / √fan.
fn kaiming_std(shape: &[usize], mode: FanMode, nl: Nonlinearity, what: &str) -> Result<f64> {
    let (fan_in, fan_out) = fans(shape, what)?;
    let fan = match mode {
        FanMode::FanIn => fan_in,
        FanMode::FanOut => fan_out,
    };
    ensure!(fan > 0, "{what}: a tensor of shape {shape:?} has no elements to take a fan of");
    Ok(checked_gain(nl.gain())? / (fan as f64).sqrt())
}

/// PyTorch's `_calculate_fan_in_and_fan_out`.
fn fans(shape: &[usize], what: &str) -> Result<(usize, usize)> {
    ensure!(
        shape.len() >= 2,
        "{what}: fan in and fan out can not be computed for a tensor with fewer than 2 dimensions (shape {shape:?})"
    );
    let receptive: usize = shape[2..].iter().product();
    Ok((shape[1] * receptive, shape[0] * receptive))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gains_and_fans_are_pytorchs() {
        assert_eq!(Nonlinearity::Relu.gain(), 2f64.sqrt());
        assert_eq!(Nonlinearity::LeakyRelu(0.0).gain(), 2f64.sqrt());
        assert!((Nonlinearity::LeakyRelu(0.01).gain() - 1.4141428569978354).abs() < 1e-15);
        assert_eq!(fans(&[8, 3, 5, 5], "t").unwrap(), (75, 200));
        let e = Init::XavierUniform { gain: 1.0 }.draw(&[5], &mut TorchGenerator::new(0)).unwrap_err();
        assert!(e.to_string().contains("fewer than 2 dimensions"), "{e}");
        assert!(Init::Uniform { a: 1.0, b: 0.0 }.draw(&[2, 2], &mut TorchGenerator::new(0)).is_err());
    }
}
