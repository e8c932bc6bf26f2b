//! Layers. Every parameter of a model lives in ONE flat arena buffer (a named, shaped slice
//! each, at offsets padded to 64 elements) and every gradient in a parallel arena, so an
//! optimizer updates the whole model with one kernel launch.
//!
//! Layers hand out typed handles ([`ParamId`]) to their tensors: register one on a tape for a
//! penalty ([`ParamArena::var`]), read or write it ([`ParamArena::read`]), or freeze it
//! ([`ParamArena::set_frozen`]), with no arithmetic on arena indices.

use crate::autograd::{Tape, Var};
use crate::backend::{Act, Device};
use crate::state_dict::{NamedTensor, StateDict, Stored, OPTIMIZER_PREFIX};
use crate::tensor::{Tensor, View};
use crate::torch_rng::TorchGenerator;
use anyhow::{bail, ensure, Context, Result};

mod builder;
mod dropout;
pub mod init;

pub use builder::ArenaBuilder;
pub use dropout::Dropout;
pub use init::{FanMode, Init, Nonlinearity};

/// Arena offsets are multiples of this many elements (256 bytes: aligned for vector loads and
/// for binding sub-ranges on any GPU).
pub const ARENA_ALIGN: usize = 64;

/// Tensors of `shapes` laid out as an arena lays them: each from a multiple of
/// [`ARENA_ALIGN`]. Returns each one's (first element, shape) and the arena's length: what
/// `Optimizer::for_shapes` takes.
pub fn arena_layout(shapes: &[Vec<usize>]) -> (Vec<(usize, Vec<usize>)>, usize) {
    let mut end = 0usize;
    let mut layout = Vec::with_capacity(shapes.len());
    for shape in shapes {
        let at = end.next_multiple_of(ARENA_ALIGN);
        end = at + shape.iter().product::<usize>();
        layout.push((at, shape.clone()));
    }
    (layout, end)
}

/// A handle to one tensor of a [`ParamArena`] (valid for the arena that made it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ParamId(usize);

impl ParamId {
    /// The tensor's position in [`ParamArena::entries`] (registration order).
    pub fn index(self) -> usize {
        self.0
    }
}

/// Where one tensor lies in the arena, and what it is called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    /// PyTorch's `state_dict()` name (`0.weight`, `0.bias`, … as `nn.Sequential` names them).
    pub name: String,
    /// Row-major shape (`[out, in]` for a linear layer's weight).
    pub shape: Vec<usize>,
    /// Where the tensor starts in the arena, in elements (a multiple of [`ARENA_ALIGN`]).
    pub offset: usize,
}

impl ParamInfo {
    /// Elements in the tensor.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
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
    /// Every parameter, padded between tensors (padding stays 0).
    pub params: View,
    /// Every gradient, laid out like `params`.
    pub grads: View,
    /// The tensors, in registration order.
    pub entries: Vec<ParamInfo>,
    /// Tensors that layers register as plain inputs and optimizers skip.
    frozen: Vec<bool>,
}

/// The total gradient norm [`ParamArena::clip_grad_norm`] measured, kept on the device: reading
/// it is a readback, so a training step that does not need it never waits.
#[derive(Debug)]
pub struct GradNorm(View);

impl GradNorm {
    /// The norm, read back (waits for the device).
    pub fn read(&self, dev: &mut Device) -> Result<f32> {
        Ok(dev.read(self.0.slice(0, 1))?[0])
    }

    /// Where the norm is (element 0; element 1 holds the clip coefficient).
    pub fn view(&self) -> View {
        self.0
    }

