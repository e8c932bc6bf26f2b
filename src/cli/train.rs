//! `descent train`: one MLP, one optimizer, one line per epoch.

use super::{parse_list, usage, OptimArgs};
use anyhow::Result;
use clap::Args;
use descent::backend::{Act, Device, DeviceChoice};
use descent::train::{TrainConfig, Trainer};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args)]
pub struct TrainArgs {
    /// fashion-mnist or mnist.
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
    /// relu, sigmoid or tanh.
    #[arg(long, default_value = "relu")]
    pub activation: String,
    /// auto, cpu or gpu.
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the parameter layout and per-step dispatch, submit and readback counts.
    #[arg(long)]
    pub verbose: bool,
}

pub fn run(a: TrainArgs) -> Result<()> {
    let config = usage((|| {
        let c = TrainConfig {
            epochs: a.epochs,
            batch_size: a.batch_size,
            seed: a.seed,
            hidden: parse_list(&a.hidden, "--hidden")?,
            act: Act::parse(&a.activation)?,
            optimizer: a.optim.config()?,
            schedule: a.optim.schedule()?,
            eval_batch: 1000,
        };
        c.validate()?;
        Ok(c)
    })())?;
    let choice = usage(DeviceChoice::parse(&a.device))?;
    let data = descent::data::load_idx_dataset(&a.dataset, a.data_dir.as_deref())?;
    println!("data: {}", data.source);
    let dev = Device::select(choice)?;
    if let Some(n) = &dev.notice {
        println!("{n}");
    }
    println!("device: {}", dev.describe());
    let mut t = Trainer::new(dev, &data, config)?;
    println!(
        "model: {} ({} parameters), optimizer {} lr {}, batch {}, {} steps per epoch",
        t.model.sizes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("-"),
        t.model.arena.count(),
        t.opt.config.name,
        t.opt.config.lr,
        t.config.batch_size,
        t.steps_per_epoch()
    );
    if a.verbose {
        print!("{}", t.model.arena.describe());
    }
    let bar = std::io::stderr().is_terminal();
    for _ in 0..t.config.epochs {
        let before = t.counters();
        let epochs = t.config.epochs;
        let epoch = t.epoch + 1;
        let m = t.run_epoch(
            |s, n, loss| {
                if bar {
                    eprint!("\r  epoch {epoch}/{epochs} step {s}/{n} loss {loss:.4}   ");
                }
            },
            if bar { 50 } else { 0 },
        )?;
        if bar {
            eprint!("\r{:60}\r", "");
        }
        println!("{}", m.line(t.config.epochs));
        if a.verbose {
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
    Ok(())
}
