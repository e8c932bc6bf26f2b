//! Maxima and arg-maxima along an axis, and softmax / log-softmax along each row, built from
//! the tape's own ops with the row maximum as a shift no gradient flows through (log-softmax
//! does not change when a row is shifted, so the shift needs none).

use super::*;

impl Tape<'_> {
    /// The maxima of the matrix `a` along `axis`, shaped as [`Tape::sum_axis`] shapes its sums
    /// (PyTorch's `amax(dim, keepdim=True)`); a NaN is the maximum. No gradient flows through
    /// it, so on a value that needs one it is an `Err` (softmax and log-softmax need none: use
    /// [`Tape::log_softmax`]).
    pub fn max_axis(&mut self, a: Var, axis: Axis) -> Result<Var> {
        ensure!(
            !self.node(a)?.needs_grad,
            "max_axis has no gradient, and its input needs one: take it of a value that needs none (the tape's input, or a value read back), or use log_softmax / softmax"
        );
        self.extreme(a, axis, false)
    }

    /// The index of the first maximum of the matrix `a` along `axis`, as an f32, shaped as
    /// [`Tape::sum_axis`] shapes its sums (PyTorch's `argmax(dim, keepdim=True)`): a value
    /// without a gradient, such as a prediction.
    pub fn argmax_axis(&mut self, a: Var, axis: Axis) -> Result<Var> {
        self.extreme(a, axis, true)
    }

    fn extreme(&mut self, a: Var, axis: Axis, argmax: bool) -> Result<Var> {
        let (m, n) = self.matrix(a, "a maximum's input")?;
        ensure!(m > 0 && n > 0, "the maximum of an empty {m}×{n} matrix");
        let shape = match axis {
            Axis::Rows => [1, n],
            Axis::Cols => [m, 1],
        };
        let out = self.out(&shape)?;
        let av = self.value(a).view;
        self.dev.max_axis(av, out.view, n, axis, argmax);
        Ok(self.push(out, Op::Extreme { a, axis, argmax }, true))
    }

    /// `log(softmax(a))` along each row of the matrix `a` (PyTorch's `log_softmax(a, dim=1)`):
    /// `z − max − log Σ exp(z − max)`, exact for any magnitude of the row.
    pub fn log_softmax(&mut self, a: Var) -> Result<Var> {
        self.matrix(a, "log_softmax's input")?;
        let shift = self.extreme(a, Axis::Cols, false)?;
        let z = self.sub(a, shift)?;
        let e = self.unary(UnaryOp::Exp, z)?;
        let total = self.sum_axis(e, Axis::Cols)?;
        let log_total = self.unary(UnaryOp::Log, total)?;
        self.sub(z, log_total)
    }

    /// `softmax(a)` along each row of the matrix `a` (PyTorch's `softmax(a, dim=1)`).
    pub fn softmax(&mut self, a: Var) -> Result<Var> {
        let l = self.log_softmax(a)?;
        self.unary(UnaryOp::Exp, l)
    }
}
