//! `descent train`: one MLP, one optimizer, one line per epoch.

use super::progress;
use super::{parse_list, usage, OptimArgs};
use anyhow::Result;
use clap::Args;
use descent::app::metrics::{Report, RunMetrics};
use descent::app::plot::{Kind, Panel, Series};
use descent::app::train::{ShuffleOrder, TrainConfig, Trainer};
use descent::backend::{Device, DeviceChoice};
use std::path::PathBuf;

#[derive(Args)]
pub struct TrainArgs {
    /// fashion-mnist, mnist, cifar10 (binary batches or an image tree in --data-dir) or
    /// folder:PATH (PATH/train/<class>/*.png|jpg and PATH/test/<class>/…).
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Folder with the dataset's files (default: $DESCENT_DATA, the Debian package, the
    /// embedded subset).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub optim: OptimArgs,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Hidden layer sizes.
    #[arg(long, default_value = "128,128")]
    pub hidden: String,
    /// The hidden layers' activation.
    #[arg(long, value_enum, default_value_t = descent::backend::Act::Relu)]
    pub activation: descent::backend::Act,
    /// auto (a hardware GPU, else the CPU backend), cpu or gpu (any adapter).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Initial weights are PyTorch's after torch.manual_seed(SEED) (bit for bit).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Which PyTorch loop's batch order to reproduce from --seed: randperm
    /// (torch.randperm(n, generator=torch.Generator().manual_seed(SEED)) each epoch) or
    /// dataloader (DataLoader(train, batch_size=B, shuffle=True)).
    #[arg(long, value_enum, default_value_t = ShuffleOrder::Randperm)]
    pub shuffle: ShuffleOrder,
    /// Print the parameter layout and per-step dispatch, submit and readback counts.
    #[arg(long)]
    pub verbose: bool,
    #[command(flatten)]
    pub cpu_step: super::CpuStepArgs,
    /// Clip the gradients' total 2-norm to MAX before each step (PyTorch's clip_grad_norm_)
    #[arg(long, value_name = "MAX", conflicts_with = "clip_grad_value")]
    pub clip_grad_norm: Option<f32>,
    /// Clamp every gradient to [-V, V] before each step (PyTorch's clip_grad_value_)
    #[arg(long, value_name = "V")]
    pub clip_grad_value: Option<f32>,
    /// Write per-epoch metrics as JSON (the schema of `descent compare`'s metrics.json).
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Draw loss and accuracy (train and test) against epoch into this PNG, two panels.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Save a checkpoint (safetensors: parameters, optimizer state, RNG, position) here after
    /// every epoch, written atomically.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Also save every N optimizer steps (needs --checkpoint).
    #[arg(long, default_value_t = 0, requires = "checkpoint")]
    pub checkpoint_every: u64,
    /// Check every op's output and gradient each step and stop at the first non-finite one,
    /// naming the op (reads back every step: a debugging aid).
    #[arg(long)]
    pub detect_anomaly: bool,
    /// Continue from a checkpoint: the model, optimizer, batch size and seed come from it, and
    /// training runs until --epochs epochs in total.
    #[arg(long)]
    pub resume: Option<PathBuf>,
}

