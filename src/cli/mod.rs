//! Subcommands: each in its own file, sharing the optimizer flags defined here.

mod bench;
mod compare;
mod descend;
mod ewa;
mod export;
mod info;
mod parity;
mod progress;
mod replay;
mod train;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use descent::backend::TooLarge;
use descent::message::{KeyError, Message, Setting};
use descent::optim::{OptimBits, OptimConfig, OptimizerName, Schedule};

#[derive(Parser)]
#[command(
    name = "descent",
    version,
    about = "A hand-written tensor engine: WGSL kernels through wgpu, a rayon CPU backend, autograd and fused optimizers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
enum Command {
    /// Train an MLP on a dataset and print one line per epoch.
    Train(train::TrainArgs),
    /// List the GPU adapters wgpu finds and the CPU backend.
    Info(info::InfoArgs),
    /// Run every kernel on the GPU and the CPU against the f64 reference; exit 1 on any failure.
    Parity(parity::ParityArgs),
    /// Replay an optimizer on a JSON spec and print its trajectory as JSON.
    Replay(replay::ReplayArgs),
    /// Run optimizers on the lecture's functions: step tables, curves and contour plots.
    Descend(descend::DescendArgs),
    /// Exponentially weighted averages of a series, raw and bias-corrected.
    Ewa(ewa::EwaArgs),
    /// The lecture's case studies: every optimizer on one MLP, with metrics files and figures.
    Compare(compare::CompareArgs),
    /// Write a checkpoint's weights alone as safetensors, loadable by PyTorch.
    Export(export::ExportArgs),
    /// Benchmarks: optimizer steps (fused vs unfused), matmul GFLOP/s, training epochs.
    Bench(bench::BenchArgs),
}

/// `--device` of the benchmarks, which name their device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchDeviceArg {
    Cpu,
    Gpu,
    /// Accepted so that it can be refused with a reason: a benchmark names its device.
    #[value(hide = true)]
    Auto,
}

/// How a step runs on the CPU backend (`train` and `bench epoch`).
#[derive(Args, Clone, Debug)]
pub struct CpuStepArgs {
    /// auto (row slices on every core where the rule says they pay), data-parallel (slices
    /// whenever the batch holds two and the loss adds up) or per-op (every op split across the
    /// cores). Results do not depend on the thread count either way
    #[arg(long, value_enum, default_value_t = descent::autograd::data_parallel::StepPath::Auto)]
    pub cpu_step: descent::autograd::data_parallel::StepPath,
    /// Rows per slice of a data-parallel step (fixed, whatever the thread count)
    #[arg(long, default_value_t = descent::autograd::data_parallel::SLICE_ROWS)]
    pub slice_rows: usize,
}

impl CpuStepArgs {
    /// Apply the flags to a trainer.
    pub fn apply(&self, t: &mut descent::app::train::Trainer) -> Result<()> {
        t.set_cpu_step(self.cpu_step, self.slice_rows)
            .map_err(|e| anyhow::anyhow!("--slice-rows {}: {e}", self.slice_rows))
    }
}

/// Optimizer and schedule flags, named like the replay JSON keys (PyTorch's names).
#[derive(Args, Clone, Debug)]
pub struct OptimArgs {
    /// Which optimizer (PyTorch's defaults for each hyperparameter not given).
    #[arg(long, default_value = "sgd", value_parser = OneOptimizer)]
    pub optimizer: OptimizerName,
    /// Learning rate (default: PyTorch's for the optimizer).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Width of the optimizer state: 32 (f32), 16 (bfloat16) or 8 (blockwise 8-bit: adam,
    /// adamw, sgd with momentum, rmsprop, adagrad, lion, ademamix). Default 32.
    #[arg(long, value_parser = OneWidth)]
    pub optim_bits: Option<OptimBits>,
    #[command(flatten)]
    pub hyper: HyperArgs,
}

