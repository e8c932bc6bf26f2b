//! Reverse-mode autograd over device buffers: a tape (Wengert list) of ops on storage handles.
//!
//! Forward calls run (or, on the GPU, record) each op at once and append a node; `backward`
//! walks the tape in reverse, issuing backend ops for each node's gradient. Nothing is read
//! back to the host. A linear layer is one node (matmul with a fused bias and activation), and
//! when an input of a matmul comes from an activation used only there, the activation's
//! derivative is fused into the matmul that computes that input's gradient; so an MLP's
//! backward pass costs two kernels per layer.
//!
//! Every graph the tape accepts gets exact gradients (up to f32 rounding): a value used in
//! several places sums its gradients, a parameter registered twice is one parameter, and
//! cross-entropy's fused gradient is scaled by whatever flows into it. What the tape cannot
//! differentiate is an `Err`, never a wrong number.
//!
//! A [`Tape`] borrows its [`Device`] for one step: the buffers it takes for values and
//! gradients go back to the device's pool when it is dropped (or [`Tape::reset`]), so a
//! training step allocates nothing once the first step has run and needs no bookkeeping.
//!
//! ```
//! use descent::autograd::Tape;
//! use descent::backend::Device;
//! # fn main() -> anyhow::Result<()> {
//! let mut dev = Device::cpu();
//! let w = dev.upload(&[1.0, 2.0, 3.0])?;
//! let w_grad = dev.alloc(3)?;
//! {
//!     let mut tape = Tape::new(&mut dev);
//!     let wv = tape.param(descent::tensor::Tensor::new(w, &[3])?, w_grad)?;
//!     let sq = tape.mul(wv, wv)?; // w²
//!     let loss = tape.sum(sq)?; // Σ w²
//!     tape.backward(loss)?;
//! } // the tape's buffers go back to the pool here
//! assert_eq!(dev.read(w_grad)?, vec![2.0, 4.0, 6.0]);
//! # Ok(()) }
//! ```

mod activations;
mod backward;
pub mod data_parallel;
mod dropout;
mod loss;
mod op;
mod rows;
mod softmax;

use crate::backend::{Act, Axis, Bcast, BinaryOp, CeOutputs, Device, Dims, Epilogue, Form, Layout, UnaryOp};
use crate::tensor::{Tensor, View};
use anyhow::{bail, ensure, Result};
use op::{inputs_of, Op};

/// A value on the tape: its index, valid until the tape is reset or dropped, and the identity
/// of the tape (and reset) that made it, so that a `Var` of another tape, or of this one
/// before a reset, is an `Err` rather than another node's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var(pub usize, u64);

/// Identities of tapes (a new one for each tape and each reset): never reused in a process.
static NEXT_TAPE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_tape_id() -> u64 {
    NEXT_TAPE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

struct Node {
    value: Tensor,
    op: Op,
    /// Whether the value's buffer belongs to the tape (released on reset).
    owned: bool,
    needs_grad: bool,
    uses: u32,
    /// Keep this value's own gradient readable: no activation derivative is fused past it.
    retain: bool,
}

/// The record of one forward pass on a device, and its backward pass.
///
/// Build values with the op methods (each checks shapes and returns an `Err` on a mismatch),
/// call [`Tape::backward`] on a one-element result, then read gradients: a parameter's lands
/// in the gradient view it was registered with, any other value's through [`Tape::grad`].
/// Dropping the tape returns every buffer it took to the device's pool.
pub struct Tape<'d> {
    dev: &'d mut Device,
    nodes: Vec<Node>,
    grads: Vec<Option<View>>,
    /// The stored gradient is with respect to the pre-activation (an activation's derivative
    /// was fused into the op that produced it).
    preact: Vec<bool>,
    /// Gradient buffers and adopted buffers owned by the tape.
    temps: Vec<View>,
    /// Anomaly detection: when set, [`Tape::backward`] checks every op's output and every
    /// gradient, in the order they were produced, and records the first non-finite one here
    /// (tag: the node's index, plus [`GRADIENT_TAG`] for a gradient).
    anomaly: Option<View>,
    /// This tape's identity since it was made or last reset (see [`Var`]).
    id: u64,
}

