//! The losses: mean squared error, and softmax cross-entropy with its fused gradient
//! (PyTorch's `cross_entropy`, `ignore_index` included); L1, Huber, binary cross-entropy with
//! logits, cross-entropy against soft targets (a tape value) and with label smoothing, each
//! composed from the tape's ops in a numerically stable form, so their gradients come from
//! theirs.

use super::*;

impl Tape<'_> {
    /// Mean squared error `mean((pred − target)²)`, PyTorch's `MSELoss()`; the shapes must
    /// be equal (PyTorch only warns when they broadcast, which is almost always a bug).
    pub fn mse(&mut self, pred: Var, target: Var) -> Result<Var> {
        let d = self.difference(pred, target, "mse")?;
        let sq = self.mul(d, d)?;
        self.mean(sq)
    }

    /// Mean softmax cross-entropy of `logits` [rows, classes] against class indices `labels`
    /// (f32, one per row), PyTorch's `CrossEntropyLoss()`: rows labelled
    /// [`IGNORE_INDEX`](crate::backend::IGNORE_INDEX) (−100) do not count. Adds [Σ row loss,
    /// correct count] to `metrics` if given. It may sit anywhere in a graph (scaled, summed
    /// with a penalty): its fused gradient is scaled by the gradient that reaches it.
    ///
    /// Labels live on the device, so they are not read here: a label that names no class (7 of
    /// 3 classes, −1, NaN, 1.5) makes the loss, the metrics' loss sum and its row's gradient
    /// NaN rather than a number for some other class, and the next
    /// [`Device::read`](crate::backend::Device::read) (or [`Tape::read`]) that finds a NaN is
    /// an `Err` naming the row, the label and the class count. Upload labels with
    /// [`Device::upload_labels`](crate::backend::Device::upload_labels) to get that `Err`
    /// before anything runs.
    pub fn softmax_ce(&mut self, logits: Var, labels: View, metrics: Option<View>) -> Result<Var> {
        self.softmax_ce_ignoring(logits, labels, metrics, crate::backend::IGNORE_INDEX)
    }

    /// [`Tape::softmax_ce`] with another `ignore_index` (PyTorch's name): rows with that label
    /// add nothing to the loss, its gradient or the metrics, and the mean is over the others.
    pub fn softmax_ce_ignoring(
        &mut self,
        logits: Var,
        labels: View,
        metrics: Option<View>,
        ignore_index: i32,
    ) -> Result<Var> {
        let (rows, cols) = self.matrix(logits, "logits")?;
        ensure!(labels.len == rows, "{} labels for {rows} rows of logits", labels.len);
        let dlogits = if self.nodes[logits.0].needs_grad { Some(self.temp(rows * cols)?) } else { None };
        let loss = self.out(&[1])?;
        let lv = self.value(logits).view;
        let out = CeOutputs { loss: Some(loss.view), dlogits, metrics };
        self.dev.softmax_ce(lv, labels, cols, ignore_index, out);
        Ok(self.push(loss, Op::SoftmaxCe { logits, dlogits, labels, ignore_index }, true))
    }

    /// Mean absolute error `mean(|pred − target|)`, PyTorch's `L1Loss()`; equal shapes. Its
    /// gradient at a zero difference is 0, as PyTorch's.
    pub fn l1(&mut self, pred: Var, target: Var) -> Result<Var> {
        let d = self.difference(pred, target, "l1")?;
        let a = self.unary(UnaryOp::Abs, d)?;
        self.mean(a)
    }

    /// PyTorch's `HuberLoss(delta)`: the mean of `½·d²` where `|d| < δ` and `δ·(|d| − ½δ)`
    /// elsewhere (d = pred − target), written as `½·m² + δ·(|d| − m)` with
    /// `m = min(|d|, δ) = |d| − relu(|d| − δ)`; equal shapes, δ > 0.
    pub fn huber(&mut self, pred: Var, target: Var, delta: f32) -> Result<Var> {
        ensure!(delta.is_finite() && delta > 0.0, "huber: delta must be a finite number > 0, got {delta}");
        let d = self.difference(pred, target, "huber")?;
        let a = self.unary(UnaryOp::Abs, d)?;
        let shifted = self.add_scalar(a, -delta)?;
        let excess = self.act(shifted, Act::Relu)?;
        let m = self.sub(a, excess)?;
        let m2 = self.mul(m, m)?;
        let quadratic = self.scale(m2, 0.5)?;
        let linear = self.scale(excess, delta)?;
        let each = self.add(quadratic, linear)?;
        self.mean(each)
    }

    /// PyTorch's `BCEWithLogitsLoss()`: the mean of `−(y·log σ(z) + (1 − y)·log(1 − σ(z)))`
    /// over logits `z` and targets `y` in [0, 1] of one shape, computed as
    /// `relu(z) − z·y + log(1 + e^(−|z|))`, which no logit overflows.
    pub fn bce_with_logits(&mut self, logits: Var, targets: Var) -> Result<Var> {
        let (sz, st) = (self.shape(logits)?.to_vec(), self.shape(targets)?.to_vec());
        ensure!(sz == st, "bce_with_logits: logits {sz:?} and targets {st:?} differ in shape");
        let pos = self.act(logits, Act::Relu)?;
        let zy = self.mul(logits, targets)?;
        let a = self.unary(UnaryOp::Abs, logits)?;
        let neg = self.scale(a, -1.0)?;
        let e = self.unary(UnaryOp::Exp, neg)?;
        let one_plus = self.add_scalar(e, 1.0)?;
        let softplus = self.unary(UnaryOp::Log, one_plus)?;
        let lin = self.sub(pos, zy)?;
        let each = self.add(lin, softplus)?;
        self.mean(each)
    }

    /// Cross-entropy against soft targets, PyTorch's `cross_entropy(logits, probabilities)`:
    /// the mean over rows of `−Σ_c targets[r, c]·log_softmax(logits)[r, c]`. `targets` is a tape
    /// value of the logits' shape (one-hot rows, smoothed labels, or a teacher's softmax, whose
    /// gradient then flows too).
    pub fn cross_entropy_soft(&mut self, logits: Var, targets: Var) -> Result<Var> {
        let (rows, _) = self.matrix(logits, "logits")?;
        self.soft_ce_over(logits, targets, rows)
    }

    /// PyTorch's `CrossEntropyLoss(label_smoothing=eps)` on class indices `labels` (host
    /// values, one per row; [`IGNORE_INDEX`](crate::backend::IGNORE_INDEX) rows skipped): each
    /// row's target is `(1 − ε)` on its class plus `ε / classes` on every class, and the mean is
    /// over the rows not ignored. Labels are checked as `Device::upload_labels` checks them.
    pub fn cross_entropy_label_smoothing(&mut self, logits: Var, labels: &[f32], eps: f32) -> Result<Var> {
        ensure!((0.0..=1.0).contains(&eps), "label_smoothing must be between 0 and 1, got {eps}");
        let (rows, classes) = self.matrix(logits, "logits")?;
        ensure!(labels.len() == rows, "{} labels for {rows} rows of logits", labels.len());
        crate::backend::check_labels(labels, classes, crate::backend::IGNORE_INDEX)?;
        let mut targets = vec![0f32; rows * classes];
        let mut kept = 0;
        for (r, &l) in labels.iter().enumerate() {
            if l as i32 == crate::backend::IGNORE_INDEX {
                continue;
            }
            kept += 1;
            let row = &mut targets[r * classes..(r + 1) * classes];
            row.iter_mut().for_each(|t| *t = eps / classes as f32);
            row[l as usize] += 1.0 - eps;
        }
        let t = self.constant(&targets, &[rows, classes])?;
        // Every row ignored: PyTorch's mean over no rows is NaN, and so is this.
        self.soft_ce_over(logits, t, kept)
    }

    /// `−Σ targets ⊙ log_softmax(logits) / count`.
    fn soft_ce_over(&mut self, logits: Var, targets: Var, count: usize) -> Result<Var> {
        let (sz, st) = (self.shape(logits)?.to_vec(), self.shape(targets)?.to_vec());
        ensure!(sz == st, "cross-entropy: logits {sz:?} and targets {st:?} differ in shape");
        let logp = self.log_softmax(logits)?;
        let picked = self.mul(targets, logp)?;
        let total = self.sum(picked)?;
        self.scale(total, -1.0 / count as f32)
    }

    /// `pred − target` of two values of one shape, for a loss named `what`.
    fn difference(&mut self, pred: Var, target: Var, what: &str) -> Result<Var> {
        let (sp, st) = (self.shape(pred)?.to_vec(), self.shape(target)?.to_vec());
        ensure!(sp == st, "{what}: prediction {sp:?} and target {st:?} differ in shape (reshape one of them)");
        self.sub(pred, target)
    }
}
