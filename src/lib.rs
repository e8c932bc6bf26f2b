//! descent: a hand-written tensor engine. WGSL compute shaders through wgpu and a rayon CPU
//! backend implement one op set; a reverse-mode autograd drives matmul, activations, softmax
//! cross-entropy and fused optimizer updates over flat `f32` buffers.
//!
//! # The engine
//! - [`tensor`]: storage by handle ([`tensor::View`]) and shapes ([`tensor::Tensor`])
//! - [`backend`]: the op set ([`backend::Backend`]), its rayon and WGSL backends, and
//!   [`backend::Device`], the one way to use them
//! - [`autograd`]: [`autograd::Tape`], which records ops and runs them backwards
//! - [`nn`]: layers whose parameters live in one arena ([`nn::ParamArena`], [`nn::Mlp`])
//! - [`optim`]: PyTorch's optimizers and schedules as fused kernels ([`optim::Optimizer`])
//! - [`data`]: dataset loaders (IDX, CIFAR-10, image folders)
//! - [`state_dict`]: save and load models and optimizer state as safetensors
//! - [`reference`](mod@reference): the f64 version of every op and the tolerances; [`rng`], [`torch_rng`]:
//!   random inputs and PyTorch's generator
//!
//! # The application
//! [`app`]: the training loop, case studies, parity, benchmarks, replay and checkpoints behind
//! the `descent` command. The command line itself, its progress bars and its figures need the
//! default feature `app`; with `default-features = false` the crate builds without clap,
//! plotters and indicatif.
//!
//! # A training loop
//! A two-layer MLP trained with Adam on a small batch, written against the library:
//!
//! ```
//! use descent::autograd::Tape;
//! use descent::backend::{Act, Device};
//! use descent::nn::Mlp;
//! use descent::optim::{Adam, OptimConfig, Optimizer, Schedule};
//! use descent::tensor::Tensor;
//! use descent::torch_rng::TorchGenerator;
//!
//! # fn main() -> anyhow::Result<()> {
//! let mut dev = Device::cpu(); // or Device::gpu()?
//! let mut rng = TorchGenerator::new(0); // torch.manual_seed(0)
//! let model = Mlp::new(&mut dev, &[4, 16, 3], Act::Relu, &mut rng)?;
//! let adam = OptimConfig::Adam(Adam { lr: 0.01, ..Adam::default() }); // PyTorch's names and defaults
//! let mut opt = Optimizer::new(&mut dev, &model.arena, adam, Schedule::Constant)?;
//!
//! let x = dev.upload(&[0.5, -1.0, 0.2, 0.1, -0.3, 0.8, -0.5, 0.9])?; // 2 rows of 4 features
//! let labels = dev.upload_labels(&[2.0, 0.0], 3)?; // class indices as f32, checked
//! let mut losses = Vec::new();
//! for _ in 0..50 {
//!     let mut tape = Tape::new(&mut dev);
//!     let input = tape.input(Tensor::new(x, &[2, 4])?);
//!     let logits = model.forward(&mut tape, input)?;
//!     let loss = tape.softmax_ce(logits, labels, None)?;
//!     tape.backward(loss)?; // gradients land in model.arena.grads
//!     losses.push(tape.read(loss)?[0]);
//!     drop(tape); // its buffers go back to the device's pool
//!     opt.step(&mut dev, &model.arena)?; // one fused kernel for every parameter
//! }
//! assert!(losses[49] < 0.1 * losses[0]);
//! # Ok(()) }
//! ```
//!
//! `examples/` holds longer ones (a custom loss, linear regression, a fused-Adam benchmark);
//! ARCHITECTURE.md has the module map.

#[warn(missing_docs)]
pub mod autograd;
#[warn(missing_docs)]
pub mod backend;
#[warn(missing_docs)]
pub mod data;
#[warn(missing_docs)]
pub mod message;

pub mod nn;
#[warn(missing_docs)]
pub mod optim;
#[warn(missing_docs)]
pub mod reference;
#[warn(missing_docs)]
pub mod rng;
#[warn(missing_docs)]
pub mod state_dict;
#[warn(missing_docs)]
pub mod tensor;
#[warn(missing_docs)]
pub mod torch_rng;

pub mod app;