/// Added to a node's index in an anomaly tag when the non-finite value is its gradient.
pub const GRADIENT_TAG: usize = 1 << 20;

/// How two shapes broadcast: the output shape and each operand's layout over it. Equal shapes
/// of any rank are elementwise; otherwise vectors and matrices broadcast as in PyTorch, a
/// vector `[n]` counting as a row `[1, n]`.
fn broadcast_shapes(what: &str, sa: &[usize], sb: &[usize]) -> Result<(Vec<usize>, Bcast)> {
    if sa == sb {
        return Ok((sa.to_vec(), Bcast { cols: sa.last().copied().unwrap_or(1), ..Bcast::NONE }));
    }
    let as_matrix = |s: &[usize]| match *s {
        [n] => Some((1, n)),
        [m, n] => Some((m, n)),
        _ => None,
    };
    let why = "a [1, n] row (or an [n] vector), an [m, 1] column or a single value broadcasts over [m, n]";
    let (Some((ra, ca)), Some((rb, cb))) = (as_matrix(sa), as_matrix(sb)) else {
        bail!("{what}: shapes {sa:?} and {sb:?} differ; only vectors and matrices broadcast ({why})")
    };
    let dim = |x: usize, y: usize| match (x, y) {
        _ if x == y => Some(x),
        (1, _) => Some(y),
        (_, 1) => Some(x),
        _ => None,
    };
    let (Some(rows), Some(cols)) = (dim(ra, rb), dim(ca, cb)) else {
        bail!("{what}: shapes {sa:?} and {sb:?} do not broadcast ({why})")
    };
    let layout = |r: usize, c: usize| match (r == rows, c == cols) {
        (true, true) => Layout::Full,
        (false, true) => Layout::Row,
        (true, false) => Layout::Col,
        (false, false) => Layout::Scalar,
    };
    let shape = if sa.len().max(sb.len()) == 2 { vec![rows, cols] } else { vec![cols] };
    Ok((shape, Bcast { a: layout(ra, ca), b: layout(rb, cb), cols }))
}

fn overlaps(a: View, b: View) -> bool {
    a.buf == b.buf && a.offset < b.offset + b.len && b.offset < a.offset + a.len
}

