//! `descent train`: one MLP, one optimizer, one line per epoch.

use super::progress;
use super::{parse_list, usage, OptimArgs};
use anyhow::Result;
use clap::Args;
use descent::app::metrics::{Report, RunMetrics};
use descent::app::plot::{Kind, Panel, Series};
use descent::app::tabular::{load_npy_dir, TabularLoss, TabularTrainer};
use descent::app::train::{GradClip, ShuffleOrder, TrainConfig, Trainer};
use descent::backend::{Device, DeviceChoice};
use std::path::PathBuf;

#[derive(Args)]
pub struct TrainArgs {
    /// fashion-mnist, mnist, cifar10 (binary batches or an image tree in --data-dir),
    /// folder:PATH (PATH/train/<class>/*.png|jpg and PATH/test/<class>/…) or npy:DIR (your own
    /// f32 data: DIR/train_x.npy, train_y.npy, and test_x.npy, test_y.npy if present).
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// The loss: ce (cross-entropy over class indices), or, for npy:DIR, mse, l1 or huber
    /// (delta 1) over float32 targets.
    #[arg(long, value_enum, default_value_t = TabularLoss::CrossEntropy)]
    pub loss: TabularLoss,
    /// npy:DIR with --loss ce: the number of classes (default: the largest label plus one).
    #[arg(long)]
    pub classes: Option<usize>,
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
    /// auto (with a hardware GPU, the faster of it and the CPU backend for this model and
    /// batch, by a trial of a few steps whose verdict is cached; else the CPU backend), cpu or
    /// gpu (any adapter).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// --device auto: time the trial again and keep no verdict (the cache is
    /// auto-device.json in descent's cache folder, $DESCENT_CACHE or ~/.cache/descent).
    #[arg(long)]
    pub no_device_cache: bool,
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

impl TrainArgs {
    /// The training settings the flags give, validated (a new run's; a resume takes its own
    /// from the checkpoint).
    fn config(&self) -> Result<TrainConfig> {
        let c = TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            seed: self.seed,
            shuffle: self.shuffle,
            hidden: parse_list(&self.hidden, "--hidden")?,
            act: self.activation,
            optimizer: self.optim.config()?,
            schedule: self.optim.schedule()?,
            eval_batch: 1000,
        };
        c.validate()?;
        Ok(c)
    }
}

pub fn run(a: TrainArgs) -> Result<()> {
    if let Some(dir) = a.dataset.strip_prefix("npy:") {
        return run_npy(&a, std::path::Path::new(dir));
    }
    if a.loss != TabularLoss::CrossEntropy || a.classes.is_some() {
        let flag = if a.classes.is_some() { "--classes" } else { "--loss" };
        usage(Err(anyhow::anyhow!(
            "{flag}: the image datasets train with cross-entropy over their own classes; {flag} is for --dataset npy:DIR"
        )))?;
    }
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
        a.config()
    })())?;
    let choice = a.device;
    let data = descent::data::load_dataset(&a.dataset, a.data_dir.as_deref())?;
    println!("data: {}", super::flags(&data.source));
    let dev = if choice == DeviceChoice::Auto {
        let cache = descent::data::folder::cache_dir().join("auto-device.json");
        descent::app::auto_device::select_for_training(&data, &config, (!a.no_device_cache).then_some(cache.as_path()))?
    } else {
        Device::select(choice)?
    };
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
    let (clip, flag) = clip_flags(&a);
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
    print_clip(t.grad_clip());
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
        let title = format!("{}, {} lr {}", data.name, report.runs[0].optimizer, t.optimizer().config.lr());
        write_plot(path, &title, &report.runs[0], true)?;
    }
    Ok(())
}

/// `--clip-grad-norm` or `--clip-grad-value` as a [`GradClip`], and the flag's name.
fn clip_flags(a: &TrainArgs) -> (Option<GradClip>, &'static str) {
    let clip = match (a.clip_grad_norm, a.clip_grad_value) {
        (Some(m), _) => Some(GradClip::Norm(m)),
        (_, Some(v)) => Some(GradClip::Value(v)),
        _ => None,
    };
    (clip, if a.clip_grad_norm.is_some() { "--clip-grad-norm" } else { "--clip-grad-value" })
}

