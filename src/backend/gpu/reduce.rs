//! Reductions (`shaders/reduce.wgsl`, `shaders/softmax_ce.wgsl`): row and column sums, the
//! two-pass total, and the fused softmax cross-entropy.

use super::kernels::{K_COL_SUM, K_ROW_SUM, K_SOFTMAX_CE, K_SUM, K_SUM_PARTIAL};
use super::{u, GpuBackend, WG};
use crate::backend::ops::Axis;
use crate::tensor::View;

impl GpuBackend {
    /// Sums along an axis of a row-major matrix, times `scale`.
    pub(super) fn launch_sum_axis(&mut self, x: View, out: View, cols: usize, axis: Axis, scale: f32) {
        let cols = cols.max(1);
        let uni = [u(x.len), u(cols), u(x.offset), u(out.offset), scale.to_bits(), 0, 0, 0];
        let (kern, n) = match axis {
            Axis::Rows => (K_COL_SUM, cols),
            Axis::Cols => (K_ROW_SUM, x.len / cols),
        };
        let grid = self.grid(n);
        self.dispatch(kern, &uni, &[x.buf, out.buf], grid);
    }

    /// The total of `a` times `scale`, in two passes (per-workgroup partials, then one workgroup).
    pub(super) fn launch_sum(&mut self, a: View, out: View, scale: f32) {
        let groups = a.len.div_ceil(WG as usize).clamp(1, 256);
        let uni = [u(a.len), 1, u(a.offset), 0, 0, 0, 0, 0];
        self.dispatch(K_SUM_PARTIAL, &uni, &[a.buf, self.partials], [u(groups), 1, 1]);
        let uni = [u(groups), 1, 0, u(out.offset), scale.to_bits(), 0, 0, 0];
        self.dispatch(K_SUM, &uni, &[self.partials, out.buf], [1, 1, 1]);
    }

    /// Softmax cross-entropy in one pass: the mean loss, the logits' gradient and the metrics, each optional.
    pub(super) fn launch_softmax_ce(
        &mut self,
        logits: View,
        labels: View,
        cols: usize,
        loss: Option<View>,
        dlogits: Option<View>,
        metrics: Option<View>,
    ) {
        let rows = logits.len / cols;
        let pick = |v: Option<View>, dummy: usize| v.map_or((dummy, 0), |v| (v.buf, v.offset));
        let (lb, lo) = pick(loss, self.dummy_write[0]);
        let (db, dof) = pick(dlogits, self.dummy_write[1]);
        let (mb, mo) = pick(metrics, self.dummy_write[2]);
        let flags = loss.is_some() as u32 | (dlogits.is_some() as u32) << 1 | (metrics.is_some() as u32) << 2;
        let uni = [u(rows), u(cols), u(logits.offset), u(labels.offset), u(lo), u(dof), u(mo), flags];
        self.dispatch(K_SOFTMAX_CE, &uni, &[logits.buf, labels.buf, lb, db, mb], [1, 1, 1]);
    }
}