impl<'d> Tape<'d> {
    /// An empty tape recording on `dev`.
    pub fn new(dev: &'d mut Device) -> Tape<'d> {
        let id = next_tape_id();
        Tape { dev, nodes: Vec::new(), grads: Vec::new(), preact: Vec::new(), temps: Vec::new(), anomaly: None, id }
    }

    /// The device the tape records on (to read values, or to run ops outside the graph).
    pub fn device(&mut self) -> &mut Device {
        self.dev
    }

    /// Nodes recorded so far.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether nothing has been recorded since the tape was made or reset.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Check every op's output and gradient in [`Tape::backward`], recording the first
    /// non-finite one in `flag` (two elements: tag, element), or stop checking (`None`).
    pub fn set_anomaly(&mut self, flag: Option<View>) {
        self.anomaly = flag;
    }

    fn push(&mut self, value: Tensor, op: Op, owned: bool) -> Var {
        let inputs = inputs_of(&op);
        let needs_grad = match op {
            Op::Param { .. } => true,
            // A maximum's value or index: no gradient flows through it to its input.
            Op::Extreme { .. } => false,
            _ => inputs.iter().any(|v| self.nodes[v.0].needs_grad),
        };
        for v in inputs {
            self.nodes[v.0].uses += 1;
        }
        self.nodes.push(Node { value, op, owned, needs_grad, uses: 0, retain: false });
        Var(self.nodes.len() - 1, self.id)
    }

    fn out(&mut self, shape: &[usize]) -> Result<Tensor> {
        let v = self.dev.alloc(shape.iter().product())?;
        Tensor::new(v, shape)
    }

    fn node(&self, v: Var) -> Result<&Node> {
        ensure!(
            v.1 == self.id,
            "Var({}) was made by another tape, or by this one before a reset: a Var is valid only on the tape that made it, until that tape is reset or dropped",
            v.0
        );
        match self.nodes.get(v.0) {
            Some(n) => Ok(n),
            None => bail!("Var({}) is not on this tape ({} nodes)", v.0, self.nodes.len()),
        }
    }

    /// The tensor holding `v`'s value.
    ///
    /// # Panics
    /// If `v` is not on this tape.
    pub fn value(&self, v: Var) -> &Tensor {
        assert!(v.1 == self.id, "Var({}) was made by another tape, or by this one before a reset", v.0);
        &self.nodes[v.0].value
    }

    /// `v`'s shape.
    pub fn shape(&self, v: Var) -> Result<&[usize]> {
        Ok(&self.node(v)?.value.shape)
    }

    /// `v`'s value, copied to the host (a readback: waits for the device).
    pub fn read(&mut self, v: Var) -> Result<Vec<f32>> {
        let view = self.node(v)?.value.view;
        self.dev.read(view)
    }

    /// Data that needs no gradient, owned by the caller (who releases it: for a buffer made
    /// for this step alone, such as an uploaded batch, use [`Tape::input_owned`]).
    pub fn input(&mut self, t: Tensor) -> Var {
        self.push(t, Op::Leaf, false)
    }

    /// Data that needs no gradient, handed to the tape: its buffer (a whole one from
    /// [`Device::alloc`]) goes back to the pool when the tape is reset or dropped.
    pub fn input_owned(&mut self, t: Tensor) -> Var {
        self.push(t, Op::Leaf, true)
    }

    /// Hand a whole buffer from [`Device::alloc`] (labels, say) to the tape, to be released
    /// with the tape's own.
    pub fn adopt(&mut self, v: View) {
        self.temps.push(v);
    }

    /// A trainable tensor, owned by the caller; its gradient goes to `grad`.
    ///
    /// Registering the same tensor with the same gradient view again returns the same `Var`,
    /// so its gradients add up. A gradient view that overlaps another parameter's (or a
    /// tensor that overlaps another parameter's storage) is an error.
    pub fn param(&mut self, t: Tensor, grad: View) -> Result<Var> {
        ensure!(
            t.len() == grad.len,
            "a parameter of {} values (shape {:?}) needs a gradient view of the same length, got {}",
            t.len(),
            t.shape,
            grad.len
        );
        for (i, n) in self.nodes.iter().enumerate() {
            let Op::Param { grad: g } = n.op else { continue };
            if g == grad && n.value == t {
                return Ok(Var(i, self.id));
            }
            ensure!(
                !overlaps(g, grad) && !overlaps(n.value.view, t.view),
                "parameter {:?} overlaps parameter {i} (shape {:?}) in its values or its gradient; register each tensor once, with one gradient view",
                t.shape,
                n.value.shape
            );
        }
        Ok(self.push(t, Op::Param { grad }, false))
    }

    /// A constant uploaded from the host, owned by the tape.
    pub fn constant(&mut self, data: &[f32], shape: &[usize]) -> Result<Var> {
        ensure!(data.len() == shape.iter().product::<usize>(), "{} values for shape {shape:?}", data.len());
        let t = self.out(shape)?;
        self.dev.write(t.view, data)?;
        Ok(self.push(t, Op::Leaf, true))
    }

    /// Keep `v`'s own gradient readable through [`Tape::grad`] (call before
    /// [`Tape::backward`]). Without it, the gradient of an activation's output that feeds a
    /// single matmul is fused into that matmul and only the pre-activation gradient exists.
    pub fn retain_grad(&mut self, v: Var) -> Result<()> {
        self.node(v)?;
        self.nodes[v.0].retain = true;
        Ok(())
    }

    fn matrix(&self, v: Var, what: &str) -> Result<(usize, usize)> {
        let s = &self.node(v)?.value.shape;
        ensure!(s.len() == 2, "{what} must be a matrix, got shape {s:?}");
        Ok((s[0], s[1]))
    }

    /// `op(a)·op(b)` in one of the three forms.
    pub fn matmul(&mut self, form: Form, a: Var, b: Var) -> Result<Var> {
        self.matmul_fused(form, a, b, None, Act::Identity)
    }

    fn matmul_fused(&mut self, form: Form, a: Var, b: Var, bias: Option<Var>, act: Act) -> Result<Var> {
        let (ar, ac) = self.matrix(a, "matmul's left operand")?;
        let (br, bc) = self.matrix(b, "matmul's right operand")?;
        let (m, k, k2, n) = match form {
            Form::NN => (ar, ac, br, bc),
            Form::NT => (ar, ac, bc, br),
            Form::TN => (ac, ar, br, bc),
        };
        ensure!(k == k2, "{}: inner sizes differ ({ar}×{ac} and {br}×{bc})", form.name());
        if let Some(bv) = bias {
            let len = self.node(bv)?.value.len();
            ensure!(len == n, "bias of length {len} for {n} columns");
        }
        let d = Dims { m, k, n };
        let out = self.out(&[m, n])?;
        let epi = Epilogue {
            bias: bias.map(|b| self.value(b).view),
            act: (act != Act::Identity).then_some(act),
            ..Default::default()
        };
        let (av, bv) = (self.value(a).view, self.value(b).view);
        self.dev.matmul(form, d, av, bv, out.view, &epi);
        Ok(self.push(out, Op::Matmul { form, d, a, b, bias, act }, true))
    }

    /// A linear layer as PyTorch defines it: `act(x·Wᵀ + b)` with W of shape [out, in].
    pub fn linear(&mut self, x: Var, w: Var, b: Option<Var>, act: Act) -> Result<Var> {
        self.matmul_fused(Form::NT, x, w, b, act)
    }

    /// `act(x + bias)` with the bias broadcast over rows.
    pub fn bias_act(&mut self, x: Var, bias: Option<Var>, act: Act) -> Result<Var> {
        let shape = self.node(x)?.value.shape.clone();
        let cols = *shape.last().unwrap_or(&1);
        if let Some(b) = bias {
            let len = self.node(b)?.value.len();
            ensure!(len == cols, "bias of length {len} for {cols} columns");
        }
        let out = self.out(&shape)?;
        let (xv, bv) = (self.value(x).view, bias.map(|b| self.value(b).view));
        self.dev.bias_act(xv, bv, out.view, cols, act);
        Ok(self.push(out, Op::BiasAct { x, bias, act }, true))
    }

    /// An activation on its own.
    pub fn act(&mut self, x: Var, act: Act) -> Result<Var> {
        self.bias_act(x, None, act)
    }

    /// `a op b` elementwise. Equal shapes combine element by element; otherwise a `[1, n]`
    /// row (or `[n]` vector), an `[m, 1]` column or a one-element value broadcasts over an
    /// `[m, n]` matrix, as in PyTorch (a row and a column give their outer combination).
    pub fn binary(&mut self, op: BinaryOp, a: Var, b: Var) -> Result<Var> {
        let (sa, sb) = (self.node(a)?.value.shape.clone(), self.node(b)?.value.shape.clone());
        let (shape, bcast) = broadcast_shapes(&format!("{op:?}"), &sa, &sb)?;
        let out = self.out(&shape)?;
        let (av, bv) = (self.value(a).view, self.value(b).view);
        self.dev.binary_bcast(op, av, bv, out.view, bcast);
        Ok(self.push(out, Op::Binary { op, a, b, bcast }, true))
    }

    /// `a + b`, broadcasting as [`Tape::binary`] does.
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary(BinaryOp::Add, a, b)
    }

