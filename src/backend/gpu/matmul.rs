//! The tiled matmul (`shaders/matmul*.wgsl`): three forms, a fused bias/activation epilogue and
//! the TN form's column sums, with vec4 loads where every operand allows them.

use super::dispatch::Binding;
use super::kernels::{K_MATMUL, K_MATMUL_VEC4};
use super::params::{words_of, MatmulParams};
use super::{u, GpuBackend};
use crate::backend::ops::{Act, Axis, Dims, Epilogue, Form};
use crate::tensor::View;

impl GpuBackend {
    /// `out = epilogue(op(a) · op(b))` for the three forms.
    pub(super) fn launch_matmul(&mut self, form: Form, d: Dims, a: View, b: View, out: View, epi: &Epilogue) {
        let (bias_b, bias_o) = epi.bias.map_or((self.dummy_read, 0), |v| (v.buf, v.offset));
        let (y_b, y_o) = epi.act_grad.map_or((self.dummy_read, 0), |(_, v)| (v.buf, v.offset));
        // The column sums of a TN product are written in the same pass, bound as the range
        // they write when they share the output's buffer (a gradient arena): WebGPU forbids
        // two writable bindings of one buffer whose ranges overlap. If even those ranges
        // overlap, a separate pass sums them.
        let mut bindings: Vec<Binding> = vec![(a.buf, None), (b.buf, None), (bias_b, None), (y_b, None)];
        let (mut out_o, mut cs_o) = (u(out.offset), 0);
        let mut fused_colsum = false;
        match epi.a_colsum {
            Some(cs) if form == Form::TN && cs.buf != out.buf => {
                bindings.extend([(out.buf, None), (cs.buf, None)]);
                (cs_o, fused_colsum) = (u(cs.offset), true);
            }
            Some(cs) if form == Form::TN => {
                let (ob, o_into) = self.sub_range(out.buf, out.offset as u64 * 4, (d.m * d.n) as u64 * 4);
                let (cb, c_into) = self.sub_range(cs.buf, cs.offset as u64 * 4, d.m as u64 * 4);
                let (o, c) = (ob.1.unwrap_or_default(), cb.1.unwrap_or_default());
                if o.0 + o.1 <= c.0 || c.0 + c.1 <= o.0 {
                    bindings.extend([ob, cb]);
                    (out_o, cs_o, fused_colsum) = (u(o_into as usize / 4), u(c_into as usize / 4), true);
                } else {
                    bindings.extend([(out.buf, None), (self.dummy_write[0], None)]);
                }
            }
            _ => bindings.extend([(out.buf, None), (self.dummy_write[0], None)]),
        }
        let uni = words_of(&MatmulParams {
            m: u(d.m),
            k: u(d.k),
            n: u(d.n),
            form: form.code(),
            a_off: u(a.offset),
            b_off: u(b.offset),
            out_off: out_o,
            bias_off: u(bias_o),
            y_off: u(y_o),
            colsum_off: cs_o,
            has_bias: epi.bias.is_some() as u32,
            act: epi.act.unwrap_or(Act::Identity).code(),
            grad_act: epi.act_grad.map_or(0, |(act, _)| act.code() + 1),
            has_colsum: fused_colsum as u32,
            pad0: 0,
            pad1: 0,
        });
        let grid = [u(d.n.div_ceil(64)), u(d.m.div_ceil(64)), 1];
        // vec4 loads when every operand's contiguous dimension and offset allow them.
        let (a_run, b_run) = match form {
            Form::NN => (d.k, d.n),
            Form::NT => (d.k, d.k),
            Form::TN => (d.m, d.n),
        };
        let aligned = [a_run, b_run, a.offset, b.offset].iter().all(|x| x % 4 == 0);
        let kern = if aligned { K_MATMUL_VEC4 } else { K_MATMUL };
        self.dispatch_ranged(kern, &uni, &bindings, grid);
        if let (Some(cs), false) = (epi.a_colsum, fused_colsum) {
            self.launch_sum_axis(a, cs, d.m, Axis::Rows, 1.0);
        }
    }
}