pub fn run(a: TrainArgs) -> Result<()> {
    let resume = match &a.resume {
        Some(p) => Some(usage(descent::app::checkpoint::read(p))?),
        None => None,
    };
    let config = usage((|| {
        descent::data::check_dataset_name(&a.dataset)?;
        if let Some(p) = &a.plot {
            descent::app::plot::check_png_path(p)?;
        }
        if let (Some((_, meta)), Some(p)) = (&resume, &a.resume) {
            let (c, _) = descent::app::train::config_from_checkpoint(meta, a.epochs, &p.display().to_string())?;
            // The state's width is the checkpoint's: a different one asked for is an error,
            // never a silent conversion.
            if let Some(asked) = a.optim.optim_bits {
                let saved = c.optimizer.optim_bits();
                anyhow::ensure!(
                    asked == saved,
                    "--optim-bits {}: {} keeps {}-bit optimizer state; a resume continues at the checkpoint's width (drop --optim-bits, or start a new run)",
                    asked.bits(),
                    p.display(),
                    saved.bits()
                );
            }
            return Ok(c);
        }
        let c = TrainConfig {
            epochs: a.epochs,
            batch_size: a.batch_size,
            seed: a.seed,
            shuffle: a.shuffle,
            hidden: parse_list(&a.hidden, "--hidden")?,
            act: a.activation,
            optimizer: a.optim.config()?,
            schedule: a.optim.schedule()?,
            eval_batch: 1000,
        };
        c.validate()?;
        Ok(c)
    })())?;
    let choice = a.device;
    let data = descent::data::load_dataset(&a.dataset, a.data_dir.as_deref())?;
    println!("data: {}", super::flags(&data.source));
    let dev = Device::select(choice)?;
    if let Some(n) = &dev.notice {
        println!("--device auto: {}", super::flags(n));
    }
    println!("device: {}", dev.describe());
    let mut t = Trainer::new(dev, &data, config)?;
    if let (Some((tensors, meta)), Some(p)) = (&resume, &a.resume) {
        t.restore(tensors, meta, &p.display().to_string())?;
        println!("resumed from {}: epoch {} done, optimizer step {}", p.display(), t.epoch(), t.optimizer().step);
    }
    t.set_checkpoint(a.checkpoint.clone(), a.checkpoint_every);
    usage(a.cpu_step.apply(&mut t))?;
    let clip = match (a.clip_grad_norm, a.clip_grad_value) {
        (Some(m), _) => Some(descent::app::train::GradClip::Norm(m)),
        (_, Some(v)) => Some(descent::app::train::GradClip::Value(v)),
        _ => None,
    };
    let flag = if a.clip_grad_norm.is_some() { "--clip-grad-norm" } else { "--clip-grad-value" };
    match (&a.resume, clip) {
        // A resume keeps the checkpoint's clipping; another one asked for is an error, as a
        // different width is, never a silent change of the run.
        (Some(p), Some(asked)) if t.grad_clip() != Some(asked) => usage(Err(anyhow::anyhow!(
            "{flag}: {} was made with {}; a resume continues with the checkpoint's clipping (drop {flag}, or start a new run)",
            p.display(),
            t.grad_clip().map_or("no gradient clipping".to_string(), |c| format!("--clip-grad-{}", c.spec().replacen(':', " ", 1)))
        )))?,
        (Some(_), _) => {}
        (None, _) => usage(t.set_grad_clip(clip).map_err(|e| anyhow::anyhow!("{flag}: {e}")))?,
    }
    if a.detect_anomaly {
        t.detect_anomaly()?;
    }
    println!(
        "model: {} ({} parameters), optimizer {} lr {}{}, batch {}, {} steps per epoch",
        t.model().sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("-"),
        t.model().arena.count(),
        t.optimizer().config.name(),
        t.optimizer().config.lr(),
        match t.optimizer().config.optim_bits().bits() {
            32 => String::new(),
            b => format!(" ({b}-bit state)"),
        },
        t.config().batch_size,
        t.steps_per_epoch()
    );
    match t.grad_clip() {
        Some(descent::app::train::GradClip::Norm(m)) => println!("gradients clipped to a total norm of {m}"),
        Some(descent::app::train::GradClip::Value(v)) => println!("gradients clamped to [-{v}, {v}]"),
        None => {}
    }
    if a.verbose {
        print!("{}", t.model().arena.describe());
        if !t.device().is_gpu() {
            match t.cpu_step_plan() {
                Some(why) => println!("steps run per op: {why}"),
                None => println!(
                    "steps run in row slices of {} on every core (an epoch's last, smaller batch may run per op)",
                    a.cpu_step.slice_rows
                ),
            }
        }
    }
    let mut report = Report {
        case: format!("{} {}", data.name, t.optimizer().config.name()),
        dataset: super::flags(&data.source),
        device: t.device().describe(),
        batch_size: t.config().batch_size,
        seed: t.config().seed,
        shuffle: t.config().shuffle.name().into(),
        runs: vec![RunMetrics::new(t.optimizer().config.name(), &t.optimizer().config, &t.optimizer().schedule.spec())],
    };
    while t.epoch() < t.config().epochs {
        let before = t.counters();
        let epochs = t.config().epochs;
        report.runs[0].epochs.push(progress::run_epoch(&mut t, epochs)?);
        if let Some(path) = &a.metrics {
            report.write_json(path)?;
        }
        if a.verbose {
            if let Some(descent::autograd::data_parallel::StepRun::PerOp { why }) = t.last_step_run() {
                println!("  the epoch's last step ran per op: {why}");
            }
            let after = t.counters();
            let steps = t.steps_per_epoch() as f64;
            println!(
                "  per training step, evaluation included: {:.1} dispatches, {:.2} submits; {} bytes read back this epoch",
                (after.dispatches - before.dispatches) as f64 / steps,
                (after.submits - before.submits) as f64 / steps,
                after.bytes_read_back - before.bytes_read_back
            );
        }
    }
    if let Some(path) = &a.plot {
        let run = &report.runs[0];
        let pts = |f: fn(&descent::app::train::EpochMetrics) -> f64| {
            run.epochs.iter().map(|e| (e.epoch as f64, f(e))).collect()
        };
        let loss = [
            Series::new("train", pts(|e| e.train_loss), Kind::Path, 0),
            Series::new("test", pts(|e| e.test_loss), Kind::Path, 1),
        ];
        let acc = [
            Series::new("train", pts(|e| e.train_accuracy), Kind::Path, 0),
            Series::new("test", pts(|e| e.test_accuracy), Kind::Path, 1),
        ];
        let title = format!("{}, {} lr {}", data.name, run.optimizer, t.optimizer().config.lr());
        descent::app::plot::line_charts(
            path,
            &[
                Panel {
                    title: &format!("{title}: loss"),
                    x_label: "epoch",
                    y_label: "loss",
                    series: &loss,
                    legend_low: false,
                },
                Panel {
                    title: &format!("{title}: accuracy"),
                    x_label: "epoch",
                    y_label: "accuracy",
                    series: &acc,
                    legend_low: true,
                },
            ],
        )?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
