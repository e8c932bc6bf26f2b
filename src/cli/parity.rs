//! `descent parity`: every kernel on the GPU and the CPU backend against the f64 reference.

use super::{parse_list, usage};
use anyhow::{bail, Result};
use clap::Args;
use descent::app::parity::{self, ParityConfig};
use descent::backend::Device;

/// `--device` of parity: one backend or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ParityDevice {
    Gpu,
    Cpu,
    Both,
}

#[derive(Args)]
pub struct ParityArgs {
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Matmul shapes, e.g. 1x1x1,3x5x7,63x65x129,257x784x128.
    #[arg(long)]
    pub shapes: Option<String>,
    /// Vector lengths, e.g. 1,7,1023,65537,16776961.
    #[arg(long)]
    pub lengths: Option<String>,
    /// Tensor lengths for the blockwise 8-bit optimizers (each alone, then all in one arena), e.g.
    /// 1,255,256,257,4095,4096,4097,65537 (the default).
    #[arg(long)]
    pub blockwise_lengths: Option<String>,
    /// Optimizer steps per check.
    #[arg(long, default_value_t = 3)]
    pub steps: u64,
    /// gpu, cpu or both.
    #[arg(long, value_enum, default_value_t = ParityDevice::Both)]
    pub device: ParityDevice,
    /// Print the rows as a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_shape(s: &str) -> Result<(usize, usize, usize)> {
    let v: Vec<usize> = s
        .split('x')
        .map(|p| p.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("--shapes: '{s}' is not MxKxN"))?;
    match v.as_slice() {
        [m, k, n] if *m > 0 && *k > 0 && *n > 0 => Ok((*m, *k, *n)),
        _ => bail!("--shapes: '{s}' is not MxKxN with sizes >= 1"),
    }
}

pub fn run(a: ParityArgs) -> Result<()> {
    let mut cfg = ParityConfig { seed: a.seed, optim_steps: a.steps, ..Default::default() };
    usage((|| {
        if let Some(s) = &a.shapes {
            cfg.shapes = s.split(',').map(parse_shape).collect::<Result<_>>()?;
        }
        if let Some(l) = &a.lengths {
            cfg.lengths = parse_list(l, "--lengths")?;
            anyhow::ensure!(cfg.lengths.iter().all(|&n| n > 0), "--lengths must be >= 1");
        }
        if let Some(l) = &a.blockwise_lengths {
            cfg.blockwise_lengths = parse_list(l, "--blockwise-lengths")?;
            anyhow::ensure!(cfg.blockwise_lengths.iter().all(|&n| n > 0), "--blockwise-lengths must be >= 1");
        }
        anyhow::ensure!(a.steps > 0, "--steps must be >= 1");
        Ok(())
    })())?;
    let mut rows = Vec::new();
    if a.device != ParityDevice::Cpu {
        let mut gpu = Device::gpu()?;
        cfg.check_fits(&gpu)?;
        eprintln!("running on {}", gpu.describe());
        rows.extend(parity::run(&mut gpu, &cfg)?);
    }
    if a.device != ParityDevice::Gpu {
        let mut cpu = Device::cpu();
        cfg.check_fits(&cpu)?;
        eprintln!("running on {}", cpu.describe());
        rows.extend(parity::run(&mut cpu, &cfg)?);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", parity::table(&rows));
    }
    let failed = rows.iter().filter(|r| !r.pass).count();
    if failed > 0 {
        bail!("{failed} of {} checks failed", rows.len());
    }
    eprintln!("all {} checks passed", rows.len());
    Ok(())
}