/// Loss (and, for a classification, accuracy) against epoch, train and test, into a PNG.
fn write_plot(path: &std::path::Path, title: &str, run: &RunMetrics, with_accuracy: bool) -> Result<()> {
    let pts = |f: fn(&descent::app::train::EpochMetrics) -> f64| {
        run.epochs.iter().map(|e| (e.epoch as f64, f(e))).filter(|p| p.1.is_finite()).collect()
    };
    let loss = [
        Series::new("train", pts(|e| e.train_loss), Kind::Path, 0),
        Series::new("test", pts(|e| e.test_loss), Kind::Path, 1),
    ];
    let acc = [
        Series::new("train", pts(|e| e.train_accuracy), Kind::Path, 0),
        Series::new("test", pts(|e| e.test_accuracy), Kind::Path, 1),
    ];
    let loss_title = format!("{title}: loss");
    let mut panels =
        vec![Panel { title: &loss_title, x_label: "epoch", y_label: "loss", series: &loss, legend_low: false }];
    let acc_title = format!("{title}: accuracy");
    if with_accuracy {
        panels.push(Panel { title: &acc_title, x_label: "epoch", y_label: "accuracy", series: &acc, legend_low: true });
    }
    descent::app::plot::line_charts(path, &panels)?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// `descent train --dataset npy:DIR`: an MLP on your own f32 data ([`TabularTrainer`]).
fn run_npy(a: &TrainArgs, dir: &std::path::Path) -> Result<()> {
    let config = usage((|| {
        let refused = [
            (a.resume.is_some(), "--resume"),
            (a.checkpoint.is_some(), "--checkpoint"),
            (a.detect_anomaly, "--detect-anomaly"),
            (a.data_dir.is_some(), "--data-dir"),
            (
                a.cpu_step.cpu_step != descent::autograd::data_parallel::StepPath::Auto
                    || a.cpu_step.slice_rows != descent::autograd::data_parallel::SLICE_ROWS,
                "--cpu-step/--slice-rows",
            ),
        ];
        if let Some((_, flag)) = refused.iter().find(|r| r.0) {
            anyhow::bail!(
                "{flag} is not available with --dataset npy:DIR (its steps run per op, without checkpoints); drop it"
            );
        }
        anyhow::ensure!(!dir.as_os_str().is_empty(), "--dataset npy:DIR needs the folder, e.g. npy:data/sine");
        anyhow::ensure!(
            a.classes.is_none() || a.loss == TabularLoss::CrossEntropy,
            "--classes is for --loss ce; --loss {} trains on float32 targets",
            a.loss.name()
        );
        if let Some(p) = &a.plot {
            descent::app::plot::check_png_path(p)?;
        }
        a.config()
    })())?;
    let data = usage(load_npy_dir(dir, a.loss, a.classes))?;
    println!("data: {}", data.source);
    let dev = Device::select(a.device)?;
    if let Some(n) = &dev.notice {
        println!("--device auto: {}", super::flags(n));
    }
    println!("device: {}", dev.describe());
    let mut t = usage(TabularTrainer::new(dev, &data, config.clone(), a.loss))?;
    let (clip, flag) = clip_flags(a);
    usage(t.set_grad_clip(clip).map_err(|e| anyhow::anyhow!("{flag}: {e}")))?;
    println!(
        "model: {} ({} parameters), loss {}, optimizer {} lr {}, batch {}, {} steps per epoch",
        t.model().sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("-"),
        t.model().arena.count(),
        a.loss.name(),
        t.optimizer().config.name(),
        t.optimizer().config.lr(),
        config.batch_size,
        t.steps_per_epoch()
    );
    print_clip(clip);
    let mut report = Report {
        case: format!("npy {} {}", a.loss.name(), t.optimizer().config.name()),
        dataset: data.source.clone(),
        device: t.device().describe(),
        batch_size: config.batch_size,
        seed: config.seed,
        shuffle: config.shuffle.name().into(),
        runs: vec![RunMetrics::new(t.optimizer().config.name(), &t.optimizer().config, &t.optimizer().schedule.spec())],
    };
    while t.epoch() < config.epochs {
        let m = t.run_epoch()?;
        println!("{}", t.line(&m));
        report.runs[0].epochs.push(m);
        if let Some(path) = &a.metrics {
            report.write_json(path)?;
        }
    }
    if let Some(path) = &a.plot {
        let title = format!("{}, {} lr {}", dir.display(), report.runs[0].optimizer, t.optimizer().config.lr());
        write_plot(path, &title, &report.runs[0], a.loss == TabularLoss::CrossEntropy)?;
    }
    Ok(())
}

/// The line saying how gradients are clipped, if they are.
fn print_clip(clip: Option<GradClip>) {
    match clip {
        Some(GradClip::Norm(m)) => println!("gradients clipped to a total norm of {m}"),
        Some(GradClip::Value(v)) => println!("gradients clamped to [-{v}, {v}]"),
        None => {}
    }
}
