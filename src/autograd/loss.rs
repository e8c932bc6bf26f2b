//! The losses: mean squared error, and softmax cross-entropy with its fused gradient
//! (PyTorch's `cross_entropy`, `ignore_index` included).

use super::*;

impl Tape<'_> {
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
    /// (f32, one per row), PyTorch's `CrossEntropyLoss()`: rows labelled
    /// [`IGNORE_INDEX`](crate::backend::IGNORE_INDEX) (−100) do not count. Adds [Σ row loss,
    /// correct count] to `metrics` if given. It may sit anywhere in a graph (scaled, summed
    /// with a penalty): its fused gradient is scaled by the gradient that reaches it.
    ///
    /// Labels live on the device, so they are not read here: a label that names no class (7 of
    /// 3 classes, −1, NaN, 1.5) makes the loss, the metrics' loss sum and its row's gradient
    /// NaN rather than a number for some other class. Upload labels with
    /// [`Device::upload_labels`](crate::backend::Device::upload_labels) to get an `Err` naming
    /// the row instead.
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
}
