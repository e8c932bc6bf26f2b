//! Whole-vector operations (`shaders/vector.wgsl`): the inverse norm into a device scalar,
//! scaling by it, and a·x + b·y. Every buffer is bound whole.

use super::kernels::{K_AXPBY, K_INV_NORM, K_SCALE_BY};
use super::params::{words_of, VectorParams};
use super::{u, GpuBackend};
use crate::tensor::View;

fn uniform(n: usize, x: View, y: View, s_off: usize, alpha: f32, beta: f32, eps: f32) -> Vec<u32> {
    words_of(&VectorParams {
        n: u(n),
        x_off: u(x.offset),
        y_off: u(y.offset),
        s_off: u(s_off),
        alpha,
        beta,
        eps,
        pad0: 0,
    })
}

impl GpuBackend {
    pub(super) fn launch_inv_norm(&mut self, x: View, out: View, eps: f32) {
        let uni = uniform(x.len, x, out, out.offset, 0.0, 0.0, eps);
        self.dispatch(K_INV_NORM, &uni, &[x.buf, out.buf], [1, 1, 1]);
    }

    pub(super) fn launch_scale_by(&mut self, x: View, s: View) {
        let uni = uniform(x.len, s, x, s.offset, 0.0, 0.0, 0.0);
        let grid = self.grid(x.len);
        self.dispatch(K_SCALE_BY, &uni, &[s.buf, x.buf], grid);
    }

    pub(super) fn launch_axpby(&mut self, alpha: f32, x: View, beta: f32, y: View) {
        let uni = uniform(y.len, x, y, 0, alpha, beta, 0.0);
        let grid = self.grid(y.len);
        self.dispatch(K_AXPBY, &uni, &[x.buf, y.buf], grid);
    }
}