    /// Give its buffer back to the device's pool.
    pub fn release(self, dev: &mut Device) {
        dev.release(self.0);
    }
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
        let frozen = vec![false; entries.len()];
        Ok(ParamArena { params, grads, entries, frozen })
    }

    /// Handles to every tensor, in registration order.
    pub fn ids(&self) -> impl Iterator<Item = ParamId> {
        (0..self.entries.len()).map(ParamId)
    }

    /// The handle of the tensor called `name` (PyTorch's `state_dict()` name).
    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.entries.iter().position(|e| e.name == name).map(ParamId)
    }

    /// Name, shape and place of a tensor.
    pub fn info(&self, id: ParamId) -> &ParamInfo {
        &self.entries[id.0]
    }

    /// The tensor's values, as a tensor over the arena.
    pub fn tensor(&self, id: ParamId) -> Tensor {
        let e = &self.entries[id.0];
        // The arena's entries hold their shapes' lengths by construction.
        Tensor { view: self.params.slice(e.offset, e.len()), shape: e.shape.clone() }
    }

    /// The tensor's gradient, as a view of the gradient arena.
    pub fn grad_view(&self, id: ParamId) -> View {
        let e = &self.entries[id.0];
        self.grads.slice(e.offset, e.len())
    }

    /// The tensor on `tape`: a parameter (the same `Var` however often it is registered, so
    /// a penalty on a weight the model also uses adds to its gradient), or a plain input when
    /// it is frozen. A frozen tensor has no gradient: its part of the gradient arena is zeroed
    /// here, so reads and norms over the arena see 0, never the last values from before it
    /// was frozen.
    pub fn var(&self, tape: &mut Tape, id: ParamId) -> Result<Var> {
        if self.frozen[id.0] {
            tape.device().fill(self.grad_view(id), 0.0);
            Ok(tape.input(self.tensor(id)))
        } else {
            tape.param(self.tensor(id), self.grad_view(id))
        }
    }

    /// The tensor's values, copied to the host.
    pub fn read(&self, dev: &mut Device, id: ParamId) -> Result<Vec<f32>> {
        dev.read(self.tensor(id).view)
    }

    /// The tensor's gradient from the last backward pass, copied to the host.
    pub fn read_grad(&self, dev: &mut Device, id: ParamId) -> Result<Vec<f32>> {
        dev.read(self.grad_view(id))
    }

    /// Overwrite the tensor's values (`data` as long as the tensor).
    pub fn write(&self, dev: &mut Device, id: ParamId, data: &[f32]) -> Result<()> {
        let e = &self.entries[id.0];
        ensure!(data.len() == e.len(), "{} values for {} of shape {:?}", data.len(), e.name, e.shape);
        dev.write(self.tensor(id).view, data)
    }

    /// Set every gradient to zero (PyTorch's `zero_grad(set_to_none=False)`): one fill over
    /// the gradient arena, before micro-batches accumulate into it with
    /// [`Tape::backward_accumulate`].
    pub fn zero_grad(&self, dev: &mut Device) {
        dev.fill(self.grads, 0.0);
    }

    /// Overwrite tensor `id` with values drawn by `init` from `rng` (as `torch.nn.init`'s
    /// function of that name fills a parameter).
    pub fn init(&self, dev: &mut Device, id: ParamId, init: &Init, rng: &mut TorchGenerator) -> Result<()> {
        let e = self.info(id);
        let values = init.draw(&e.shape, rng).with_context(|| format!("initialising {}", e.name))?;
        self.write(dev, id, &values)
    }

    /// Freeze (or unfreeze) a tensor: layers then register it as an input, so it gets no
    /// gradient (its gradient reads as zeros from the next forward pass, see
    /// [`ParamArena::var`]), and [`crate::optim::Optimizer::step`] leaves it and its state
    /// untouched.
    pub fn set_frozen(&mut self, id: ParamId, frozen: bool) {
        self.frozen[id.0] = frozen;
    }

    /// Whether [`ParamArena::set_frozen`] froze this tensor.
    pub fn is_frozen(&self, id: ParamId) -> bool {
        self.frozen[id.0]
    }

    /// The arena ranges an optimizer updates: the whole arena when nothing is frozen (one
    /// fused launch), else one range per run of consecutive trainable tensors.
    pub fn trainable_ranges(&self) -> Vec<std::ops::Range<usize>> {
        if !self.frozen.contains(&true) {
            return std::iter::once(0..self.len()).collect();
        }
        self.trainable_runs(&self.ids().collect::<Vec<_>>())
    }

    /// The trainable tensors among `ids`, as arena ranges in arena order, tensors that touch
    /// merged into one range (what one launch of a step covers).
    pub fn trainable_runs(&self, ids: &[ParamId]) -> Vec<std::ops::Range<usize>> {
        let mut ids: Vec<usize> = ids.iter().map(|id| id.0).filter(|&i| !self.frozen[i]).collect();
        ids.sort_unstable();
        let mut out: Vec<std::ops::Range<usize>> = Vec::new();
        for e in ids.into_iter().map(|i| &self.entries[i]) {
            match out.last_mut() {
                Some(r) if r.end == e.offset => r.end = e.offset + e.len(),
                _ => out.push(e.range()),
            }
        }
        out
    }

    /// PyTorch's `clip_grad_norm_(trainable parameters, max_norm)`: the total 2-norm of the
    /// trainable tensors' gradients, and every gradient scaled by
    /// `min(1, max_norm / (norm + 1e-6))`, all on the device (three launches, nothing read
    /// back). Frozen tensors' gradients are zeroed first, so they neither count nor change.
    /// The returned [`GradNorm`] holds the norm on the device until read; release it each
    /// step (its 2-element buffer then goes back to the pool for the next call).
    pub fn clip_grad_norm(&self, dev: &mut Device, max_norm: f32) -> Result<GradNorm> {
        ensure!(max_norm.is_finite() && max_norm >= 0.0, "clip_grad_norm needs a finite max_norm >= 0, got {max_norm}");
        self.zero_frozen_grads(dev);
        let out = dev.alloc(2)?;
        dev.clip_coef(self.grads, out, max_norm);
        dev.scale_by(self.grads, out.slice(1, 1));
        Ok(GradNorm(out))
    }

    /// PyTorch's `clip_grad_value_(trainable parameters, clip_value)`: every trainable gradient
    /// clamped to `[-clip_value, clip_value]` on the device (one launch, nothing read back); a
    /// NaN stays NaN, as in `torch.clamp`. Frozen tensors' gradients are zeroed first, as
    /// [`ParamArena::clip_grad_norm`] does.
    pub fn clip_grad_value(&self, dev: &mut Device, clip_value: f32) -> Result<()> {
        ensure!(
            clip_value.is_finite() && clip_value >= 0.0,
            "clip_grad_value needs a finite clip_value >= 0, got {clip_value}"
        );
        self.zero_frozen_grads(dev);
        dev.clamp(self.grads, -clip_value, clip_value);
        Ok(())
    }

    /// Clipping sees only trainable tensors: a frozen tensor's gradient is zeroed first, so it
    /// neither counts in a norm nor survives a clamp.
    fn zero_frozen_grads(&self, dev: &mut Device) {
        for (e, _) in self.entries.iter().zip(&self.frozen).filter(|(_, &f)| f) {
            dev.fill(self.grads.slice(e.offset, e.len()), 0.0);
        }
    }

    /// The parameters as a state dict under their PyTorch names (`0.weight`, `0.bias`, …), in
    /// registration order, as f32: what `model.state_dict()` holds. One readback.
    /// [`StateDict::save`] writes it; PyTorch loads the file with `load_state_dict(strict=True)`.
    pub fn state_dict(&self, dev: &mut Device) -> Result<StateDict> {
        let params = dev.read(self.params)?;
        let tensors =
            self.entries.iter().map(|e| NamedTensor::f32(e.name.clone(), e.shape.clone(), params[e.range()].to_vec()));
        Ok(StateDict { tensors: tensors.collect(), metadata: Default::default() })
    }

    /// Overwrite the parameters from `dict`, strictly as PyTorch's
    /// `load_state_dict(strict=True)`: every tensor of this arena must be there with its shape
    /// and stored as F32, and a tensor of another name (other than the optimizer's
    /// `optimizer.…` state, left to [`Optimizer::load_state_dict`](crate::optim::Optimizer::load_state_dict))
    /// is an error. The error names the tensor; nothing is written unless all of them fit.
    /// Gradients and frozen flags are untouched.
    pub fn load_state_dict(&self, dev: &mut Device, dict: &StateDict) -> Result<()> {
        let mut host = vec![0f32; self.len()];
        for e in &self.entries {
            let t = dict.get(&e.name).with_context(|| format!("tensor {} (shape {:?}) is missing", e.name, e.shape))?;
            ensure!(
                t.shape == e.shape,
                "{} has shape {:?} in the state dict, the model's is {:?}",
                e.name,
                t.shape,
                e.shape
            );
            ensure!(t.dtype == Stored::F32, "{} is stored as {:?}; parameters are F32", e.name, t.dtype);
            host[e.range()].copy_from_slice(&t.data);
        }
        if let Some(t) = dict
            .tensors
            .iter()
            .find(|t| !t.name.starts_with(OPTIMIZER_PREFIX) && !self.entries.iter().any(|e| e.name == t.name))
        {
            let names: Vec<&str> = self.entries.iter().map(|e| e.name.as_str()).collect();
            bail!("unexpected tensor {} in the state dict: the model has {}", t.name, names.join(", "));
        }
        dev.write(self.params, &host)
    }

    /// Total elements, padding included (what an optimizer step covers).
    pub fn len(&self) -> usize {
        self.params.len
    }

    /// Whether the arena holds nothing.
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

