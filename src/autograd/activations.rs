//! The activations whose derivative needs their input, so that they cannot ride in a matmul's
//! fused epilogue (which keeps only its output): GELU in PyTorch's two forms and SiLU, as
//! unary ops after a `linear(…, Act::Identity)`. Their gradients come from
//! [`Device::unary_grad`](crate::backend::Device::unary_grad).

use super::*;

impl Tape<'_> {
    /// PyTorch's `gelu(a)`: `½·a·(1 + erf(a/√2))`.
    pub fn gelu(&mut self, a: Var) -> Result<Var> {
        self.unary(UnaryOp::Gelu, a)
    }

    /// PyTorch's `gelu(a, approximate='tanh')`: `½·a·(1 + tanh(√(2/π)·(a + 0.044715·a³)))`.
    pub fn gelu_tanh(&mut self, a: Var) -> Result<Var> {
        self.unary(UnaryOp::GeluTanh, a)
    }

    /// PyTorch's `silu(a)` (swish): `a·σ(a)`.
    pub fn silu(&mut self, a: Var) -> Result<Var> {
        self.unary(UnaryOp::Silu, a)
    }
}