impl OptimArgs {
    pub fn config(&self) -> Result<OptimConfig> {
        let bits = self.optim_bits.unwrap_or(OptimBits::B32);
        // The hyperparameters were checked by the JSON reader; only the width is new here.
        let c = self.hyper.config_for(self.optimizer.name(), self.lr)?.with_optim_bits(bits);
        c.supports(bits).map_err(|e| anyhow::anyhow!("--optim-bits {}: {}", bits.bits(), hyper_flags(&e)))?;
        Ok(c)
    }

    pub fn schedule(&self) -> Result<Schedule> {
        self.hyper.schedule()
    }
}

/// Every optimizer and schedule flag but the optimizer's name and the learning rate, so that
/// subcommands comparing several optimizers or rates can take those two as lists.
///
/// The hyperparameter flags serialize under their JSON names (PyTorch's), the ones given only,
/// so the optimizer's one JSON reader ([`OptimConfig::from_json`]) checks and applies them.
#[derive(Args, Clone, Debug, serde::Serialize)]
pub struct HyperArgs {
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub momentum: Option<f64>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub dampening: Option<f64>,
    /// Nesterov momentum (`--nesterov`, or `--nesterov false` for muon, whose default is true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nesterov: Option<bool>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub weight_decay: Option<f64>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub lr_decay: Option<f64>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub initial_accumulator_value: Option<f64>,
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub alpha: Option<f64>,
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub centered: bool,
    /// Two numbers (three for ademamix): --betas 0.9,0.999
    #[arg(long)]
    #[serde(skip)]
    pub betas: Option<String>,
    /// One number; for adafactor two, (eps1, eps2), eps1 `none` for f32's machine epsilon:
    /// --eps none,1e-3
    #[arg(long)]
    #[serde(skip)]
    pub eps: Option<String>,
    /// Adafactor: 1 − β2 of step t is t^beta2_decay.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub beta2_decay: Option<f64>,
    /// Adafactor: the update's RMS is clipped to d.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub d: Option<f64>,
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub amsgrad: bool,
    /// Ascend instead of descend (PyTorch's `maximize`; every optimizer).
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub maximize: bool,
    /// NAdam's ψ in μ_t = β1·(1 − ½·0.96^(t·ψ)).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub momentum_decay: Option<f64>,
    /// NAdam, RAdam: decay the parameters (NAdamW, RAdamW) instead of an L2 term.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub decoupled_weight_decay: bool,
    /// Adadelta's decay of its running averages.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub rho: Option<f64>,
    /// Rprop's step-size factors on a sign flip and on a kept sign: --etas 0.5,1.2
    #[arg(long)]
    #[serde(skip)]
    pub etas: Option<String>,
    /// Rprop's smallest and largest step sizes: --step-sizes 1e-6,50
    #[arg(long)]
    #[serde(skip)]
    pub step_sizes: Option<String>,
    /// ASGD's decay term λ.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub lambd: Option<f64>,
    /// ASGD's step from which ax averages.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub t0: Option<f64>,
    /// AdEMAMix: steps over which alpha warms up.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t_alpha: Option<u64>,
    /// AdEMAMix: steps over which beta3 warms up.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t_beta3: Option<u64>,
    /// Schedule-Free AdamW's own linear warm-up, in steps.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<u64>,
    /// Schedule-Free AdamW: the step's power in the averaging weight.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub r: Option<f64>,
    /// Muon: Newton–Schulz steps.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ns_steps: Option<u64>,
    /// Muon: (a, b, c) of the Newton–Schulz step: --ns-coefficients 3.4445,-4.775,2.0315
    #[arg(long, allow_hyphen_values = true)]
    #[serde(skip)]
    pub ns_coefficients: Option<String>,
    /// Muon: original, match_rms_adamw or spectral_unclamped.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adjust_lr_fn: Option<String>,
    /// Muon: Newton–Schulz's precision, float32 (the default) or bfloat16 (PyTorch's; CPU only).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ns_dtype: Option<String>,
    /// Muon: with three or more matrices, the first and last go to the auxiliary AdamW (true).
    #[arg(long, value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux_first_last: Option<bool>,
    /// Muon: the auxiliary AdamW's learning rate.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub aux_lr: Option<f64>,
    /// Muon: the auxiliary AdamW's betas: --aux-betas 0.9,0.95
    #[arg(long)]
    #[serde(skip)]
    pub aux_betas: Option<String>,
    /// Muon: the auxiliary AdamW's eps.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub aux_eps: Option<f64>,
    /// Muon: the auxiliary AdamW's weight decay.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub aux_weight_decay: Option<f64>,
    /// Schedule-Free AdamW: the largest rate's power in the averaging weight.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "number")]
    pub weight_lr_power: Option<f64>,
    /// constant, step:STEP_SIZE:GAMMA, exp:GAMMA, expdecay:RATE:STEPS[:staircase],
    /// cosine:T_MAX[:WARMUP[:ETA_MIN]] (steps are optimizer steps).
    #[arg(long, default_value = "constant")]
    #[serde(skip)]
    pub schedule: String,
}

