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
//!     let wv = tape.param(descent::tensor::Tensor::new(w, &[3]), w_grad)?;
//!     let sq = tape.mul(wv, wv)?; // w²
//!     let loss = tape.sum(sq)?; // Σ w²
//!     tape.backward(loss)?;
//! } // the tape's buffers go back to the pool here
//! assert_eq!(dev.read(w_grad)?, vec![2.0, 4.0, 6.0]);
//! # Ok(()) }
//! ```

use crate::backend::{Act, Axis, Bcast, BinaryOp, Device, Dims, Epilogue, Form, Layout, UnaryOp};
use crate::tensor::{Tensor, View};
use anyhow::{bail, ensure, Result};

/// A value on the tape: an index that is valid until the tape is reset or dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var(pub usize);

#[derive(Clone, Debug)]
enum Op {
    /// An input that needs no gradient (data, constants).
    Leaf,
    /// A trainable tensor whose gradient is written into `grad` (a slice of the gradient arena).
    Param {
        grad: View,
    },
    /// `act(op(A)·op(B) + bias)`.
    Matmul {
        form: Form,
        d: Dims,
        a: Var,
        b: Var,
        bias: Option<Var>,
        act: Act,
    },
    /// `act(x + bias)`, bias broadcast over rows.
    BiasAct {
        x: Var,
        bias: Option<Var>,
        act: Act,
    },
    /// `a op b`, either operand possibly broadcast.
    Binary {
        op: BinaryOp,
        a: Var,
        b: Var,
        bcast: Bcast,
    },
    Unary {
        op: UnaryOp,
        a: Var,
    },
    /// `scale · Σ a`.
    Sum {
        a: Var,
        scale: f32,
    },
    /// `scale ·` the sums of the matrix `a` along `axis` (the axis kept with size 1).
    SumAxis {
        a: Var,
        axis: Axis,
        scale: f32,
    },
    /// The same storage under another shape.
    Reshape {
        a: Var,
    },
    /// Mean softmax cross-entropy; d(loss)/d(logits) was computed with the forward pass.
    SoftmaxCe {
        logits: Var,
        dlogits: Option<View>,
    },
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
        Tape { dev, nodes: Vec::new(), grads: Vec::new(), preact: Vec::new(), temps: Vec::new(), anomaly: None }
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
        let needs_grad = matches!(op, Op::Param { .. }) || inputs.iter().any(|v| self.nodes[v.0].needs_grad);
        for v in inputs {
            self.nodes[v.0].uses += 1;
        }
        self.nodes.push(Node { value, op, owned, needs_grad, uses: 0, retain: false });
        Var(self.nodes.len() - 1)
    }

    fn out(&mut self, shape: &[usize]) -> Result<Tensor> {
        let v = self.dev.alloc(shape.iter().product())?;
        Ok(Tensor::new(v, shape))
    }

    fn node(&self, v: Var) -> Result<&Node> {
        match self.nodes.get(v.0) {
            Some(n) => Ok(n),
            None => bail!("Var({}) is not on this tape ({} nodes; was it made before a reset?)", v.0, self.nodes.len()),
        }
    }

    /// The tensor holding `v`'s value.
    ///
    /// # Panics
    /// If `v` is not on this tape.
    pub fn value(&self, v: Var) -> &Tensor {
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

    /// Data that needs no gradient, owned by the caller.
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
                return Ok(Var(i));
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
        let value = Tensor::new(t.view, shape);
        Ok(self.push(value, Op::Reshape { a }, false))
    }

    /// Mean squared error `mean((pred − target)²)`, PyTorch's `MSELoss()`; the shapes must
    /// be equal (PyTorch only warns when they broadcast, which is almost always a bug).
    pub fn mse(&mut self, pred: Var, target: Var) -> Result<Var> {
        let (sp, st) = (self.shape(pred)?.to_vec(), self.shape(target)?.to_vec());
        ensure!(sp == st, "mse: prediction {sp:?} and target {st:?} differ in shape (reshape one of them)");
        let d = self.sub(pred, target)?;
        let sq = self.mul(d, d)?;
        self.mean(sq)
    }

    /// Mean softmax cross-entropy of `logits` [rows, classes] against class indices `labels`
    /// (f32, one per row), PyTorch's `CrossEntropyLoss()`. Adds [Σ row loss, correct count]
    /// to `metrics` if given. It may sit anywhere in a graph (scaled, summed with a penalty):
    /// its fused gradient is scaled by the gradient that reaches it.
    pub fn softmax_ce(&mut self, logits: Var, labels: View, metrics: Option<View>) -> Result<Var> {
        let (rows, cols) = self.matrix(logits, "logits")?;
        ensure!(labels.len == rows, "{} labels for {rows} rows of logits", labels.len);
        let dlogits = if self.nodes[logits.0].needs_grad { Some(self.temp(rows * cols)?) } else { None };
        let loss = self.out(&[1])?;
        let lv = self.value(logits).view;
        self.dev.softmax_ce(lv, labels, cols, Some(loss.view), dlogits, metrics);
        Ok(self.push(loss, Op::SoftmaxCe { logits, dlogits }, true))
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

    /// Gradients of `root` (a 1-element value) with respect to every value that needs one.
    /// Parameter gradients land in their gradient views (overwritten, not accumulated across
    /// calls; a parameter the root does not depend on gets zeros).
    pub fn backward(&mut self, root: Var) -> Result<()> {
        let len = self.node(root)?.value.len();
        ensure!(len == 1, "backward needs a 1-element root, got shape {:?}", self.value(root).shape);
        let n = self.nodes.len();
        self.grads = vec![None; n];
        self.preact = vec![false; n];
        if let Some(flag) = self.anomaly {
            // Forward outputs in the order the ops ran: the flag keeps the first non-finite one.
            for (i, node) in self.nodes.iter().enumerate().take(root.0 + 1) {
                if !matches!(node.op, Op::Leaf | Op::Param { .. }) {
                    self.dev.find_nonfinite(node.value.view, flag, i as f32);
                }
            }
        }
        match self.nodes[root.0].op {
            // The root's gradient is 1: cross-entropy's fused gradient is the logits' as it is.
            Op::SoftmaxCe { logits, dlogits: Some(d) } => match self.nodes[logits.0].op {
                Op::Param { grad } => {
                    self.dev.copy(d, grad);
                    self.grads[logits.0] = Some(grad);
                }
                _ => self.grads[logits.0] = Some(d),
            },
            Op::SoftmaxCe { dlogits: None, .. } => {}
            _ => {
                let seed = self.temp(1)?;
                self.dev.fill(seed, 1.0);
                self.grads[root.0] = Some(seed);
            }
        }
        for i in (0..=root.0).rev() {
            let Some(g) = self.grads[i] else { continue };
            let op = self.nodes[i].op.clone();
            match op {
                Op::Leaf | Op::Param { .. } => {}
                Op::SoftmaxCe { logits, dlogits } => {
                    // Below the root: d(loss)/d(logits) times the loss's incoming gradient.
                    if let Some(d) = dlogits {
                        let bc = Bcast { a: Layout::Full, b: Layout::Scalar, cols: 1 };
                        self.contribute(logits, |dev, dst| dev.binary_bcast(BinaryOp::Mul, d, g, dst, bc))?;
                    }
                }
                Op::Matmul { form, d, a, b, bias, act } => {
                    let dz = self.pre_activation_grad(i, act, g)?;
                    self.matmul_backward(form, d, a, b, bias, dz)?;
                }
                Op::BiasAct { x, bias, act } => {
                    let dz = self.pre_activation_grad(i, act, g)?;
                    self.contribute(x, |dev, dst| dev.copy(dz, dst))?;
                    if let Some(bv) = bias {
                        let cols = *self.value(x).shape.last().unwrap_or(&1);
                        self.contribute(bv, |dev, dst| dev.sum_axis(dz, dst, cols, Axis::Rows, 1.0))?;
                    }
                }
                Op::Binary { op, a, b, bcast } => self.binary_backward(op, a, b, bcast, g, i)?,
                Op::Unary { op, a } => self.unary_backward(op, a, g, i)?,
                Op::Sum { a, scale } => self.contribute(a, |dev, dst| dev.expand(g, Layout::Scalar, dst, 1, scale))?,
                Op::SumAxis { a, axis, scale } => {
                    let cols = self.value(a).shape[1];
                    self.contribute(a, |dev, dst| dev.expand(g, axis.kept(), dst, cols, scale))?
                }
                Op::Reshape { a } => self.contribute(a, |dev, dst| dev.copy(g, dst))?,
            }
        }
        if let Some(flag) = self.anomaly {
            // Gradients in the order they were completed (from the root down).
            for i in (0..=root.0).rev() {
                if let Some(g) = self.grads[i] {
                    self.dev.find_nonfinite(g, flag, (GRADIENT_TAG + i) as f32);
                }
            }
        }
        // Parameters the root does not depend on get zero gradients, not stale ones.
        for i in 0..n {
            if let (Op::Param { grad }, None) = (&self.nodes[i].op, self.grads[i]) {
                self.dev.fill(*grad, 0.0);
            }
        }
        Ok(())
    }

    /// dZ from d(act(Z)): reuse it when an earlier fusion already applied act'.
    fn pre_activation_grad(&mut self, i: usize, act: Act, g: View) -> Result<View> {
        if act == Act::Identity || self.preact[i] {
            return Ok(g);
        }
        let dz = self.temp(g.len)?;
        self.dev.act_backward(act, self.nodes[i].value.view, g, dz);
        Ok(dz)
    }

    /// If `v` is the output of an activation used only once, the activation whose derivative
    /// the producer of v's gradient can fuse, with the activation's output.
    fn fusable_act(&self, v: Var) -> Option<(Act, View)> {
        let node = &self.nodes[v.0];
        let act = match node.op {
            Op::Matmul { act, .. } | Op::BiasAct { act, .. } => act,
            _ => return None,
        };
        let fusable = act != Act::Identity && node.uses == 1 && !node.retain && self.grads[v.0].is_none();
        fusable.then_some((act, node.value.view))
    }

    fn matmul_backward(&mut self, form: Form, d: Dims, a: Var, b: Var, bias: Option<Var>, dz: View) -> Result<()> {
        let (av, bv) = (self.value(a).view, self.value(b).view);
        let Dims { m, k, n } = d;
        let bias_needs = bias.filter(|bv| self.nodes[bv.0].needs_grad);
        let mut bias_done = false;
        // Gradient of the weight-like right operand first, so a linear layer's bias gradient
        // rides along as the column sums of dZ.
        if self.nodes[b.0].needs_grad {
            let fusable =
                bias_needs.filter(|bv| form == Form::NT && self.grads[bv.0].is_none() && *bv != a && *bv != b);
            let bias_dst = match fusable {
                Some(bv) => Some(self.grad_dst(bv)?),
                None => None,
            };
            self.contribute(b, |dev, dst| {
                let (f, dd, x, y) = match form {
                    Form::NN => (Form::TN, Dims { m: k, k: m, n }, av, dz),
                    Form::NT => (Form::TN, Dims { m: n, k: m, n: k }, dz, av),
                    Form::TN => (Form::NN, Dims { m: k, k: m, n }, av, dz),
                };
                dev.matmul(f, dd, x, y, dst, &Epilogue { a_colsum: bias_dst, ..Default::default() });
            })?;
            if let (Some(bvar), Some(dst)) = (fusable, bias_dst) {
                self.grads[bvar.0] = Some(dst);
                bias_done = true;
            }
        }
        if self.nodes[a.0].needs_grad {
            let fused = self.fusable_act(a);
            self.contribute(a, |dev, dst| {
                let (f, dd, x, y) = match form {
                    Form::NN => (Form::NT, Dims { m, k: n, n: k }, dz, bv),
                    Form::NT => (Form::NN, Dims { m, k: n, n: k }, dz, bv),
                    Form::TN => (Form::NT, Dims { m: k, k: n, n: m }, bv, dz),
                };
                dev.matmul(f, dd, x, y, dst, &Epilogue { act_grad: fused, ..Default::default() });
            })?;
            if fused.is_some() {
                self.preact[a.0] = true;
            }
        }
        if let (Some(bvar), false) = (bias_needs, bias_done) {
            self.contribute(bvar, |dev, dst| dev.sum_axis(dz, dst, n, Axis::Rows, 1.0))?;
        }
        Ok(())
    }

    /// Add `scale · src` (a gradient over a broadcast output of rows of `cols`) to operand
    /// `v` read in `layout`: summed over the axes it was broadcast along.
    fn contribute_reduced(&mut self, v: Var, layout: Layout, cols: usize, src: View, scale: f32) -> Result<()> {
        self.contribute(v, |dev, dst| match layout {
            Layout::Full if scale == 1.0 => dev.copy(src, dst),
            Layout::Full => dev.unary(UnaryOp::Scale(scale), src, dst),
            Layout::Row => dev.sum_axis(src, dst, cols, Axis::Rows, scale),
            Layout::Col => dev.sum_axis(src, dst, cols, Axis::Cols, scale),
            Layout::Scalar => dev.sum(src, dst, scale),
        })
    }

    /// Add the gradient `compute` writes (as long as the broadcast output, `n` elements) to
    /// operand `v` read in `layout`: in place when `v` was not broadcast, else via a temporary
    /// that is then summed down.
    fn contribute_full(
        &mut self,
        v: Var,
        layout: Layout,
        cols: usize,
        n: usize,
        compute: impl FnOnce(&mut Device, View),
    ) -> Result<()> {
        if layout == Layout::Full {
            return self.contribute(v, compute);
        }
        let t = self.temp(n)?;
        compute(self.dev, t);
        self.contribute_reduced(v, layout, cols, t, 1.0)
    }

    fn binary_backward(&mut self, op: BinaryOp, a: Var, b: Var, bc: Bcast, g: View, i: usize) -> Result<()> {
        let (av, bv, cv) = (self.value(a).view, self.value(b).view, self.nodes[i].value.view);
        let (n, cols) = (g.len, bc.cols);
        // g (full) combined with one operand in its own layout.
        let with_b = Bcast { a: Layout::Full, b: bc.b, cols };
        let with_a = Bcast { a: Layout::Full, b: bc.a, cols };
        if self.nodes[a.0].needs_grad {
            match op {
                BinaryOp::Add | BinaryOp::Sub => self.contribute_reduced(a, bc.a, cols, g, 1.0)?,
                BinaryOp::Mul => self.contribute_full(a, bc.a, cols, n, |dev, dst| {
                    dev.binary_bcast(BinaryOp::Mul, g, bv, dst, with_b)
                })?,
                BinaryOp::Div => self.contribute_full(a, bc.a, cols, n, |dev, dst| {
                    dev.binary_bcast(BinaryOp::Div, g, bv, dst, with_b)
                })?,
            }
        }
        if self.nodes[b.0].needs_grad {
            match op {
                BinaryOp::Add => self.contribute_reduced(b, bc.b, cols, g, 1.0)?,
                BinaryOp::Sub => self.contribute_reduced(b, bc.b, cols, g, -1.0)?,
                BinaryOp::Mul => self.contribute_full(b, bc.b, cols, n, |dev, dst| {
                    dev.binary_bcast(BinaryOp::Mul, g, av, dst, with_a)
                })?,
                BinaryOp::Div => {
                    // d(a/b)/db = −(a/b)/b = −c/b.
                    let t = self.temp(n)?;
                    self.dev.binary_bcast(BinaryOp::Div, cv, bv, t, with_b);
                    let u = self.temp(n)?;
                    self.dev.binary(BinaryOp::Mul, t, g, u);
                    self.contribute_reduced(b, bc.b, cols, u, -1.0)?;
                }
            }
        }
        Ok(())
    }

    fn unary_backward(&mut self, op: UnaryOp, a: Var, g: View, i: usize) -> Result<()> {
        if !self.nodes[a.0].needs_grad {
            return Ok(());
        }
        let (av, cv) = (self.value(a).view, self.nodes[i].value.view);
        // The local derivative, or None when it is a constant scale.
        let local = match op {
            UnaryOp::Scale(s) => return self.contribute(a, |dev, dst| dev.unary(UnaryOp::Scale(s), g, dst)),
            UnaryOp::AddScalar(_) => return self.contribute(a, |dev, dst| dev.copy(g, dst)),
            UnaryOp::Exp => cv,
            UnaryOp::Log => return self.contribute(a, |dev, dst| dev.binary(BinaryOp::Div, g, av, dst)),
            UnaryOp::Pow(p) => {
                let t = self.temp(g.len)?;
                self.dev.unary(UnaryOp::Pow(p - 1.0), av, t);
                let u = self.temp(g.len)?;
                self.dev.unary(UnaryOp::Scale(p), t, u);
                u
            }
            UnaryOp::Sin => {
                let t = self.temp(g.len)?;
                self.dev.unary(UnaryOp::Cos, av, t);
                t
            }
            UnaryOp::Cos => {
                let t = self.temp(g.len)?;
                self.dev.unary(UnaryOp::Sin, av, t);
                let u = self.temp(g.len)?;
                self.dev.unary(UnaryOp::Scale(-1.0), t, u);
                u
            }
        };
        self.contribute(a, |dev, dst| dev.binary(BinaryOp::Mul, g, local, dst))
    }

    fn temp(&mut self, len: usize) -> Result<View> {
        let t = self.dev.alloc(len)?;
        self.temps.push(t);
        Ok(t)
    }

    /// Where the first gradient contribution to `v` is written.
    fn grad_dst(&mut self, v: Var) -> Result<View> {
        match self.nodes[v.0].op {
            Op::Param { grad } => Ok(grad),
            _ => self.temp(self.nodes[v.0].value.len()),
        }
    }

    /// Add a gradient contribution to `v`: the first one is written in place, later ones are
    /// computed aside and summed (never reading and writing one buffer in one kernel).
    fn contribute(&mut self, v: Var, compute: impl FnOnce(&mut Device, View)) -> Result<()> {
        match self.grads[v.0] {
            None => {
                let dst = self.grad_dst(v)?;
                compute(self.dev, dst);
                self.grads[v.0] = Some(dst);
            }
            Some(existing) => {
                let len = existing.len;
                let part = self.temp(len)?;
                compute(self.dev, part);
                let total = self.temp(len)?;
                self.dev.binary(BinaryOp::Add, existing, part, total);
                match self.nodes[v.0].op {
                    Op::Param { grad } => self.dev.copy(total, grad),
                    _ => self.grads[v.0] = Some(total),
                }
            }
        }
        Ok(())
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
            Op::SoftmaxCe { .. } => "softmax cross-entropy".to_string(),
        };
        format!("{what} op {i} ({op}, shape {shape})")
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
    }
}

impl Drop for Tape<'_> {
    fn drop(&mut self) {
        self.reset();
    }
}

fn inputs_of(op: &Op) -> Vec<Var> {
    match *op {
        Op::Leaf | Op::Param { .. } => vec![],
        Op::Matmul { a, b, bias, .. } => [Some(a), Some(b), bias].into_iter().flatten().collect(),
        Op::BiasAct { x, bias, .. } => [Some(x), bias].into_iter().flatten().collect(),
        Op::Binary { a, b, .. } => vec![a, b],
        Op::Unary { a, .. } | Op::Sum { a, .. } | Op::SumAxis { a, .. } | Op::Reshape { a } => vec![a],
        Op::SoftmaxCe { logits, .. } => vec![logits],
    }
}
