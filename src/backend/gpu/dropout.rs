//! Dropout (`shaders/dropout.wgsl`): `y = x ⊙ mask`, the mask drawn from Philox4x32-10 by
//! element index, so a chunked launch past one binding draws the same bits as a single one.

use super::chunk::Operand;
use super::kernels::K_DROPOUT;
use super::params::{word, words_of, DropoutParams};
use super::{u, GpuBackend};
use crate::backend::DropoutMask;
use crate::tensor::View;

impl GpuBackend {
    pub(super) fn launch_dropout(&mut self, x: View, y: View, m: &DropoutMask) {
        let uni = words_of(&DropoutParams {
            n: u(y.len),
            x_off: u(x.offset),
            y_off: u(y.offset),
            first: 0,
            key_lo: m.seed as u32,
            key_hi: (m.seed >> 32) as u32,
            offset_lo: m.offset as u32,
            offset_hi: (m.offset >> 32) as u32,
            threshold: m.threshold(),
            scale: m.scale(),
            pad0: 0,
            pad1: 0,
        });
        let operands = [Operand::at(x, word!(DropoutParams, x_off)), Operand::at(y, word!(DropoutParams, y_off))];
        let (n_word, first_word) = (word!(DropoutParams, n), word!(DropoutParams, first));
        self.launch_1d_at(K_DROPOUT, uni, n_word, Some(first_word), &operands, y.len, 4);
    }
}
