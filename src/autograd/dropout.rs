//! Dropout on the tape: `a ⊙ mask` with the mask drawn on the device from Philox by element
//! index (see [`DropoutMask`]), and its gradient the same product with the same mask, recomputed
//! from the seed rather than stored.

use super::*;
use crate::backend::DropoutMask;

impl Tape<'_> {
    /// PyTorch's `F.dropout(a, p, training=True)`: each element zeroed with probability
    /// `mask.p()`, the rest scaled by `1/(1 − p)`. The mask depends only on the mask's seed and
    /// offset and the element's index, so it is the same on both backends; give each call its
    /// own offset (as [`crate::nn::Dropout`] does) for a fresh mask. In eval mode do not call it:
    /// dropout is then the identity.
    pub fn dropout(&mut self, a: Var, mask: DropoutMask) -> Result<Var> {
        let shape = self.node(a)?.value.shape.clone();
        let out = self.out(&shape)?;
        let av = self.value(a).view;
        self.dev.dropout(av, out.view, &mask);
        Ok(self.push(out, Op::Dropout { a, mask }, true))
    }
}
