//! The application built on the engine: the lecture's case studies and the tools behind the
//! `descent` command. Each module is a client of the engine's public API, nothing more.
//!
//! - [`train`]: the training loop (device-resident data, one submit per step, checkpoints)
//! - `auto_device`: `--device auto` for training, the faster of a hardware GPU and the CPU by a
//!   trial of a few steps (native only)
//! - [`tabular`]: the same loop over your own f32 data (`.npy`), classification or regression
//! - [`checkpoint`]: the safetensors checkpoint and export format
//! - [`compare`]: which optimizers and settings each case study runs
//! - [`functions`], [`descend`]: the lecture's 1-D and 2-D functions and optimizer walks on them
//! - [`replay`]: an optimizer on a JSON spec of gradients, for comparing with PyTorch
//! - [`parity`]: every kernel on a device against the f64 reference
//! - [`bench`](mod@bench): timing, bandwidth and the unfused baseline
//! - [`metrics`]: metrics.json / metrics.csv and tables; with feature `app`, figures
//! - `plot` (feature `app`): PNG line charts and contour maps

#[cfg(not(target_arch = "wasm32"))]
pub mod auto_device;
pub mod bench;
pub mod checkpoint;
pub mod clip;
pub mod compare;
pub mod descend;
pub mod functions;
pub mod metrics;
pub mod parity;
#[cfg(feature = "app")]
pub mod plot;
pub mod replay;
pub mod tabular;
pub mod train;