    /// `a − b`, broadcasting as [`Tape::binary`] does.
    pub fn sub(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary(BinaryOp::Sub, a, b)
    }

    /// `a ⊙ b`, broadcasting as [`Tape::binary`] does.
    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary(BinaryOp::Mul, a, b)
    }

    /// `a / b`, broadcasting as [`Tape::binary`] does.
    pub fn div(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary(BinaryOp::Div, a, b)
    }

    /// `op(a)` elementwise.
    pub fn unary(&mut self, op: UnaryOp, a: Var) -> Result<Var> {
        let shape = self.node(a)?.value.shape.clone();
        let out = self.out(&shape)?;
        let av = self.value(a).view;
        self.dev.unary(op, av, out.view);
        Ok(self.push(out, Op::Unary { op, a }, true))
    }

    /// `s · a`.
    pub fn scale(&mut self, a: Var, s: f32) -> Result<Var> {
        self.unary(UnaryOp::Scale(s), a)
    }

    /// `a + s`.
    pub fn add_scalar(&mut self, a: Var, s: f32) -> Result<Var> {
        self.unary(UnaryOp::AddScalar(s), a)
    }

    /// `a^p` (an integral `p` keeps the sign of a negative `a`).
    pub fn pow(&mut self, a: Var, p: f32) -> Result<Var> {
        self.unary(UnaryOp::Pow(p), a)
    }

    /// `Σ a`, a one-element value.
    pub fn sum(&mut self, a: Var) -> Result<Var> {
        self.reduce(a, 1.0)
    }

    /// The mean of every element of `a`, a one-element value.
    pub fn mean(&mut self, a: Var) -> Result<Var> {
        let n = self.node(a)?.value.len();
        ensure!(n > 0, "mean of an empty tensor");
        self.reduce(a, 1.0 / n as f32)
    }

    fn reduce(&mut self, a: Var, scale: f32) -> Result<Var> {
        self.node(a)?;
        let out = self.out(&[1])?;
        let av = self.value(a).view;
        self.dev.sum(av, out.view, scale);
        Ok(self.push(out, Op::Sum { a, scale }, true))
    }

    /// Sums of the matrix `a` along `axis`, keeping it with size 1 (PyTorch's
    /// `sum(dim, keepdim=True)`): `[1, n]` for [`Axis::Rows`], `[m, 1]` for [`Axis::Cols`],
    /// so the result broadcasts back over `a`.
    pub fn sum_axis(&mut self, a: Var, axis: Axis) -> Result<Var> {
        self.reduce_axis(a, axis, false)
    }

    /// Means of the matrix `a` along `axis`, shaped as [`Tape::sum_axis`] shapes them.
    pub fn mean_axis(&mut self, a: Var, axis: Axis) -> Result<Var> {
        self.reduce_axis(a, axis, true)
    }

    fn reduce_axis(&mut self, a: Var, axis: Axis, mean: bool) -> Result<Var> {
        let (m, n) = self.matrix(a, "a per-axis reduction's input")?;
        let (shape, count) = match axis {
            Axis::Rows => ([1, n], m),
            Axis::Cols => ([m, 1], n),
        };
        ensure!(count > 0 || !mean, "mean over an empty axis of a {m}×{n} matrix");
        let scale = if mean { 1.0 / count as f32 } else { 1.0 };
        let out = self.out(&shape)?;
        let av = self.value(a).view;
        self.dev.sum_axis(av, out.view, n, axis, scale);
        Ok(self.push(out, Op::SumAxis { a, axis, scale }, true))
    }

    /// The same values under another shape with as many elements (no copy).
    pub fn reshape(&mut self, a: Var, shape: &[usize]) -> Result<Var> {
        let t = &self.node(a)?.value;
        ensure!(
            shape.iter().product::<usize>() == t.len(),
            "cannot reshape {:?} ({} values) to {shape:?}",
            t.shape,
            t.len()
        );
        let value = Tensor::new(t.view, shape)?;
        Ok(self.push(value, Op::Reshape { a }, false))
    }

    /// The gradient of the last [`Tape::backward`]'s root with respect to `v`: `None` when
    /// `v` needs none or the root does not depend on it (a parameter's gradient view then
    /// holds zeros). An `Err` when the gradient was fused away (see [`Tape::retain_grad`]).
    pub fn grad(&self, v: Var) -> Result<Option<View>> {
        self.node(v)?;
        if self.preact.get(v.0).copied().unwrap_or(false) {
            bail!(
                "the gradient of op {} was fused into the pre-activation gradient of the matmul it feeds; call retain_grad on it before backward to keep it",
                v.0
            );
        }
        Ok(self.grads.get(v.0).copied().flatten())
    }

    /// [`Tape::grad`] copied to the host.
    pub fn read_grad(&mut self, v: Var) -> Result<Option<Vec<f32>>> {
        match self.grad(v)? {
            Some(g) => Ok(Some(self.dev.read(g)?)),
            None => Ok(None),
        }
    }

    /// What an anomaly tag refers to, e.g. "the output of op 7 (matmul_nt 64×128·128×10 +
    /// bias)" or "the gradient of op 3 (…)".
    pub fn describe_tag(&self, tag: usize) -> String {
        let (what, i) =
            if tag >= GRADIENT_TAG { ("the gradient of", tag - GRADIENT_TAG) } else { ("the output of", tag) };
        let Some(node) = self.nodes.get(i) else { return format!("{what} op {i}") };
        let shape = format!("{:?}", node.value.shape);
        let op = match &node.op {
            Op::Leaf => "an input".to_string(),
            Op::Param { .. } => "a parameter".to_string(),
            Op::Matmul { form, d, bias, act, .. } => format!(
                "{} {}×{}·{}×{}{}{}",
                form.name(),
                d.m,
                d.k,
                d.k,
                d.n,
                if bias.is_some() { " + bias" } else { "" },
                if *act != Act::Identity { format!(", {}", act.name()) } else { String::new() }
            ),
            Op::BiasAct { act, bias, .. } => format!("{}{}", if bias.is_some() { "bias + " } else { "" }, act.name()),
            Op::Binary { op, .. } => format!("{op:?}"),
            Op::Unary { op, .. } => format!("{op:?}"),
            Op::Sum { .. } => "sum".to_string(),
            Op::SumAxis { axis, .. } => format!("sum over axis {}", axis.dim()),
            Op::Reshape { .. } => "reshape".to_string(),
            Op::Dropout { mask, .. } => format!("dropout p {}", mask.p()),
            Op::Extreme { axis, argmax, .. } => {
                format!("{} over axis {}", if *argmax { "argmax" } else { "max" }, axis.dim())
            }
            Op::SoftmaxCe { .. } => "softmax cross-entropy".to_string(),
        };
        format!("{what} op {i} ({op}, shape {shape})")
    }

    /// The gradient views of the parameters registered so far, in order.
    pub(crate) fn param_grads(&self) -> Vec<View> {
        self.nodes
            .iter()
            .filter_map(|n| match n.op {
                Op::Param { grad } => Some(grad),
                _ => None,
            })
            .collect()
    }

    /// Release every buffer the tape owns to the device's pool and clear it, to record the
    /// next step (dropping the tape does the same).
    pub fn reset(&mut self) {
        for node in self.nodes.drain(..) {
            if node.owned {
                self.dev.release(node.value.view);
            }
        }
        for t in self.temps.drain(..) {
            self.dev.release(t);
        }
        self.grads.clear();
        self.preact.clear();
        self.id = next_tape_id();
    }
}

impl Drop for Tape<'_> {
    fn drop(&mut self) {
        self.reset();
    }
}
