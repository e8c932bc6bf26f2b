//! descent: a hand-written tensor engine. WGSL compute shaders through wgpu and a rayon CPU
//! backend implement one op set ([`backend::Backend`]); a reverse-mode autograd
//! ([`autograd::Tape`]) drives matmul, activations, softmax cross-entropy and fused optimizer
//! updates ([`optim`]) over flat `f32` buffers. See ARCHITECTURE.md for the module map.

pub mod autograd;
pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod compare;
pub mod data;
pub mod descend;
pub mod functions;
pub mod metrics;
pub mod nn;
pub mod optim;
pub mod parity;
pub mod plot;
pub mod reference;
pub mod replay;
pub mod rng;
pub mod tensor;
pub mod torch_rng;
pub mod train;
