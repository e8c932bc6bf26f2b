//! Building a model of your own: register its tensors, get typed handles back, then lay them
//! out in one arena (so one fused optimizer launch updates them all).

use super::{Init, Linear, ParamArena, ParamId};
use crate::backend::Device;
use crate::torch_rng::{linear_init_bounds, TorchGenerator};
use anyhow::{ensure, Result};

/// The tensors of a model being defined, in registration order, with their initial values.
/// Handles it returns are valid for the arena [`ArenaBuilder::build`] makes.
///
/// ```
/// use descent::backend::{Act, Device};
/// use descent::nn::ArenaBuilder;
/// use descent::torch_rng::TorchGenerator;
///
/// # fn main() -> anyhow::Result<()> {
/// let mut dev = Device::cpu();
/// let mut rng = TorchGenerator::new(0); // torch.manual_seed(0), then nn.Linear(4, 8), nn.Linear(8, 3)
/// let mut b = ArenaBuilder::new();
/// let first = b.linear("0", 4, 8, &mut rng)?;
/// let second = b.linear("2", 8, 3, &mut rng)?;
/// let arena = b.build(&mut dev)?;
/// assert_eq!(arena.info(first.weight).shape, vec![8, 4]);
/// assert_eq!(arena.info(second.bias).name, "2.bias");
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct ArenaBuilder {
    shapes: Vec<(String, Vec<usize>)>,
    init: Vec<Vec<f32>>,
}

impl ArenaBuilder {
    /// An empty model.
    pub fn new() -> ArenaBuilder {
        ArenaBuilder::default()
    }

    /// A tensor `name` of `shape`, its values drawn by `init` from `rng` now (so the order of
    /// calls is the order of draws, as in PyTorch's module constructors).
    pub fn tensor(&mut self, name: &str, shape: &[usize], init: &Init, rng: &mut TorchGenerator) -> Result<ParamId> {
        ensure!(!self.shapes.iter().any(|(n, _)| n == name), "the model already has a tensor {name}");
        let values = init.draw(shape, rng)?;
        self.shapes.push((name.to_string(), shape.to_vec()));
        self.init.push(values);
        Ok(ParamId(self.shapes.len() - 1))
    }

    /// `nn.Linear(fan_in, fan_out)` under `name.weight` ([fan_out, fan_in]) and `name.bias`,
    /// initialised as `nn.Linear` draws them: weight then bias, each U(±1/√fan_in) with
    /// PyTorch's own rounding of the bounds.
    pub fn linear(&mut self, name: &str, fan_in: usize, fan_out: usize, rng: &mut TorchGenerator) -> Result<Linear> {
        ensure!(fan_in > 0 && fan_out > 0, "{name}: a linear layer needs positive sizes, got {fan_in}→{fan_out}");
        let (w, b) = linear_init_bounds(fan_in);
        let weight = self.tensor(&format!("{name}.weight"), &[fan_out, fan_in], &Init::Uniform { a: -w, b: w }, rng)?;
        let bias = self.tensor(&format!("{name}.bias"), &[fan_out], &Init::Uniform { a: -b, b }, rng)?;
        Ok(Linear { weight, bias })
    }

    /// Lay the tensors out in one arena on `dev` and upload their values.
    pub fn build(self, dev: &mut Device) -> Result<ParamArena> {
        ParamArena::new(dev, self.shapes, self.init)
    }
}