/// A flag's number as JSON; a NaN or infinity as its text, which `config_for` reports.
fn number<S: serde::Serializer>(v: &Option<f64>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match v {
        Some(x) if x.is_finite() => s.serialize_f64(*x),
        Some(x) => s.serialize_str(&x.to_string()),
        None => s.serialize_none(),
    }
}

impl HyperArgs {
    /// The configuration for optimizer `name` at learning rate `lr` (None: PyTorch's default)
    /// with every flag the user gave applied.
    pub fn config_for(&self, name: &str, lr: Option<f64>) -> Result<OptimConfig> {
        let serde_json::Value::Object(mut obj) = serde_json::to_value(self)? else {
            anyhow::bail!("the optimizer flags did not serialize to an object");
        };
        obj.insert("name".into(), name.into());
        if let Some(lr) = lr {
            obj.insert("lr".into(), number(&Some(lr), serde_json::value::Serializer)?);
        }
        for (k, v) in &obj {
            // Every other string here is a number the flag parser could not write as JSON.
            if let (serde_json::Value::String(text), true) =
                (v, !matches!(k.as_str(), "name" | "adjust_lr_fn" | "ns_dtype"))
            {
                anyhow::bail!("--{}: {text} is not a finite number", k.replace('_', "-"));
            }
        }
        // --eps: a number, or Adafactor's pair (eps1 may be none).
        if let Some(text) = &self.eps {
            let parts: Vec<&str> = text.split(',').map(str::trim).collect();
            let bad = || {
                anyhow::anyhow!("--eps {text}: expected a number such as 1e-8, or two for adafactor such as none,1e-3")
            };
            let value = match parts.as_slice() {
                [one] => {
                    let x: f64 = one.parse().map_err(|_| bad())?;
                    number(&Some(x), serde_json::value::Serializer)?
                }
                [a, b] => {
                    let eps1 = if a.eq_ignore_ascii_case("none") {
                        serde_json::Value::Null
                    } else {
                        serde_json::json!(a.parse::<f64>().map_err(|_| bad())?)
                    };
                    serde_json::json!([eps1, b.parse::<f64>().map_err(|_| bad())?])
                }
                _ => return Err(bad()),
            };
            if let serde_json::Value::String(text) = &value {
                anyhow::bail!("--eps: {text} is not a finite number");
            }
            obj.insert("eps".into(), value);
        }
        // Lists of numbers; how many the optimizer takes is the JSON reader's to check.
        let lists = [
            ("betas", &self.betas, "two numbers such as 0.9,0.999 (three for ademamix)"),
            ("etas", &self.etas, "two numbers such as 0.5,1.2"),
            ("step_sizes", &self.step_sizes, "two numbers such as 1e-6,50"),
            ("ns_coefficients", &self.ns_coefficients, "three numbers such as 3.4445,-4.775,2.0315"),
            ("aux_betas", &self.aux_betas, "two numbers such as 0.9,0.95"),
        ];
        for (key, text, example) in lists {
            let Some(b) = text else { continue };
            let flag = format!("--{}", key.replace('_', "-"));
            let parts: Vec<f64> = b
                .split(',')
                .map(|x| x.trim().parse::<f64>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| anyhow::anyhow!("{flag} {b}: expected {example}"))?;
            anyhow::ensure!((2..=3).contains(&parts.len()), "{flag} {b}: expected {example}");
            obj.insert(key.into(), serde_json::json!(parts));
        }
        // Speak of flags, not JSON paths: the error's key `weight_decay` is --weight-decay here.
        OptimConfig::from_json(&serde_json::Value::Object(obj), "optimizer").map_err(|e| {
            match e.downcast_ref::<KeyError>() {
                Some(k) => anyhow::anyhow!(key_error_as_flags(k)),
                None => e,
            }
        })
    }

