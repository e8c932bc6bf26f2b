//! The reverse pass: each node's gradient as backend ops, with a matmul's bias and an
//! activation's derivative fused where the graph allows, and gradients summed where a value is
//! used more than once.

use super::*;

impl Tape<'_> {
    /// Gradients of `root` (a 1-element value) with respect to every value that needs one.
    /// Parameter gradients land in their gradient views (overwritten, not accumulated across
    /// calls; a parameter the root does not depend on gets zeros).
    pub fn backward(&mut self, root: Var) -> Result<()> {
        self.backward_into(root, false)
    }

    /// [`Tape::backward`] that adds `root`'s gradients to what the parameters' gradient buffers
    /// already hold, as PyTorch's `backward` does: gradient accumulation over micro-batches.
    /// Zero the buffers first with [`ParamArena::zero_grad`](crate::nn::ParamArena::zero_grad)
    /// (or let one plain `backward` overwrite them). A parameter the root does not reach
    /// keeps its gradient. Costs a few more launches than `backward` (each parameter's share
    /// is summed into its buffer rather than written there).
    pub fn backward_accumulate(&mut self, root: Var) -> Result<()> {
        self.backward_into(root, true)
    }

    fn backward_into(&mut self, root: Var, accumulate: bool) -> Result<()> {
        let len = self.node(root)?.value.len();
        ensure!(
            len == 1,
            "backward needs a 1-element root (a loss), got shape {:?}: reduce it first with Tape::sum or Tape::mean",
            self.value(root).shape
        );
        let n = self.nodes.len();
        self.grads = vec![None; n];
        self.preact = vec![false; n];
        if accumulate {
            // Each parameter's buffer counts as a contribution already made: what backward
            // adds to it is summed in, never written over it.
            for (i, node) in self.nodes.iter().enumerate() {
                if let Op::Param { grad } = node.op {
                    self.grads[i] = Some(grad);
                }
            }
        }
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
            Op::SoftmaxCe { logits, dlogits: Some(d), .. } if accumulate => {
                self.contribute(logits, |dev, dst| dev.copy(d, dst))?
            }
            Op::SoftmaxCe { logits, dlogits: Some(d), .. } => match self.nodes[logits.0].op {
                Op::Param { grad } => {
                    self.dev.copy(d, grad);
                    self.grads[logits.0] = Some(grad);
                }
                _ => self.grads[logits.0] = Some(d),
            },
            Op::SoftmaxCe { dlogits: None, .. } => {}
            // A parameter as the root: its gradient buffer is where the seed goes.
            Op::Param { .. } if accumulate => self.contribute(root, |dev, dst| dev.fill(dst, 1.0))?,
            Op::Param { grad } => {
                self.dev.fill(grad, 1.0);
                self.grads[root.0] = Some(grad);
            }
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
                Op::Leaf | Op::Param { .. } | Op::Extreme { .. } => {}
                Op::SoftmaxCe { logits, dlogits, .. } => {
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
                Op::Dropout { a, mask } => self.contribute(a, |dev, dst| dev.dropout(g, dst, &mask))?,
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
            // d|a| = sign(a) (0 at 0, as PyTorch's subgradient).
            UnaryOp::Abs => {
                let t = self.temp(g.len)?;
                self.dev.unary(UnaryOp::Sign, av, t);
                t
            }
            // Piecewise constant: a zero gradient, as PyTorch's.
            UnaryOp::Sign => return self.contribute(a, |dev, dst| dev.fill(dst, 0.0)),
            UnaryOp::Gelu | UnaryOp::GeluTanh | UnaryOp::Silu => {
                return self.contribute(a, |dev, dst| dev.unary_grad(op, av, g, dst))
            }
        };
        self.contribute(a, |dev, dst| dev.binary(BinaryOp::Mul, g, local, dst))
    }

    pub(super) fn temp(&mut self, len: usize) -> Result<View> {
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
}
