//! Elementwise kernels (`shaders/elementwise.wgsl`): bias and activation, activation backward,
//! binary and unary ops, fill, expand, the non-finite check.

use super::chunk::Operand;
use super::kernels::*;
use super::params::{word, words_of, ElementwiseParams};
use super::{u, GpuBackend};
use crate::backend::ops::{Act, Bcast, BinaryOp, Layout, UnaryOp};
use crate::tensor::View;

/// The elementwise kernels' uniform: absent operands read a placeholder at offset 0.
#[allow(clippy::too_many_arguments)]
fn elementwise_uniform(
    n: usize,
    cols: usize,
    op: u32,
    act: u32,
    x: Option<View>,
    z: Option<View>,
    out: View,
    param: f32,
) -> Vec<u32> {
    let off = |v: Option<View>| v.map_or(0, |v| u(v.offset));
    words_of(&ElementwiseParams {
        n: u(n),
        cols: u(cols.max(1)),
        op,
        act,
        x_off: off(x),
        z_off: off(z),
        out_off: u(out.offset),
        has_z: z.is_some() as u32,
        param,
        pad0: 0,
        pad1: 0,
        pad2: 0,
    })
}

impl GpuBackend {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn elementwise(
        &mut self,
        kern: Kernel,
        n: usize,
        cols: usize,
        op: u32,
        act: u32,
        x: Option<View>,
        z: Option<View>,
        out: View,
        param: f32,
    ) {
        let uni = elementwise_uniform(n, cols, op, act, x, z, out, param);
        let bufs = [x.map_or(self.dummy_read, |v| v.buf), z.map_or(self.dummy_read, |v| v.buf), out.buf];
        let grid = self.grid(n);
        self.dispatch(kern, &uni, &bufs, grid);
    }

    /// [`GpuBackend::elementwise`] for a kernel that reads every operand at `offset + i`, so
    /// that it splits into chunks past one binding (see [`GpuBackend::launch_1d`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn elementwise_1d(
        &mut self,
        kern: Kernel,
        op: u32,
        act: u32,
        x: Option<View>,
        z: Option<View>,
        out: View,
        param: f32,
    ) {
        let uni = elementwise_uniform(out.len, 1, op, act, x, z, out, param);
        let operand =
            |v: Option<View>, word: usize| v.map_or(Operand::whole(self.dummy_read), |v| Operand::at(v, word));
        let operands = [
            operand(x, word!(ElementwiseParams, x_off)),
            operand(z, word!(ElementwiseParams, z_off)),
            Operand::at(out, word!(ElementwiseParams, out_off)),
        ];
        self.launch_1d(kern, uni, word!(ElementwiseParams, n), &operands, out.len, 1);
    }

    /// `dst[i] = value`.
    pub(super) fn launch_fill(&mut self, dst: View, value: f32) {
        self.elementwise_1d(K_FILL, 0, 0, None, None, dst, value);
    }

    /// `out = act(x + bias)`, the bias broadcast along rows.
    pub(super) fn launch_bias_act(&mut self, x: View, bias: Option<View>, out: View, cols: usize, act: Act) {
        self.elementwise(K_BIAS_ACT, out.len, cols, 0, act.code(), Some(x), bias, out, 0.0);
    }

    /// `dx = dy · act'(y)`, from the activation's output.
    pub(super) fn launch_act_backward(&mut self, act: Act, y: View, dy: View, dx: View) {
        self.elementwise(K_ACT_BACKWARD, dx.len, 1, 0, act.code(), Some(y), Some(dy), dx, 0.0);
    }

    /// `out = a op b`, each operand broadcast by its layout.
    pub(super) fn launch_binary(&mut self, op: BinaryOp, a: View, b: View, out: View, bcast: Bcast) {
        let layouts = bcast.a.code() | bcast.b.code() << 8;
        if bcast == Bcast::NONE {
            return self.elementwise_1d(K_BINARY, op.op_code(), layouts, Some(a), Some(b), out, 0.0);
        }
        self.elementwise(K_BINARY, out.len, bcast.cols, op.op_code(), layouts, Some(a), Some(b), out, 0.0);
    }

    /// `out = op(a)`.
    pub(super) fn launch_unary(&mut self, op: UnaryOp, a: View, out: View) {
        let (code, param) = op.code();
        self.elementwise_1d(K_UNARY, code, 0, Some(a), None, out, param);
    }

    /// `out = g ⊙ op'(a)`.
    pub(super) fn launch_unary_grad(&mut self, op: UnaryOp, a: View, g: View, out: View) {
        self.elementwise_1d(K_UNARY_GRAD, op.op_code(), 0, Some(a), Some(g), out, 0.0);
    }

    /// `out` filled from `src` by its layout, times `scale`.
    pub(super) fn launch_expand(&mut self, src: View, layout: Layout, out: View, cols: usize, scale: f32) {
        self.elementwise(K_EXPAND, out.len, cols, layout.code(), 0, Some(src), None, out, scale);
    }

    /// Write `tag` into `flag` if `src` holds a NaN or an infinity.
    pub(super) fn launch_find_nonfinite(&mut self, src: View, flag: View, tag: f32) {
        self.elementwise(K_FIND_NONFINITE, src.len, 1, 0, 0, Some(src), None, flag, tag);
    }
}
