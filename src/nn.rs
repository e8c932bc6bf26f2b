//! Layers. Every parameter of a model lives in ONE flat arena buffer (a named, shaped slice
//! each, at offsets padded to 64 elements) and every gradient in a parallel arena, so an
//! optimizer updates the whole model with one kernel launch.

use crate::autograd::{Tape, Var};
use crate::backend::{Act, Device};
use crate::tensor::{Tensor, View};
use crate::torch_rng::{linear_init_bounds, TorchGenerator};
use anyhow::{ensure, Result};

/// Arena offsets are multiples of this many elements (256 bytes: aligned for vector loads and
/// for binding sub-ranges on any GPU).
pub const ARENA_ALIGN: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    /// PyTorch's `state_dict()` name (`0.weight`, `0.bias`, … as `nn.Sequential` names them).
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
}

impl ParamInfo {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where this tensor lies in the arena's flat buffers.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// The flat parameter and gradient buffers and their layout.
pub struct ParamArena {
    pub params: View,
    pub grads: View,
    pub entries: Vec<ParamInfo>,
}

impl ParamArena {
    /// Lay out `shapes` and upload `init` (one Vec per entry).
    pub fn new(dev: &mut Device, shapes: Vec<(String, Vec<usize>)>, init: Vec<Vec<f32>>) -> Result<ParamArena> {
        let mut entries = Vec::new();
        let mut at = 0;
        for (name, shape) in shapes {
            let len: usize = shape.iter().product();
            entries.push(ParamInfo { name, shape, offset: at });
            at += len.div_ceil(ARENA_ALIGN) * ARENA_ALIGN;
        }
        let mut host = vec![0f32; at.max(1)];
        for (e, data) in entries.iter().zip(&init) {
            ensure!(
                data.len() == e.len(),
                "initial values for {} have {} elements, not {}",
                e.name,
                data.len(),
                e.len()
            );
            host[e.range()].copy_from_slice(data);
        }
        let params = dev.upload(&host)?;
        let grads = dev.alloc_zeroed(host.len())?;
        Ok(ParamArena { params, grads, entries })
    }

    /// Total elements, padding included (what an optimizer step covers).
    pub fn len(&self) -> usize {
        self.params.len
    }

    pub fn is_empty(&self) -> bool {
        self.params.len == 0
    }

    /// The tensor that arena element `i` belongs to (none for padding).
    pub fn entry_at(&self, i: usize) -> Option<&ParamInfo> {
        self.entries.iter().find(|e| e.range().contains(&i))
    }

    /// Trainable elements, padding excluded.
    pub fn count(&self) -> usize {
        self.entries.iter().map(|e| e.len()).sum()
    }

    pub fn param(&self, i: usize) -> Tensor {
        let e = &self.entries[i];
        Tensor::new(self.params.slice(e.offset, e.len()), &e.shape)
    }

    pub fn grad(&self, i: usize) -> View {
        let e = &self.entries[i];
        self.grads.slice(e.offset, e.len())
    }

    /// A table of the layout, for `--verbose` and docs.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for e in &self.entries {
            s +=
                &format!("{:<10} {:>12} offset {:>8} len {:>8}\n", e.name, format!("{:?}", e.shape), e.offset, e.len());
        }
        s
    }
}

/// A multilayer perceptron: Linear layers with an activation between them (none after the
/// last), PyTorch's default initialisation.
pub struct Mlp {
    pub sizes: Vec<usize>,
    pub act: Act,
    pub arena: ParamArena,
}

impl Mlp {
    /// `sizes` = [inputs, hidden…, outputs]. Weights and biases ~ U(±1/√fan_in), drawn layer by
    /// layer (weight, then bias) from `rng` exactly as `nn.Linear` draws them, so a generator
    /// seeded like `torch.manual_seed(s)` gives PyTorch's initial weights bit for bit.
    pub fn new(dev: &mut Device, sizes: &[usize], act: Act, rng: &mut TorchGenerator) -> Result<Mlp> {
        ensure!(sizes.len() >= 2, "an MLP needs at least an input and an output size");
        ensure!(sizes.iter().all(|&s| s > 0), "layer sizes must be positive, got {sizes:?}");
        let mut shapes = Vec::new();
        let mut init = Vec::new();
        for (i, w) in sizes.windows(2).enumerate() {
            let (fan_in, fan_out) = (w[0], w[1]);
            let (weight_bound, bias_bound) = linear_init_bounds(fan_in);
            shapes.push((format!("{}.weight", 2 * i), vec![fan_out, fan_in]));
            init.push(rng.uniform_vec(fan_out * fan_in, -weight_bound, weight_bound));
            shapes.push((format!("{}.bias", 2 * i), vec![fan_out]));
            init.push(rng.uniform_vec(fan_out, -bias_bound, bias_bound));
        }
        let arena = ParamArena::new(dev, shapes, init)?;
        Ok(Mlp { sizes: sizes.to_vec(), act, arena })
    }

    pub fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// Logits for a batch `x` of shape [rows, inputs].
    pub fn forward(&self, tape: &mut Tape, dev: &mut Device, x: Var) -> Result<Var> {
        let mut h = x;
        for l in 0..self.layers() {
            let w = tape.param(self.arena.param(2 * l), self.arena.grad(2 * l));
            let b = tape.param(self.arena.param(2 * l + 1), self.arena.grad(2 * l + 1));
            let act = if l + 1 < self.layers() { self.act } else { Act::Identity };
            h = tape.linear(dev, h, w, Some(b), act)?;
        }
        Ok(h)
    }
}

impl Mlp {
    /// Logits without recording gradients (evaluation): parameters enter as plain inputs.
    pub fn forward_no_grad(&self, tape: &mut Tape, dev: &mut Device, x: Var) -> Result<Var> {
        let mut h = x;
        for l in 0..self.layers() {
            let w = tape.input(self.arena.param(2 * l));
            let b = tape.input(self.arena.param(2 * l + 1));
            let act = if l + 1 < self.layers() { self.act } else { Act::Identity };
            h = tape.linear(dev, h, w, Some(b), act)?;
        }
        Ok(h)
    }
}
