//! `descent info`: what can run the kernels here.

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct InfoArgs {}

pub fn run(_a: InfoArgs) -> Result<()> {
    let cpu = descent::backend::cpu::CpuBackend::new();
    use descent::backend::Backend;
    println!("cpu backend: {}", cpu.describe());
    println!(
        "cpu kernels: {}",
        if descent::backend::host::has_avx512() {
            "AVX-512 (A·Bᵀ in 4×6 blocks; A·B and Aᵀ·B with inner size ≤ 256 in 6×32 blocks; the same bits as their AVX2 forms), AVX2+FMA for the edges; longer A·B and Aᵀ·B through the gemm crate"
        } else if descent::backend::host::has_avx2_fma() {
            "AVX2+FMA (A·Bᵀ; A·B and Aᵀ·B with inner size ≤ 256; fused optimizers); longer A·B and Aᵀ·B through the gemm crate"
        } else {
            "portable loops and the gemm crate (this CPU lacks AVX2+FMA)"
        }
    );
    println!(
        "cpu fused optimizer loops: {}",
        if descent::backend::host::has_avx512() {
            "AVX-512 (16 lanes)"
        } else if descent::backend::host::has_avx2_fma() {
            "AVX2 (8 lanes)"
        } else {
            "portable loops"
        }
    );
    println!(
        "cpu 8-bit coder: {}",
        if descent::backend::host::has_avx512() {
            "AVX-512 (16 lanes: one gather, mask compares, one narrowing store per 16 codes)"
        } else if descent::backend::host::has_avx2_fma() {
            "AVX2 (8 lanes)"
        } else {
            "portable loop"
        }
    );
    println!(
        "cpu bfloat16 Newton–Schulz (Muon's ns_dtype bfloat16): {}",
        if descent::backend::host::has_avx512_bf16() {
            "AVX-512 BF16 (vdpbf16ps tiles)"
        } else {
            "widened to f32 through the gemm crate (this CPU lacks AVX-512 BF16)"
        }
    );
    println!("{}", super::flags(&descent::backend::gpu::describe_adapters()));
    Ok(())
}