/// One fully connected layer's tensors: `y = x·Wᵀ + b` (PyTorch's `nn.Linear`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: ParamId,
    /// `[out]`.
    pub bias: ParamId,
}

impl Linear {
    /// `act(x·Wᵀ + b)` on `tape`, with the parameters taken from `arena`.
    pub fn forward(&self, arena: &ParamArena, tape: &mut Tape, x: Var, act: Act) -> Result<Var> {
        let w = arena.var(tape, self.weight)?;
        let b = arena.var(tape, self.bias)?;
        tape.linear(x, w, Some(b), act)
    }
}

/// A multilayer perceptron: Linear layers with an activation after each but the last (one
/// for all, or one per layer with [`Mlp::set_activations`]) and optional dropout after each
/// activation ([`Mlp::set_dropout`]); PyTorch's default initialisation.
pub struct Mlp {
    /// `[inputs, hidden…, outputs]`.
    pub sizes: Vec<usize>,
    /// Every weight and bias.
    pub arena: ParamArena,
    layers: Vec<Linear>,
    /// The activation after each hidden layer.
    acts: Vec<Act>,
    dropout: Option<Dropout>,
}

impl Mlp {
    /// `sizes` = [inputs, hidden…, outputs]. Weights and biases ~ U(±1/√fan_in), drawn layer by
    /// layer (weight, then bias) from `rng` exactly as `nn.Linear` draws them, so a generator
    /// seeded like `torch.manual_seed(s)` gives PyTorch's initial weights bit for bit. `act`
    /// follows every layer but the last.
    pub fn new(dev: &mut Device, sizes: &[usize], act: Act, rng: &mut TorchGenerator) -> Result<Mlp> {
        ensure!(sizes.len() >= 2, "an MLP needs at least an input and an output size");
        ensure!(sizes.iter().all(|&s| s > 0), "layer sizes must be positive, got {sizes:?}");
        let (bytes, arena_bytes) = Mlp::footprint(sizes, dev.is_gpu());
        let what = format!("an MLP of sizes {sizes:?}");
        dev.check_fits_bound(&what, bytes, arena_bytes, arena_bytes, "use smaller layer sizes")?;
        // nn.Sequential's names: Linear layers at even indices, activations between them.
        let mut builder = ArenaBuilder::new();
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| builder.linear(&(2 * i).to_string(), w[0], w[1], rng))
            .collect::<Result<Vec<_>>>()?;
        let arena = builder.build(dev)?;
        let acts = vec![act; sizes.len() - 2];
        Ok(Mlp { sizes: sizes.to_vec(), arena, layers, acts, dropout: None })
    }

    /// One activation per hidden layer (`sizes.len() − 2` of them), replacing the one given to
    /// [`Mlp::new`]. The last layer has none: its output is the logits.
    pub fn set_activations(&mut self, acts: &[Act]) -> Result<()> {
        ensure!(
            acts.len() == self.acts.len(),
            "an MLP of sizes {:?} has {} hidden layers, so it takes {} activations, not {}",
            self.sizes,
            self.acts.len(),
            self.acts.len(),
            acts.len()
        );
        self.acts = acts.to_vec();
        Ok(())
    }

    /// The activation after each hidden layer.
    pub fn activations(&self) -> &[Act] {
        &self.acts
    }

    /// Dropout after every hidden layer's activation in [`Mlp::forward`] (None: none). It
    /// starts in the mode the model is in; [`Mlp::forward_no_grad`] never drops.
    pub fn set_dropout(&mut self, dropout: Option<Dropout>) {
        self.dropout = dropout;
    }

    /// The dropout layer, if any (its mode and call count).
    pub fn dropout(&self) -> Option<&Dropout> {
        self.dropout.as_ref()
    }

    /// Train mode (PyTorch's `model.train()`): dropout draws masks.
    pub fn train(&self) {
        if let Some(d) = &self.dropout {
            d.train();
        }
    }

    /// Eval mode (PyTorch's `model.eval()`): dropout is the identity.
    pub fn eval(&self) {
        if let Some(d) = &self.dropout {
            d.eval();
        }
    }

    /// Elements of the arena an MLP of `sizes` needs, padding included (`None` if that does not
    /// fit in memory addresses): for checking a size before anything is allocated.
    pub fn arena_len(sizes: &[usize]) -> Option<usize> {
        let mut total = 0usize;
        for w in sizes.windows(2) {
            for len in [w[0].checked_mul(w[1])?, w[1]] {
                total = total.checked_add(len.div_ceil(ARENA_ALIGN).checked_mul(ARENA_ALIGN)?)?;
            }
        }
        Some(total)
    }

    /// Bytes an MLP of `sizes` takes (its parameters and gradients, and on the CPU the host
    /// copies its initial values are drawn into), and bytes of its arena, the largest buffer:
    /// for checking a size against [`Device::check_fits`] before anything is allocated.
    pub fn footprint(sizes: &[usize], on_gpu: bool) -> (u64, u64) {
        let arena = Mlp::arena_len(sizes).map_or(u64::MAX / 16, |n| 4 * n as u64);
        let buffers = if on_gpu { 2 } else { 4 };
        (arena.saturating_mul(buffers), arena)
    }

    /// The linear layers, input first.
    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }

    /// The activation after layer `l` (none after the last).
    fn act_after(&self, l: usize) -> Act {
        self.acts.get(l).copied().unwrap_or(Act::Identity)
    }

    /// Logits for a batch `x` of shape [rows, inputs] (with dropout after each hidden layer
    /// when one is set and the model is in train mode).
    pub fn forward(&self, tape: &mut Tape, x: Var) -> Result<Var> {
        let mut h = self.check_input(tape, x)?;
        for (l, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&self.arena, tape, h, self.act_after(l)).with_context(|| self.layer_name(l))?;
            if let (Some(d), true) = (&self.dropout, l + 1 < self.layers.len()) {
                h = d.forward(tape, h)?;
            }
        }
        Ok(h)
    }

    /// An input of `[rows, sizes[0]]`, or an error that names the first layer and its width.
    fn check_input(&self, tape: &Tape, x: Var) -> Result<Var> {
        let shape = tape.shape(x)?;
        ensure!(
            shape.len() == 2 && shape[1] == self.sizes[0],
            "{} expects inputs of shape [rows, {}], got {shape:?}",
            self.layer_name(0),
            self.sizes[0]
        );
        Ok(x)
    }

    /// "layer l (Linear in→out)", for errors.
    fn layer_name(&self, l: usize) -> String {
        format!("the MLP's layer {l} (Linear {}→{})", self.sizes[l], self.sizes[l + 1])
    }

    /// Logits without recording gradients (evaluation): parameters enter as plain inputs.
    pub fn forward_no_grad(&self, tape: &mut Tape, x: Var) -> Result<Var> {
        let mut h = self.check_input(tape, x)?;
        for (l, layer) in self.layers.iter().enumerate() {
            let w = tape.input(self.arena.tensor(layer.weight));
            let b = tape.input(self.arena.tensor(layer.bias));
            h = tape.linear(h, w, Some(b), self.act_after(l)).with_context(|| self.layer_name(l))?;
        }
        Ok(h)
    }
}