    pub fn schedule(&self) -> Result<Schedule> {
        Schedule::parse(&self.schedule)
    }
}

/// `--optim-bits`: widths such as `32` or `32,16,8`.
fn parse_bits(s: &str) -> Result<Vec<OptimBits>> {
    let list: Vec<u64> = parse_list(s, "--optim-bits")?;
    anyhow::ensure!(!list.is_empty(), "--optim-bits: give 32, 16 or 8");
    list.into_iter().map(|b| OptimBits::from_bits(b).map_err(|e| anyhow::anyhow!("--optim-bits: {e}"))).collect()
}

/// A value clap could not parse, as our one-line message (clap prints `error: ` and exits 2).
fn flag_error(e: anyhow::Error) -> clap::Error {
    clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{e:#}\n"))
}

/// `--optimizer` of a command that runs one optimizer: parsed by clap into an
/// [`OptimizerName`], its names listed in `--help`, a wrong one refused with the JSON reader's
/// message.
#[derive(Clone, Copy, Debug)]
pub struct OneOptimizer;

impl clap::builder::TypedValueParser for OneOptimizer {
    type Value = OptimizerName;

    fn parse_ref(
        &self,
        _: &clap::Command,
        _: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<OptimizerName, clap::Error> {
        value.to_string_lossy().parse().map_err(|e: anyhow::Error| flag_error(e.context("--optimizer")))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(OptimizerName::ALL.iter().filter_map(ValueEnum::to_possible_value)))
    }
}

/// `--optim-bits` of a command that runs one width: parsed by clap into an [`OptimBits`].
#[derive(Clone, Copy, Debug)]
pub struct OneWidth;

impl clap::builder::TypedValueParser for OneWidth {
    type Value = OptimBits;

    fn parse_ref(
        &self,
        _: &clap::Command,
        _: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<OptimBits, clap::Error> {
        let s = value.to_string_lossy();
        match parse_bits(&s).map_err(flag_error)?.as_slice() {
            [one] => Ok(*one),
            _ => Err(flag_error(anyhow::anyhow!("--optim-bits {s}: this command takes one width"))),
        }
    }
}

/// `--optim-bits` of a command that runs each of several widths: parsed by clap into a list.
#[derive(Clone, Copy, Debug)]
pub struct Widths;

impl clap::builder::TypedValueParser for Widths {
    type Value = Vec<OptimBits>;

    fn parse_ref(
        &self,
        _: &clap::Command,
        _: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> std::result::Result<Vec<OptimBits>, clap::Error> {
        parse_bits(&value.to_string_lossy()).map_err(flag_error)
    }
}

/// Widths as `--optim-bits` spells them: `32,8`.
pub fn widths_label(widths: &[OptimBits]) -> String {
    widths.iter().map(|b| b.bits().to_string()).collect::<Vec<_>>().join(",")
}

/// Parse "128,128" style lists.
pub fn parse_list<T: std::str::FromStr>(s: &str, what: &str) -> Result<Vec<T>> {
    s.split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| x.trim().parse::<T>().map_err(|_| anyhow::anyhow!("{what}: '{x}' is not valid in '{s}'")))
        .collect()
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    // Run the command on one of rayon's workers rather than beside them: the step's serial
    // stretches (small matmuls, bookkeeping) then run on a worker while the other workers sleep,
    // so a 2-core machine runs 2 threads, not 3 competing for its cores.
    descent::backend::host::init_thread_pool();
    let result = rayon::scope(|_| match cli.command {
        Command::Train(a) => train::run(a),
        Command::Info(a) => info::run(a),
        Command::Parity(a) => parity::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Descend(a) => descend::run(a),
        Command::Ewa(a) => ewa::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Export(a) => export::run(a),
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", render_error(&e));
            // Errors raised while checking arguments are usage errors.
            // So are requests larger than the device holds: the size came from a flag.
            if e.downcast_ref::<UsageError>().is_some() || e.downcast_ref::<TooLarge>().is_some() {
                2
            } else {
                1
            }
        }
    }
}

/// An error in what the user asked for (exit code 2), as opposed to one met while running.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Mark an error as a usage error.
pub fn usage<T>(r: Result<T>) -> Result<T> {
    r.map_err(|e| UsageError(render_error(&e)).into())
}

/// How the command line names each setting the library's messages refer to.
pub fn flag(s: Setting) -> &'static str {
    match s {
        Setting::DeviceAuto => "--device auto",
        Setting::DeviceCpu => "--device cpu",
        Setting::DeviceGpu => "--device gpu",
        Setting::DataDir => "--data-dir",
        Setting::Dataset => "--dataset",
        Setting::Epochs => "--epochs",
        Setting::BatchSize => "--batch-size",
        Setting::Hidden => "--hidden",
        Setting::Lr => "--lr",
        Setting::Shuffle => "--shuffle",
        Setting::Params => "--params",
        Setting::Shapes => "--shapes",
        Setting::Lengths => "--lengths",
        Setting::BlockwiseLengths => "--blockwise-lengths",
        Setting::Optimizers => "--optimizers",
        Setting::FunctionList => "descent descend --list",
        // A setting added to the library before the command line names it.
        other => other.api_name(),
    }
}

/// How the optimizer flags name a setting: a hyperparameter as its flag's word
/// (`weight-decay`), the rest as [`flag`] does.
fn hyper_flag(s: Setting) -> &'static str {
    match s {
        Setting::Hyper(k) => k.flag_word(),
        other => flag(other),
    }
}

