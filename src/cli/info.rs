//! `descent info`: what can run the kernels here.

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct InfoArgs {}

pub fn run(_a: InfoArgs) -> Result<()> {
    let cpu = descent::backend::cpu::CpuBackend::new();
    use descent::backend::Backend;
    println!("cpu backend: {}", cpu.describe());
    println!("{}", descent::backend::gpu::describe_adapters());
    Ok(())
}
