//! Reductions (`shaders/reduce.wgsl`, `shaders/softmax_ce.wgsl`): row and column sums, the
//! two-pass total, and the fused softmax cross-entropy.

use super::kernels::{K_COL_SUM, K_MAX_COLS, K_MAX_ROWS, K_ROW_SUM, K_SOFTMAX_CE, K_SUM, K_SUM_PARTIAL};
use super::params::{words_of, ReduceParams, SoftmaxCeParams};
use super::{u, GpuBackend, WG};
use crate::backend::ops::{Axis, CeOutputs};
use crate::tensor::View;

/// The reduction kernels' uniform.
fn reduce_uniform(n: usize, cols: usize, x_off: usize, out_off: usize, scale: f32) -> Vec<u32> {
    words_of(&ReduceParams {
        n: u(n),
        cols: u(cols),
        x_off: u(x_off),
        out_off: u(out_off),
        scale,
        argmax: 0,
        pad1: 0,
        pad2: 0,
    })
}

impl GpuBackend {
    /// Sums along an axis of a row-major matrix, times `scale`.
    pub(super) fn launch_sum_axis(&mut self, x: View, out: View, cols: usize, axis: Axis, scale: f32) {
        let cols = cols.max(1);
        let uni = reduce_uniform(x.len, cols, x.offset, out.offset, scale);
        let (kern, n) = match axis {
            Axis::Rows => (K_COL_SUM, cols),
            Axis::Cols => (K_ROW_SUM, x.len / cols),
        };
        let grid = self.grid(n);
        self.dispatch(kern, &uni, &[x.buf, out.buf], grid);
    }

    /// Maxima (or the first maximum's index) along an axis of a row-major matrix.
    pub(super) fn launch_max_axis(&mut self, x: View, out: View, cols: usize, axis: Axis, argmax: bool) {
        let cols = cols.max(1);
        let uni = words_of(&ReduceParams {
            n: u(x.len),
            cols: u(cols),
            x_off: u(x.offset),
            out_off: u(out.offset),
            scale: 1.0,
            argmax: argmax as u32,
            pad1: 0,
            pad2: 0,
        });
        let (kern, n) = match axis {
            Axis::Rows => (K_MAX_COLS, cols),
            Axis::Cols => (K_MAX_ROWS, x.len / cols),
        };
        let grid = self.grid(n);
        self.dispatch(kern, &uni, &[x.buf, out.buf], grid);
    }

    /// The total of `a` times `scale`, in two passes (per-workgroup partials, then one workgroup).
    pub(super) fn launch_sum(&mut self, a: View, out: View, scale: f32) {
        let groups = a.len.div_ceil(WG as usize).clamp(1, 256);
        let uni = reduce_uniform(a.len, 1, a.offset, 0, 0.0);
        self.dispatch(K_SUM_PARTIAL, &uni, &[a.buf, self.partials], [u(groups), 1, 1]);
        let uni = reduce_uniform(groups, 1, 0, out.offset, scale);
        self.dispatch(K_SUM, &uni, &[self.partials, out.buf], [1, 1, 1]);
    }

    /// Softmax cross-entropy in one pass: the mean loss, the logits' gradient and the metrics, each optional.
    pub(super) fn launch_softmax_ce(
        &mut self,
        logits: View,
        labels: View,
        cols: usize,
        ignore_index: i32,
        out: CeOutputs,
    ) {
        let CeOutputs { loss, dlogits, metrics } = out;
        let rows = logits.len / cols;
        let pick = |v: Option<View>, dummy: usize| v.map_or((dummy, 0), |v| (v.buf, v.offset));
        let (lb, lo) = pick(loss, self.dummy_write[0]);
        let (db, dof) = pick(dlogits, self.dummy_write[1]);
        let (mb, mo) = pick(metrics, self.dummy_write[2]);
        let flags = loss.is_some() as u32 | (dlogits.is_some() as u32) << 1 | (metrics.is_some() as u32) << 2;
        let uni = words_of(&SoftmaxCeParams {
            rows: u(rows),
            cols: u(cols),
            logits_off: u(logits.offset),
            labels_off: u(labels.offset),
            loss_off: u(lo),
            d_off: u(dof),
            metrics_off: u(mo),
            flags,
            ignore_index: ignore_index as f32,
            pad0: 0,
            pad1: 0,
            pad2: 0,
        });
        self.dispatch(K_SOFTMAX_CE, &uni, &[logits.buf, labels.buf, lb, db, mb], [1, 1, 1]);
    }
}