/// An error about the optimizer flags' configuration, its hyperparameters named by their
/// flags' words.
pub fn hyper_flags(e: &anyhow::Error) -> String {
    Message::of_error(e).render(&hyper_flag)
}

/// An error in the optimizer flags' configuration, its key named by its flag (`--weight-decay:
/// expected a number`) and the hyperparameters in its message by their flags' words.
fn key_error_as_flags(e: &KeyError) -> String {
    let message = e.message.render(&hyper_flag);
    match &e.key {
        Some(Ok(k)) => format!("{}: {message}", k.flag()),
        Some(Err(other)) => format!("{}.{other}: {message}", e.path),
        None => message,
    }
}

/// A library message with its settings named by their flags.
pub fn flags(m: &Message) -> String {
    m.render(&flag)
}

/// An error's whole chain (as `{:#}` shows it) with each setting named by its flag.
pub fn render_error(e: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in e.chain() {
        parts.push(match (cause.downcast_ref::<Message>(), cause.downcast_ref::<TooLarge>()) {
            (Some(m), _) => flags(m),
            (None, Some(t)) => flags(&t.message()),
            (None, None) => cause.to_string(),
        });
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every hyperparameter key is an optimizer flag, spelled as `HyperKey::flag` says.
    #[test]
    fn every_hyper_key_has_its_flag() {
        use clap::{Args as _, Command};
        let cmd = OptimArgs::augment_args(Command::new("t"));
        let longs: Vec<&str> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
        for &k in descent::message::HyperKey::ALL {
            assert!(longs.contains(&k.flag_word()), "{k:?}: no {} flag", k.flag());
        }
    }

    /// A setting the library names must have a flag here, or the CLI would print an API name.
    #[test]
    fn every_setting_has_a_flag() {
        for s in Setting::ALL {
            assert_ne!(flag(s), s.api_name(), "{s:?} has no flag in cli::flag");
            assert!(flag(s).starts_with("--") || flag(s).starts_with("descent "), "{s:?}: {}", flag(s));
        }
    }
}
