//! `descent replay --spec FILE.json`: an optimizer's trajectory as JSON on stdout.

use super::usage;
use anyhow::{Context, Result};
use clap::Args;
use descent::app::replay::{run as replay, ReplaySpec};
use descent::backend::{Device, DeviceChoice};
use std::path::PathBuf;

#[derive(Args)]
pub struct ReplayArgs {
    /// The replay spec (see README: optimizer, schedule, init, grads or quadratic + steps).
    #[arg(long)]
    pub spec: PathBuf,
    /// cpu or gpu (auto picks a hardware GPU, else the CPU).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
}

pub fn run(a: ReplayArgs) -> Result<()> {
    let choice = a.device;
    let text =
        usage(std::fs::read_to_string(&a.spec).with_context(|| format!("cannot read --spec {}", a.spec.display())))?;
    let spec = usage(ReplaySpec::parse(&text).with_context(|| format!("{}", a.spec.display())))?;
    let mut dev = Device::select(choice)?;
    if let Some(n) = &dev.notice {
        eprintln!("--device auto: {}", super::flags(n));
    }
    let t = replay(&mut dev, &spec)?;
    println!("{}", t.to_json());
    Ok(())
}
