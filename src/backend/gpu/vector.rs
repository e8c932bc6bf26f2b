//! Whole-vector operations (`shaders/vector.wgsl`): the inverse norm into a device scalar (two
//! passes through the backend's partials buffer), scaling by it, and a·x + b·y, every buffer
//! bound whole; and the bench's vectorised streaming kernel (`shaders/stream.wgsl`), split into
//! chunks past one binding.

use super::chunk::Operand;
use super::kernels::{K_AXPBY, K_CLAMP, K_CLIP_COEF, K_INV_NORM, K_SCALE_BY, K_STREAM, K_SUMSQ_PARTIAL};
use super::params::{word, words_of, StreamParams, VectorParams};
use super::{u, GpuBackend, WG};
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
        member_len: u(n.max(1)),
    })
}

impl GpuBackend {
    /// Two passes: the partial sums of squares, then their total's inverse root.
    pub(super) fn launch_inv_norm(&mut self, x: View, out: View, eps: f32) {
        self.launch_inv_norm_batched(x, 1, out, eps)
    }

    /// [`GpuBackend::launch_inv_norm`] for `members` vectors laid out one after another in
    /// `x`, in the same two passes (grid y counts the members), each member's partials and sum
    /// in the order it has alone.
    pub(super) fn launch_inv_norm_batched(&mut self, x: View, members: usize, out: View, eps: f32) {
        let len = x.len / members.max(1);
        let groups = len.div_ceil(WG as usize).clamp(1, 256);
        let Some(partials) = self.partials_for(members * groups) else { return };
        let uni = uniform(len, x, View::whole(partials, members * groups), 0, 0.0, 0.0, 0.0);
        self.dispatch(K_SUMSQ_PARTIAL, &uni, &[x.buf, partials], [u(groups), u(members), 1]);
        let uni = uniform(groups, View::whole(partials, members * groups), out, out.offset, 0.0, 0.0, eps);
        self.dispatch(K_INV_NORM, &uni, &[partials, out.buf], [1, u(members), 1]);
    }

    /// `y_i ← y_i · s[i]` for `members` pieces of `y` laid out one after another.
    pub(super) fn launch_scale_by_batched(&mut self, y: View, members: usize, s: View) {
        let mut uni = uniform(y.len, s, y, s.offset, 0.0, 0.0, 0.0);
        uni[word!(VectorParams, member_len)] = u((y.len / members.max(1)).max(1));
        let grid = self.grid(y.len);
        self.dispatch(K_SCALE_BY, &uni, &[s.buf, y.buf], grid);
    }

    /// The partial sums' buffer, holding at least `floats` (grown when a batch needs more).
    /// None, with the error logged, when it cannot be made.
    fn partials_for(&mut self, floats: usize) -> Option<usize> {
        let held = Some((self.partials, self.partials_len as u64 * 4));
        let (buf, bytes) = self.grown(held, floats as u64 * 4, "a batch of norms' partial sums")?;
        (self.partials, self.partials_len) = (buf, bytes as usize / 4);
        Some(buf)
    }

    pub(super) fn launch_clip_coef(&mut self, x: View, out: View, max_norm: f32) {
        let partials = self.launch_sumsq_partials(x);
        let uni = uniform(partials.len, partials, out, out.offset, max_norm, 0.0, 0.0);
        self.dispatch(K_CLIP_COEF, &uni, &[self.partials, out.buf], [1, 1, 1]);
    }

    /// The first pass of the norm: partial sums of squares into the partials buffer (a fixed
    /// number of workgroups for a given length, so the sum's order depends on the length only).
    fn launch_sumsq_partials(&mut self, x: View) -> View {
        let groups = x.len.div_ceil(WG as usize).clamp(1, 256);
        let partials = View::whole(self.partials, groups);
        let uni = uniform(x.len, x, partials, 0, 0.0, 0.0, 0.0);
        self.dispatch(K_SUMSQ_PARTIAL, &uni, &[x.buf, self.partials], [u(groups), 1, 1]);
        partials
    }

    pub(super) fn launch_scale_by(&mut self, x: View, s: View) {
        let uni = uniform(x.len, s, x, s.offset, 0.0, 0.0, 0.0);
        let grid = self.grid(x.len);
        self.dispatch(K_SCALE_BY, &uni, &[s.buf, x.buf], grid);
    }

    /// In place: X is unread, so the dummy buffer fills its binding (binding `y` there too
    /// would alias the written buffer and cost a scratch copy of all of it).
    pub(super) fn launch_clamp(&mut self, y: View, lo: f32, hi: f32) {
        let uni = uniform(y.len, y, y, 0, lo, hi, 0.0);
        let grid = self.grid(y.len);
        self.dispatch(K_CLAMP, &uni, &[self.dummy_read, y.buf], grid);
    }

    /// `y = scale·x` in vec4s, four per invocation (`Device::stream_scale` proved the views
    /// hold whole vec4s).
    pub(super) fn launch_stream(&mut self, x: View, y: View, scale: f32) {
        let uni = words_of(&StreamParams { n4: u(y.len / 4), x_off4: u(x.offset / 4), y_off4: u(y.offset / 4), scale });
        let vec4 =
            |v: View, w: usize| Operand { buf: v.buf, offset: v.offset / 4, elem_bytes: 16, offset_word: Some(w) };
        let operands = [vec4(x, word!(StreamParams, x_off4)), vec4(y, word!(StreamParams, y_off4))];
        self.launch_1d(K_STREAM, uni, word!(StreamParams, n4), &operands, y.len / 4, 4);
    }

    pub(super) fn launch_axpby(&mut self, alpha: f32, x: View, beta: f32, y: View) {
        let uni = uniform(y.len, x, y, 0, alpha, beta, 0.0);
        let grid = self.grid(y.len);
        self.dispatch(K_AXPBY, &uni, &[x.buf, y.buf], grid);
    }
}
