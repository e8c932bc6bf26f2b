//! The op set: one trait, [`Backend`], implemented by the rayon CPU backend ([`cpu`]) and the
//! WGSL backend ([`gpu`]). Autograd, layers and training talk to a [`Device`], which wraps a
//! backend and recycles buffers so a training step allocates nothing after the first one.
//!
//! Ops are recorded, not necessarily executed, when called: the GPU backend queues them into
//! one command encoder and submits on [`Backend::finish`] or a read. Nothing here reads data back
//! unless asked to.
//!
//! Reads and waits are futures ([`Pending`]): a browser cannot block, so there they are awaited
//! ([`Device::read_async`], [`Device::finish_async`]); natively [`Device::read`] and
//! [`Device::sync`] wait for the same futures with [`wait`].
//!
//! The map: [`ops`] names the ops, [`op_set`] is the trait, [`device`] the facade, [`pending`]
//! the readback futures, [`owner`] the check that a view belongs to the device and to a live
//! allocation, [`host`] the facts about this machine; [`cpu`] and [`gpu`] are the two
//! backends, [`optim_kernel`] the optimizer kernels' typed contract, [`quant`] the low-bit
//! state formats and [`factored`] Adafactor's per-tensor layout. See ARCHITECTURE.md.

pub mod contract;
pub mod cpu;
pub mod device;
pub mod factored;
pub mod gpu;
pub mod grouped_step;
pub mod host;
pub mod op_set;
pub mod ops;
pub mod optim_kernel;
pub mod optim_params;
pub mod owner;
pub mod pending;
pub mod quant;

pub use crate::tensor::View;
pub use device::{Device, DeviceChoice, TooLarge};
pub use host::host_available_bytes;
pub use op_set::{Backend, Capacity, Counters, MaybeSend};
pub use ops::{
    check_labels, class_index, Act, Axis, Bcast, BinaryOp, ByteBuffer, CeOutputs, Dims, DropoutMask, Epilogue, Form,
    Gather, Layout, NewtonSchulz, UnaryOp, IGNORE_INDEX,
};
pub use optim_kernel::{Blockwise8, Factored, GradCheck, GroupedStep, OptimBits, OptimStep, Slot};
pub use pending::{wait, Pending};

/// The CPU matmul kernels, at their former path.
pub use cpu::matmul as cpu_matmul;
/// The rayon optimizer loops, at their former path.
pub use cpu::optim as cpu_optim;
