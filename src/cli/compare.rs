//! `descent compare --case fashion-mnist|cifar10|muon`: the lecture's case studies, every
//! optimizer on one MLP, written as metrics.json, metrics.csv, two figures and a markdown table.

use super::progress;
use super::{parse_list, usage};
use anyhow::Result;
use clap::Args;
use descent::app::compare::Case;
use descent::app::metrics::{Report, RunMetrics};
use descent::app::train::{ShuffleOrder, TrainConfig, Trainer};
use descent::backend::{Act, Device, DeviceChoice};
use descent::optim::{OptimBits, Schedule};
use std::path::PathBuf;

#[derive(Args)]
pub struct CompareArgs {
    /// fashion-mnist (SGD, SGD+momentum, Adagrad, RMSProp, Adam, AdamW), cifar10 (SGD, Adam,
    /// AdamW) or muon (AdamW against Muon with its auxiliary AdamW, on Fashion-MNIST).
    #[arg(long)]
    pub case: String,
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// auto (with a hardware GPU, the faster of it and the CPU backend for the first run's
    /// model and batch, by a trial of a few steps whose verdict is cached; else the CPU
    /// backend), cpu or gpu (any adapter). Every run uses the device picked.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// --device auto: time the trial again and keep no verdict.
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
    /// Output folder (default: compare-CASE).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where the dataset is (see `descent train --help`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Only these runs, e.g. sgd,adamw (labels as in metrics.json); any other optimizer named
    /// (nadam, muon, ...) joins at PyTorch's defaults.
    #[arg(long)]
    pub optimizers: Option<String>,
    #[arg(long, default_value = "128,128")]
    pub hidden: String,
    /// Optimizer state widths, each run at each: 32, 16 (bfloat16), 8 (blockwise 8-bit; Adam
    /// and AdamW only, the others are skipped at 8), e.g. 32,8. Runs below 32 bits are
    /// labelled like adam_8bit.
    // `::std::vec::Vec`: one flag holding a list that the parser splits, not a repeated flag.
    #[arg(long, value_parser = super::Widths, default_value = "32")]
    pub optim_bits: ::std::vec::Vec<OptimBits>,
}

pub fn run(a: CompareArgs) -> Result<()> {
    let (case, base, runs) = usage((|| {
        let mut case = Case::named(&a.case)?;
        if let Some(list) = &a.optimizers {
            case.select(&parse_list(list, "--optimizers")?)?;
        }
        // Every run at every width it has: adam, adam_8bit, sgd, ... (a width no run has is
        // an error; runs without it are skipped with a note).
        let widths = a.optim_bits.clone();
        let mut runs = Vec::new();
        for (label, optimizer) in &case.runs {
            for &bits in &widths {
                let c = optimizer.clone().with_optim_bits(bits);
                if bits != OptimBits::B32 && !c.keeps_state() {
                    println!("{label}: skipped at {} bits (it keeps no state)", bits.bits());
                    continue;
                }
                match c.supports(bits) {
                    Ok(()) if bits == OptimBits::B32 => runs.push((label.clone(), c)),
                    Ok(()) => runs.push((format!("{label}_{}bit", bits.bits()), c)),
                    Err(e) => println!("{label}: skipped at {} bits ({e})", bits.bits()),
                }
            }
        }
        anyhow::ensure!(
            !runs.is_empty(),
            "--optim-bits {}: none of the runs has that width",
            super::widths_label(&widths)
        );
        // The settings every run shares, checked once before any data is loaded.
        let base = TrainConfig {
            epochs: a.epochs,
            batch_size: a.batch_size,
            seed: a.seed,
            shuffle: a.shuffle,
            hidden: parse_list(&a.hidden, "--hidden")?,
            act: Act::Relu,
            optimizer: case.runs[0].1.clone(),
            schedule: Schedule::Constant,
            eval_batch: 1000,
        };
        base.validate()?;
        Ok((case, base, runs))
    })())?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(format!("compare-{}", case.name)));
    let data = descent::data::load_dataset(case.dataset, a.data_dir.as_deref())?;
    println!("data: {}", super::flags(&data.source));
    // auto: one trial (or cached verdict) for the case's first run, then that kind for every run.
    let choice = if a.device == DeviceChoice::Auto {
        let cache = descent::data::folder::cache_dir().join("auto-device.json");
        let cache = (!a.no_device_cache).then_some(cache.as_path());
        let dev = descent::app::auto_device::select_for_training(&data, &base, cache)?;
        if let Some(n) = &dev.notice {
            println!("--device auto: {}", super::flags(n));
        }
        if dev.is_gpu() {
            DeviceChoice::Gpu
        } else {
            DeviceChoice::Cpu
        }
    } else {
        a.device
    };
    let mut report = Report {
        case: case.name.to_string(),
        dataset: super::flags(&data.source),
        device: String::new(),
        batch_size: a.batch_size,
        seed: a.seed,
        shuffle: base.shuffle.name().into(),
        runs: Vec::new(),
    };
    for (label, optimizer) in &runs {
        let dev = Device::select(choice)?;
        if report.device.is_empty() {
            println!("device: {}", dev.describe());
            report.device = dev.describe();
        }
        let config = TrainConfig { optimizer: optimizer.clone(), ..base.clone() };
        let mut t = Trainer::new(dev, &data, config)?;
        println!("== {label}");
        let mut run = RunMetrics::new(label, optimizer, "constant");
        for _ in 0..a.epochs {
            run.epochs.push(progress::run_epoch(&mut t, a.epochs)?);
        }
        report.runs.push(run);
        // Written after every run, so an interrupted comparison keeps what it finished.
        report.write_json(&out.join("metrics.json"))?;
    }
    report.write_csv(&out.join("metrics.csv"))?;
    report.plot_loss(&out.join("train_loss.png"))?;
    report.plot_accuracy(&out.join("test_accuracy.png"))?;
    println!();
    print!("{}", report.markdown());
    println!();
    println!("wrote {0}/metrics.json, {0}/metrics.csv, {0}/train_loss.png, {0}/test_accuracy.png", out.display());
    Ok(())
}
