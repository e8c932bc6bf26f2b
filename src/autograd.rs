//! Reverse-mode autograd over device buffers: a tape (Wengert list) of ops on storage handles.
//!
//! Forward calls run (or, on the GPU, record) each op at once and append a node; `backward`
//! walks the tape in reverse, issuing backend ops for each node's gradient. Nothing is read
//! back to the host. A linear layer is one node (matmul with a fused bias and activation), and
//! when an input of a matmul comes from an activation used only there, the activation's
//! derivative is fused into the matmul that computes that input's gradient; so an MLP's
//! backward pass costs two kernels per layer.
//!
//! Buffers for values and gradients come from the device's pool and go back on [`Tape::reset`],
//! so a training step allocates nothing once the first step has run.

use crate::backend::{Act, BinaryOp, Device, Dims, Epilogue, Form, UnaryOp};
use crate::tensor::{Tensor, View};
use anyhow::{ensure, Result};

/// A value on the tape.
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
    Binary {
        op: BinaryOp,
        a: Var,
        b: Var,
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
}

#[derive(Default)]
pub struct Tape {
    nodes: Vec<Node>,
    grads: Vec<Option<View>>,
    /// The stored gradient is with respect to the pre-activation (an activation's derivative
    /// was fused into the op that produced it).
    preact: Vec<bool>,
    /// Gradient buffers owned by the tape.
    temps: Vec<View>,
    /// Anomaly detection: when set, [`Tape::backward`] checks every op's output and every
    /// gradient, in the order they were produced, and records the first non-finite one here
    /// (tag: the node's index, plus [`GRADIENT_TAG`] for a gradient).
    pub anomaly: Option<View>,
}

/// Added to a node's index in an anomaly tag when the non-finite value is its gradient.
pub const GRADIENT_TAG: usize = 1 << 20;

impl Tape {
    pub fn new() -> Tape {
        Tape::default()
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn push(&mut self, value: Tensor, op: Op, owned: bool) -> Var {
        let inputs = inputs_of(&op);
        let needs_grad = matches!(op, Op::Param { .. }) || inputs.iter().any(|v| self.nodes[v.0].needs_grad);
        for v in inputs {
            self.nodes[v.0].uses += 1;
        }
        self.nodes.push(Node { value, op, owned, needs_grad, uses: 0 });
        Var(self.nodes.len() - 1)
    }

    fn out(&mut self, dev: &mut Device, shape: &[usize]) -> Result<Tensor> {
        let v = dev.alloc(shape.iter().product())?;
        Ok(Tensor::new(v, shape))
    }

    pub fn value(&self, v: Var) -> &Tensor {
        &self.nodes[v.0].value
    }

    /// Data that needs no gradient, owned by the caller.
    pub fn input(&mut self, t: Tensor) -> Var {
        self.push(t, Op::Leaf, false)
    }

    /// A trainable tensor, owned by the caller; its gradient goes to `grad`.
    pub fn param(&mut self, t: Tensor, grad: View) -> Var {
        assert_eq!(t.len(), grad.len, "gradient view must match the parameter");
        self.push(t, Op::Param { grad }, false)
    }

    /// A constant uploaded from the host, owned by the tape.
    pub fn constant(&mut self, dev: &mut Device, data: &[f32], shape: &[usize]) -> Result<Var> {
        let t = self.out(dev, shape)?;
        dev.write(t.view, data)?;
        Ok(self.push(t, Op::Leaf, true))
    }

    fn matrix(&self, v: Var, what: &str) -> Result<(usize, usize)> {
        let s = &self.nodes[v.0].value.shape;
        ensure!(s.len() == 2, "{what} must be a matrix, got shape {s:?}");
        Ok((s[0], s[1]))
    }

    /// `op(a)·op(b)` in one of the three forms.
    pub fn matmul(&mut self, dev: &mut Device, form: Form, a: Var, b: Var) -> Result<Var> {
        self.matmul_fused(dev, form, a, b, None, Act::Identity)
    }

    fn matmul_fused(
        &mut self,
        dev: &mut Device,
        form: Form,
        a: Var,
        b: Var,
        bias: Option<Var>,
        act: Act,
    ) -> Result<Var> {
        let (ar, ac) = self.matrix(a, "matmul's left operand")?;
        let (br, bc) = self.matrix(b, "matmul's right operand")?;
        let (m, k, k2, n) = match form {
            Form::NN => (ar, ac, br, bc),
            Form::NT => (ar, ac, bc, br),
            Form::TN => (ac, ar, br, bc),
        };
        ensure!(k == k2, "{}: inner sizes differ ({ar}×{ac} and {br}×{bc})", form.name());
        if let Some(bv) = bias {
            ensure!(self.value(bv).len() == n, "bias of length {} for {n} columns", self.value(bv).len());
        }
        let d = Dims { m, k, n };
        let out = self.out(dev, &[m, n])?;
        let epi = Epilogue {
            bias: bias.map(|b| self.value(b).view),
            act: (act != Act::Identity).then_some(act),
            ..Default::default()
        };
        dev.matmul(form, d, self.value(a).view, self.value(b).view, out.view, &epi);
        Ok(self.push(out, Op::Matmul { form, d, a, b, bias, act }, true))
    }

    /// A linear layer as PyTorch defines it: `act(x·Wᵀ + b)` with W of shape [out, in].
    pub fn linear(&mut self, dev: &mut Device, x: Var, w: Var, b: Option<Var>, act: Act) -> Result<Var> {
        self.matmul_fused(dev, Form::NT, x, w, b, act)
    }

    /// `act(x + bias)` with the bias broadcast over rows.
    pub fn bias_act(&mut self, dev: &mut Device, x: Var, bias: Option<Var>, act: Act) -> Result<Var> {
        let shape = self.value(x).shape.clone();
        let cols = *shape.last().unwrap_or(&1);
        if let Some(b) = bias {
            ensure!(self.value(b).len() == cols, "bias of length {} for {cols} columns", self.value(b).len());
        }
        let out = self.out(dev, &shape)?;
        dev.bias_act(self.value(x).view, bias.map(|b| self.value(b).view), out.view, cols, act);
        Ok(self.push(out, Op::BiasAct { x, bias, act }, true))
    }

    pub fn act(&mut self, dev: &mut Device, x: Var, act: Act) -> Result<Var> {
        self.bias_act(dev, x, None, act)
    }

    pub fn binary(&mut self, dev: &mut Device, op: BinaryOp, a: Var, b: Var) -> Result<Var> {
        let shape = self.value(a).shape.clone();
        ensure!(shape == self.value(b).shape, "{op:?}: shapes {:?} and {:?} differ", shape, self.value(b).shape);
        let out = self.out(dev, &shape)?;
        dev.binary(op, self.value(a).view, self.value(b).view, out.view);
        Ok(self.push(out, Op::Binary { op, a, b }, true))
    }

    pub fn add(&mut self, dev: &mut Device, a: Var, b: Var) -> Result<Var> {
        self.binary(dev, BinaryOp::Add, a, b)
    }

    pub fn sub(&mut self, dev: &mut Device, a: Var, b: Var) -> Result<Var> {
        self.binary(dev, BinaryOp::Sub, a, b)
    }

    pub fn mul(&mut self, dev: &mut Device, a: Var, b: Var) -> Result<Var> {
        self.binary(dev, BinaryOp::Mul, a, b)
    }

    pub fn div(&mut self, dev: &mut Device, a: Var, b: Var) -> Result<Var> {
        self.binary(dev, BinaryOp::Div, a, b)
    }

    pub fn unary(&mut self, dev: &mut Device, op: UnaryOp, a: Var) -> Result<Var> {
        let shape = self.value(a).shape.clone();
        let out = self.out(dev, &shape)?;
        dev.unary(op, self.value(a).view, out.view);
        Ok(self.push(out, Op::Unary { op, a }, true))
    }

    pub fn scale(&mut self, dev: &mut Device, a: Var, s: f32) -> Result<Var> {
        self.unary(dev, UnaryOp::Scale(s), a)
    }

    pub fn add_scalar(&mut self, dev: &mut Device, a: Var, s: f32) -> Result<Var> {
        self.unary(dev, UnaryOp::AddScalar(s), a)
    }

    pub fn pow(&mut self, dev: &mut Device, a: Var, p: f32) -> Result<Var> {
        self.unary(dev, UnaryOp::Pow(p), a)
    }

    pub fn sum(&mut self, dev: &mut Device, a: Var) -> Result<Var> {
        self.reduce(dev, a, 1.0)
    }

    pub fn mean(&mut self, dev: &mut Device, a: Var) -> Result<Var> {
        let n = self.value(a).len();
        self.reduce(dev, a, 1.0 / n as f32)
    }

    fn reduce(&mut self, dev: &mut Device, a: Var, scale: f32) -> Result<Var> {
        let out = self.out(dev, &[1])?;
        dev.sum(self.value(a).view, out.view, scale);
        Ok(self.push(out, Op::Sum { a, scale }, true))
    }

    /// Mean softmax cross-entropy of `logits` [rows, classes] against class indices `labels`
    /// (f32, one per row). Adds [Σ row loss, correct count] to `metrics` if given. The result
    /// must be the root of [`Tape::backward`].
    pub fn softmax_ce(&mut self, dev: &mut Device, logits: Var, labels: View, metrics: Option<View>) -> Result<Var> {
        let (rows, cols) = self.matrix(logits, "logits")?;
        ensure!(labels.len == rows, "{} labels for {rows} rows of logits", labels.len);
        let dlogits = if self.nodes[logits.0].needs_grad { Some(self.temp(dev, rows * cols)?) } else { None };
        let loss = self.out(dev, &[1])?;
        let lv = self.value(logits).view;
        dev.softmax_ce(lv, labels, cols, Some(loss.view), dlogits, metrics);
        Ok(self.push(loss, Op::SoftmaxCe { logits, dlogits }, true))
    }

    /// The gradient of the root with respect to `v`, after [`Tape::backward`].
    pub fn grad(&self, v: Var) -> Option<View> {
        self.grads.get(v.0).copied().flatten()
    }

    /// Gradients of `root` (a 1-element value) with respect to every value that needs one.
    /// Parameter gradients land in their gradient views (overwritten, not accumulated across
    /// calls; a parameter the root does not depend on gets zeros).
    pub fn backward(&mut self, dev: &mut Device, root: Var) -> Result<()> {
        ensure!(self.value(root).len() == 1, "backward needs a 1-element root, got shape {:?}", self.value(root).shape);
        let n = self.nodes.len();
        self.grads = vec![None; n];
        self.preact = vec![false; n];
        if let Some(flag) = self.anomaly {
            // Forward outputs in the order the ops ran: the flag keeps the first non-finite one.
            for (i, node) in self.nodes.iter().enumerate().take(root.0 + 1) {
                if !matches!(node.op, Op::Leaf | Op::Param { .. }) {
                    dev.find_nonfinite(node.value.view, flag, i as f32);
                }
            }
        }
        match self.nodes[root.0].op {
            Op::SoftmaxCe { logits, dlogits: Some(d) } => match self.nodes[logits.0].op {
                Op::Param { grad } => {
                    dev.copy(d, grad);
                    self.grads[logits.0] = Some(grad);
                }
                _ => self.grads[logits.0] = Some(d),
            },
            Op::SoftmaxCe { dlogits: None, .. } => {}
            _ => {
                let seed = dev.alloc(1)?;
                dev.fill(seed, 1.0);
                self.temps.push(seed);
                self.grads[root.0] = Some(seed);
            }
        }
        for i in (0..=root.0).rev() {
            let Some(g) = self.grads[i] else { continue };
            let op = self.nodes[i].op.clone();
            match op {
                Op::Leaf | Op::Param { .. } | Op::SoftmaxCe { .. } => {}
                Op::Matmul { form, d, a, b, bias, act } => {
                    let dz = self.pre_activation_grad(dev, i, act, g)?;
                    self.matmul_backward(dev, form, d, a, b, bias, dz)?;
                }
                Op::BiasAct { x, bias, act } => {
                    let dz = self.pre_activation_grad(dev, i, act, g)?;
                    self.contribute(dev, x, |dev, dst| dev.copy(dz, dst))?;
                    if let Some(bv) = bias {
                        let cols = *self.value(x).shape.last().unwrap_or(&1);
                        self.contribute(dev, bv, |dev, dst| dev.col_sum(dz, dst, cols))?;
                    }
                }
                Op::Binary { op, a, b } => self.binary_backward(dev, op, a, b, g, i)?,
                Op::Unary { op, a } => self.unary_backward(dev, op, a, g, i)?,
                Op::Sum { a, scale } => self.contribute(dev, a, |dev, dst| dev.broadcast(g, dst, scale))?,
            }
        }
        if let Some(flag) = self.anomaly {
            // Gradients in the order they were completed (from the root down).
            for i in (0..=root.0).rev() {
                if let Some(g) = self.grads[i] {
                    dev.find_nonfinite(g, flag, (GRADIENT_TAG + i) as f32);
                }
            }
        }
        // Parameters the root does not depend on get zero gradients, not stale ones.
        for i in 0..n {
            if let (Op::Param { grad }, None) = (&self.nodes[i].op, self.grads[i]) {
                dev.fill(*grad, 0.0);
            }
        }
        Ok(())
    }

    /// dZ from d(act(Z)): reuse it when an earlier fusion already applied act'.
    fn pre_activation_grad(&mut self, dev: &mut Device, i: usize, act: Act, g: View) -> Result<View> {
        if act == Act::Identity || self.preact[i] {
            return Ok(g);
        }
        let dz = self.temp(dev, g.len)?;
        dev.act_backward(act, self.nodes[i].value.view, g, dz);
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
        (act != Act::Identity && node.uses == 1 && self.grads[v.0].is_none()).then_some((act, node.value.view))
    }

    #[allow(clippy::too_many_arguments)]
    fn matmul_backward(
        &mut self,
        dev: &mut Device,
        form: Form,
        d: Dims,
        a: Var,
        b: Var,
        bias: Option<Var>,
        dz: View,
    ) -> Result<()> {
        let (av, bv) = (self.value(a).view, self.value(b).view);
        let Dims { m, k, n } = d;
        let bias_needs = bias.filter(|bv| self.nodes[bv.0].needs_grad);
        let mut bias_done = false;
        // Gradient of the weight-like right operand first, so a linear layer's bias gradient
        // rides along as the column sums of dZ.
        if self.nodes[b.0].needs_grad {
            let fusable = bias_needs.filter(|bv| form == Form::NT && self.grads[bv.0].is_none());
            let bias_dst = match fusable {
                Some(bv) => Some(self.grad_dst(dev, bv)?),
                None => None,
            };
            self.contribute(dev, b, |dev, dst| {
                let (f, dd, x, y) = match form {
                    Form::NN => (Form::TN, Dims { m: k, k: m, n }, av, dz),
                    Form::NT => (Form::TN, Dims { m: n, k: m, n: k }, dz, av),
                    Form::TN => (Form::NN, Dims { m: k, k: m, n }, av, dz),
                };
                dev.matmul(f, dd, x, y, dst, &Epilogue { a_colsum: bias_dst, ..Default::default() });
            })?;
            if let (Some(bvar), Some(dst)) = (bias_needs, bias_dst) {
                self.grads[bvar.0] = Some(dst);
                bias_done = true;
            }
        }
        if self.nodes[a.0].needs_grad {
            let fused = self.fusable_act(a);
            self.contribute(dev, a, |dev, dst| {
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
            self.contribute(dev, bvar, |dev, dst| dev.col_sum(dz, dst, n))?;
        }
        Ok(())
    }

    fn binary_backward(&mut self, dev: &mut Device, op: BinaryOp, a: Var, b: Var, g: View, i: usize) -> Result<()> {
        let (av, bv, cv) = (self.value(a).view, self.value(b).view, self.nodes[i].value.view);
        if self.nodes[a.0].needs_grad {
            match op {
                BinaryOp::Add | BinaryOp::Sub => self.contribute(dev, a, |dev, dst| dev.copy(g, dst))?,
                BinaryOp::Mul => self.contribute(dev, a, |dev, dst| dev.binary(BinaryOp::Mul, g, bv, dst))?,
                BinaryOp::Div => self.contribute(dev, a, |dev, dst| dev.binary(BinaryOp::Div, g, bv, dst))?,
            }
        }
        if self.nodes[b.0].needs_grad {
            match op {
                BinaryOp::Add => self.contribute(dev, b, |dev, dst| dev.copy(g, dst))?,
                BinaryOp::Sub => self.contribute(dev, b, |dev, dst| dev.unary(UnaryOp::Scale(-1.0), g, dst))?,
                BinaryOp::Mul => self.contribute(dev, b, |dev, dst| dev.binary(BinaryOp::Mul, g, av, dst))?,
                BinaryOp::Div => {
                    // d(a/b)/db = −(a/b)/b = −c/b.
                    let t = self.temp(dev, g.len)?;
                    dev.binary(BinaryOp::Div, cv, bv, t);
                    let u = self.temp(dev, g.len)?;
                    dev.binary(BinaryOp::Mul, t, g, u);
                    self.contribute(dev, b, |dev, dst| dev.unary(UnaryOp::Scale(-1.0), u, dst))?;
                }
            }
        }
        Ok(())
    }

    fn unary_backward(&mut self, dev: &mut Device, op: UnaryOp, a: Var, g: View, i: usize) -> Result<()> {
        if !self.nodes[a.0].needs_grad {
            return Ok(());
        }
        let (av, cv) = (self.value(a).view, self.nodes[i].value.view);
        // The local derivative, or None when it is a constant scale.
        let local = match op {
            UnaryOp::Scale(s) => return self.contribute(dev, a, |dev, dst| dev.unary(UnaryOp::Scale(s), g, dst)),
            UnaryOp::AddScalar(_) => return self.contribute(dev, a, |dev, dst| dev.copy(g, dst)),
            UnaryOp::Exp => cv,
            UnaryOp::Log => return self.contribute(dev, a, |dev, dst| dev.binary(BinaryOp::Div, g, av, dst)),
            UnaryOp::Pow(p) => {
                let t = self.temp(dev, g.len)?;
                dev.unary(UnaryOp::Pow(p - 1.0), av, t);
                let u = self.temp(dev, g.len)?;
                dev.unary(UnaryOp::Scale(p), t, u);
                u
            }
            UnaryOp::Sin => {
                let t = self.temp(dev, g.len)?;
                dev.unary(UnaryOp::Cos, av, t);
                t
            }
            UnaryOp::Cos => {
                let t = self.temp(dev, g.len)?;
                dev.unary(UnaryOp::Sin, av, t);
                let u = self.temp(dev, g.len)?;
                dev.unary(UnaryOp::Scale(-1.0), t, u);
                u
            }
        };
        self.contribute(dev, a, |dev, dst| dev.binary(BinaryOp::Mul, g, local, dst))
    }

    fn temp(&mut self, dev: &mut Device, len: usize) -> Result<View> {
        let t = dev.alloc(len)?;
        self.temps.push(t);
        Ok(t)
    }

    /// Where the first gradient contribution to `v` is written.
    fn grad_dst(&mut self, dev: &mut Device, v: Var) -> Result<View> {
        match self.nodes[v.0].op {
            Op::Param { grad } => Ok(grad),
            _ => self.temp(dev, self.nodes[v.0].value.len()),
        }
    }

    /// Add a gradient contribution to `v`: the first one is written in place, later ones are
    /// computed aside and summed (never reading and writing one buffer in one kernel).
    fn contribute(&mut self, dev: &mut Device, v: Var, compute: impl FnOnce(&mut Device, View)) -> Result<()> {
        match self.grads[v.0] {
            None => {
                let dst = self.grad_dst(dev, v)?;
                compute(dev, dst);
                self.grads[v.0] = Some(dst);
            }
            Some(existing) => {
                let len = existing.len;
                let part = self.temp(dev, len)?;
                compute(dev, part);
                let total = self.temp(dev, len)?;
                dev.binary(BinaryOp::Add, existing, part, total);
                match self.nodes[v.0].op {
                    Op::Param { grad } => dev.copy(total, grad),
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
            Op::SoftmaxCe { .. } => "softmax cross-entropy".to_string(),
        };
        format!("{what} op {i} ({op}, shape {shape})")
    }

    /// Release every buffer the tape owns to the device's pool and clear it.
    pub fn reset(&mut self, dev: &mut Device) {
        for node in self.nodes.drain(..) {
            if node.owned {
                dev.release(node.value.view);
            }
        }
        for t in self.temps.drain(..) {
            dev.release(t);
        }
        self.grads.clear();
        self.preact.clear();
    }
}

fn inputs_of(op: &Op) -> Vec<Var> {
    match *op {
        Op::Leaf | Op::Param { .. } => vec![],
        Op::Matmul { a, b, bias, .. } => [Some(a), Some(b), bias].into_iter().flatten().collect(),
        Op::BiasAct { x, bias, .. } => [Some(x), bias].into_iter().flatten().collect(),
        Op::Binary { a, b, .. } => vec![a, b],
        Op::Unary { a, .. } | Op::Sum { a, .. } => vec![a],
        Op::SoftmaxCe { logits, .. } => vec![logits],
    }
}
