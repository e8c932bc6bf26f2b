//! `descent bench optim|matmul|epoch`: the figures of BENCHMARKS.md, as a table or JSON.

use super::{parse_list, usage, BenchDeviceArg, OptimArgs};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use descent::app::bench::{self, Variant, BENCH_OPTIMIZERS};
use descent::app::train::{TrainConfig, Trainer};
use descent::backend::gpu::MatmulKernels;
use descent::backend::{Act, Device, DeviceChoice};
use descent::optim::{Muon, NsDtype, OptimBits, OptimConfig};
use serde_json::json;
use std::path::PathBuf;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once
pub enum BenchWhat {
    /// Time optimizer steps: fused over the whole arena, fused per tensor, and unfused.
    Optim(OptimBench),
    /// GFLOP/s of the three matmul forms at the MLP's shapes and at 1024³ / 2048³.
    Matmul(MatmulBench),
    /// Seconds per training epoch (data in device memory, evaluation excluded).
    Epoch(EpochBench),
}

#[derive(Args)]
pub struct OptimBench {
    /// adam, adamw, sgd (momentum 0.9), rmsprop, adagrad, nadam, radam, adamax, adadelta, lion,
    /// rprop, asgd, ademamix, schedulefree_adamw, adafactor, muon, or all; comma-separated.
    #[arg(long, default_value = "adam")]
    pub optimizer: String,
    /// Parameter counts, e.g. 1e6,1e7,1e8 (default 1e6,1e7; none when --shapes is given alone).
    #[arg(long)]
    pub params: Option<String>,
    /// cpu or gpu.
    #[arg(long, value_enum, default_value_t = BenchDeviceArg::Cpu)]
    pub device: BenchDeviceArg,
    /// Tensors the arena is split into for the per-tensor variant (an MLP's layers).
    #[arg(long, default_value_t = 8)]
    pub tensors: usize,
    /// Timed repeats per row (after 2 warm-up steps).
    #[arg(long, default_value_t = 20)]
    pub repeats: usize,
    /// Variants: fused_multi_tensor, fused_per_tensor, unfused (default: all three; at 16 and
    /// 8 bits the fused multi-tensor kernel only).
    #[arg(long)]
    pub variants: Option<String>,
    /// Matrix shapes, each benchmarked alone as one tensor (the fused multi-tensor variant),
    /// after the --params rows: e.g. 784x128,1024x1024 (Muon and Adafactor step them as
    /// matrices; Muon also reports its Newton–Schulz TFLOP/s). N*RxC is one row of N tensors
    /// of that shape in one arena (a stack of same-shaped layers: Muon batches them), e.g.
    /// 12*256x256.
    #[arg(long)]
    pub shapes: Option<String>,
    /// State widths: 32 (f32), 16 (bfloat16), 8 (blockwise 8-bit, where the
    /// optimizer has that form); e.g. 32,16,8.
    // `::std::vec::Vec`: one flag holding a list that the parser splits, not a repeated flag.
    #[arg(long, value_parser = super::Widths, default_value = "32")]
    pub optim_bits: ::std::vec::Vec<OptimBits>,
    /// Muon's Newton–Schulz precisions for the --shapes rows: float32, bfloat16 (PyTorch's;
    /// the CPU backend only), or both, e.g. float32,bfloat16.
    #[arg(long, default_value = "float32")]
    pub ns_dtype: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct MatmulBench {
    /// cpu or gpu.
    #[arg(long, value_enum, default_value_t = BenchDeviceArg::Cpu)]
    pub device: BenchDeviceArg,
    /// Shapes as FORM:MxKxN (form nn, nt or tn), e.g. nt:64x784x128,nn:1024x1024x1024.
    #[arg(long)]
    pub shapes: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub repeats: usize,
    #[arg(long)]
    pub json: bool,
    /// GPU only: time each shape with each of these kernel choices (auto, tiled, split-k,
    /// large), e.g.
    /// tiled,split-k; the `kernel` column says which kernel each row ran. Default: auto (the
    /// environment's DESCENT_GPU_MATMUL when set).
    #[arg(long)]
    pub matmul_kernels: Option<String>,
}

#[derive(Args)]
pub struct EpochBench {
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// cpu or gpu.
    #[arg(long, value_enum, default_value_t = BenchDeviceArg::Cpu)]
    pub device: BenchDeviceArg,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value = "128,128")]
    pub hidden: String,
    /// Timed epochs after one warm-up epoch (at least 3).
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    #[command(flatten)]
    pub optim: OptimArgs,
    #[command(flatten)]
    pub cpu_step: super::CpuStepArgs,
    /// Run the benchmark on each of these thread counts in turn (its own rayon pool each), e.g.
    /// 1,2,4, and report each one's speedup over the first
    #[arg(long)]
    pub threads: Option<String>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: BenchArgs) -> Result<()> {
    match a.what {
        BenchWhat::Optim(o) => optim(o),
        BenchWhat::Matmul(m) => matmul(m),
        BenchWhat::Epoch(e) => epoch(e),
    }
}

fn open(device: BenchDeviceArg) -> Result<Device> {
    let choice = match device {
        BenchDeviceArg::Cpu => DeviceChoice::Cpu,
        BenchDeviceArg::Gpu => DeviceChoice::Gpu,
        BenchDeviceArg::Auto => {
            return usage(Err(anyhow::anyhow!("benchmarks name their device: use --device cpu or --device gpu")))
        }
    };
    let dev = Device::select(choice)?;
    if let Some(n) = &dev.notice {
        eprintln!("--device auto: {}", super::flags(n));
    }
    Ok(dev)
}

/// "1e7" or "10000000".
fn parse_count(s: &str) -> Result<usize> {
    let v: f64 = s.trim().parse().map_err(|_| anyhow::anyhow!("--params: '{s}' is not a number"))?;
    if !((1.0..=4e9).contains(&v) && v.fract() == 0.0) {
        bail!("--params: '{s}' must be a whole number from 1 to 4e9");
    }
    Ok(v as usize)
}

fn optim(a: OptimBench) -> Result<()> {
    let (names, sizes, variants, widths, shapes, ns_dtypes) = usage((|| {
        let names: Vec<String> = if a.optimizer == "all" {
            BENCH_OPTIMIZERS.iter().map(|s| s.to_string()).collect()
        } else {
            parse_list(&a.optimizer, "--optimizer")?
        };
        for n in &names {
            bench::bench_config(n)?;
        }
        let params = match (&a.params, &a.shapes) {
            (Some(p), _) => p.clone(),
            (None, Some(_)) => String::new(),
            (None, None) => "1e6,1e7".to_string(),
        };
        let sizes = params.split(',').filter(|s| !s.trim().is_empty()).map(parse_count).collect::<Result<Vec<_>>>()?;
        let variants = match &a.variants {
            None => Variant::ALL.to_vec(),
            Some(v) => v
                .split(',')
                .map(|x| {
                    Variant::ALL.into_iter().find(|v| v.name() == x.trim()).ok_or_else(|| {
                        anyhow::anyhow!("--variants: '{x}' is not fused_multi_tensor, fused_per_tensor or unfused")
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        };
        if a.tensors == 0 || a.repeats == 0 {
            bail!("--tensors and --repeats must be at least 1");
        }
        let widths = a.optim_bits.clone();
        // Each optimizer at each width it has; a width none of them has is an error.
        for &b in &widths {
            let ok: Vec<&String> =
                names.iter().filter(|n| bench::bench_config(n).is_ok_and(|c| c.supports(b).is_ok())).collect();
            if ok.is_empty() {
                let c = bench::bench_config(&names[0])?;
                c.supports(b).map_err(|e| anyhow::anyhow!("--optim-bits {}: {}", b.bits(), super::hyper_flags(&e)))?;
            }
        }
        let shapes: Vec<Vec<Vec<usize>>> = match &a.shapes {
            None => Vec::new(),
            Some(text) => text.split(',').map(parse_shape_row).collect::<Result<_>>()?,
        };
        let ns_dtypes = parse_list::<String>(&a.ns_dtype, "--ns-dtype")?
            .iter()
            .map(|d: &String| {
                serde_json::from_value::<NsDtype>(serde_json::Value::String(d.clone()))
                    .map_err(|_| anyhow::anyhow!("--ns-dtype: '{d}' is not float32 or bfloat16"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((names, sizes, variants, widths, shapes, ns_dtypes))
    })())?;
    let mut dev = open(a.device)?;
    let largest = *sizes.iter().max().unwrap_or(&1);
    let bw = bench::bandwidth(&mut dev, largest.max(1 << 24), a.repeats.min(10))?;
    if !a.json {
        println!("device: {}", dev.describe());
        println!(
            "memory: copy {:.1} GB/s, streaming {:.1} GB/s (read + write bytes over {} floats)",
            bw.copy_gb_per_s,
            bw.streaming_gb_per_s,
            largest.max(1 << 24)
        );
        println!(
            "{:<8} {:>4} {:<19} {:>11} {:>7} {:>10} {:>10} {:>10} {:>5} {:>9} {:>8} {:>7} {:>7}",
            "optim",
            "bits",
            "variant",
            "params",
            "tensors",
            "median ms",
            "min ms",
            "max ms",
            "B/p",
            "state MB",
            "GB/s",
            "%copy",
            "%stream"
        );
    }
    let mut rows = Vec::new();
    for name in &names {
        for &bits in &widths {
            if bench::bench_config(name)?.supports(bits).is_err() {
                eprintln!("{name} has no {}-bit form: skipped", bits.bits());
                continue;
            }
            for &n in &sizes {
                let mut fused_ms = None;
                for &v in &variants {
                    if !bench::variant_applies(&bench::bench_config(name)?, v) {
                        if !a.json {
                            println!("{:<8} {:>4} {:<19} (one launch over every tensor)", name, bits.bits(), v.name());
                        }
                        continue;
                    }
                    if !bench::variant_supports(v, bits) {
                        if !a.json {
                            println!("{:<8} {:>4} {:<19} (32-bit state only)", name, bits.bits(), v.name());
                        }
                        continue;
                    }
                    if v == Variant::Unfused && !bench::Unfused::covers(&bench::bench_config(name)?) {
                        if !a.json {
                            println!("{:<8} {:>4} {:<19} (no unfused baseline)", name, bits.bits(), v.name());
                        }
                        continue;
                    }
                    let r = bench::bench_optim(&mut dev, name, bits, v, n, a.tensors, &bw, a.repeats)?;
                    if !a.json {
                        print_row(&r, &dev);
                        if v == Variant::FusedMultiTensor {
                            fused_ms = Some(r.median_ms);
                        }
                        if let (Variant::Unfused, Some(f)) = (v, fused_ms) {
                            println!("{:<8} fused is {:.1}× faster than unfused", "", r.median_ms / f);
                        }
                    }
                    rows.push(r);
                }
            }
            // Muon once per Newton–Schulz precision asked for; the others once.
            let configs: Vec<OptimConfig> = match bench::bench_config(name)?.with_optim_bits(bits) {
                OptimConfig::Muon(m) => {
                    ns_dtypes.iter().map(|&ns_dtype| OptimConfig::Muon(Muon { ns_dtype, ..m.clone() })).collect()
                }
                c => vec![c],
            };
            for row in &shapes {
                for config in &configs {
                    let r = descent::backend::wait(bench::bench_config_shapes_async(
                        &mut dev,
                        config.clone(),
                        row,
                        &bw,
                        a.repeats,
                    ))?;
                    if !a.json {
                        print_row(&r, &dev);
                    }
                    rows.push(r);
                }
            }
        }
    }
    if a.json {
        let report = bench::OptimReport { results: rows, ..bench::OptimReport::new(&dev, &bw) };
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

/// Most tensors one `--shapes` entry (`N*RxC`) may hold.
const MOST_SHAPE_REPEATS: usize = 4096;

/// One `--shapes` entry: a shape such as 784x128, or N*RxC for N tensors of that shape.
fn parse_shape_row(s: &str) -> Result<Vec<Vec<usize>>> {
    let bad = || anyhow::anyhow!("--shapes: '{s}' is not a shape such as 784x128 or 12*256x256");
    let (count, shape) = match s.split_once('*') {
        Some((n, shape)) => (n.trim().parse::<usize>().map_err(|_| bad())?, shape),
        None => (1, s),
    };
    let dims: Vec<usize> =
        shape.split('x').map(|d| d.trim().parse::<usize>()).collect::<Result<_, _>>().map_err(|_| bad())?;
    anyhow::ensure!(!dims.is_empty() && dims.iter().all(|&d| d > 0) && count > 0, bad());
    anyhow::ensure!(
        count <= MOST_SHAPE_REPEATS,
        "--shapes: '{s}' repeats a shape {count} times; use at most {MOST_SHAPE_REPEATS}"
    );
    Ok(vec![dims; count])
}

/// Shapes as `--shapes` spells them, runs of one shape as N*RxC.
fn shapes_text(shapes: &[Vec<usize>]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < shapes.len() {
        let run = shapes[i..].iter().take_while(|s| **s == shapes[i]).count();
        let dims = shapes[i].iter().map(|x| x.to_string()).collect::<Vec<_>>().join("x");
        out.push(if run > 1 { format!("{run}*{dims}") } else { dims });
        i += run;
    }
    out.join(",")
}

/// One row of `bench optim`'s table.
fn print_row(r: &bench::OptimResult, dev: &descent::backend::Device) {
    let shape = r.shapes.as_ref().map_or(String::new(), |s| format!("  {}", shapes_text(s)));
    let precision = match r.ns_dtype {
        Some(NsDtype::Bfloat16) => " (bfloat16)",
        _ => "",
    };
    let ns = r
        .newton_schulz_tflop_per_s
        .map_or(String::new(), |t| format!("  Newton–Schulz{precision} ≥ {:.1} GFLOP/s", t * 1e3));
    let ns = match (r.elementwise_ms, r.elementwise_gb_per_s) {
        (Some(ms), Some(gb)) => format!("{ns}; elementwise passes {ms:.3} ms, {gb:.1} GB/s"),
        _ => ns,
    };
    println!(
        "{:<8} {:>4} {:<19} {:>11} {:>7} {:>10.3} {:>10.3} {:>10.3} {:>5} {:>9.1} {:>8.1} {:>6.0}% {:>6.0}%{}",
        r.optimizer,
        r.optim_bits,
        r.variant.name(),
        r.params,
        r.tensors,
        r.median_ms,
        r.min_ms,
        r.max_ms,
        r.bytes_per_param,
        r.state_bytes as f64 / 1e6,
        r.gb_per_s,
        100.0 * r.fraction_of_copy_bw,
        100.0 * r.fraction_of_streaming_bw,
        if r.clock == "gpu_timestamps" {
            ""
        } else if dev.is_gpu() {
            "  (wall clock)"
        } else {
            ""
        }
    );
    if !shape.is_empty() || !ns.is_empty() {
        println!("{:<8}{shape}{ns}", "");
    }
}

fn matmul(a: MatmulBench) -> Result<()> {
    let shapes = usage(match &a.shapes {
        Some(s) => s.split(',').map(bench::parse_matmul_shape).collect::<Result<Vec<_>>>(),
        None => Ok(bench::default_matmul_shapes()),
    })?;
    if a.repeats == 0 {
        return usage(Err(anyhow::anyhow!("--repeats must be at least 1")));
    }
    let kernels = usage(parse_matmul_kernels(a.matmul_kernels.as_deref(), a.device))?;
    let mut dev = open(a.device)?;
    if !a.json {
        println!("device: {}", dev.describe());
        println!(
            "{:<26} {:<4} {:>6} {:>6} {:>6} {:>10} {:>10} {:>10} {:>9}  kernel",
            "shape", "form", "m", "k", "n", "median ms", "min ms", "max ms", "GFLOP/s"
        );
    }
    let mut rows = Vec::new();
    for s in &shapes {
        for &k in &kernels {
            if let Some(k) = k {
                dev.set_matmul_kernels(k)?;
            }
            let r = bench::bench_matmul(&mut dev, s, a.repeats)?;
            if !a.json {
                println!(
                    "{:<26} {:<4} {:>6} {:>6} {:>6} {:>10.4} {:>10.4} {:>10.4} {:>9.1}  {}",
                    s.label,
                    s.form,
                    s.m,
                    s.k,
                    s.n,
                    r.median_ms,
                    r.min_ms,
                    r.max_ms,
                    r.gflop_per_s,
                    r.kernel.as_deref().unwrap_or("-")
                );
            }
            rows.push(r);
        }
    }
    if a.json {
        println!("{}", json!({"device": {"name": dev.describe(), "gpu": dev.is_gpu()}, "results": rows}));
    }
    Ok(())
}

/// `--matmul-kernels`: the GPU kernel choices to time each shape with (None: the device's own
/// setting, the only entry when the flag is absent).
fn parse_matmul_kernels(list: Option<&str>, device: BenchDeviceArg) -> Result<Vec<Option<MatmulKernels>>> {
    let Some(list) = list else { return Ok(vec![None]) };
    if !matches!(device, BenchDeviceArg::Gpu) {
        bail!("--matmul-kernels chooses among the GPU's matmul kernels: use it with --device gpu");
    }
    list.split(',')
        .map(|name| match MatmulKernels::from_name(name.trim()) {
            Some(k) => Ok(Some(k)),
            None => bail!("--matmul-kernels {name}: use auto, tiled, split-k or large (comma-separated)"),
        })
        .collect()
}

fn epoch(a: EpochBench) -> Result<()> {
    let config = usage((|| {
        descent::data::check_dataset_name(&a.dataset)?;
        if a.epochs < 3 {
            bail!("--epochs {}: the median needs at least 3 timed epochs", a.epochs);
        }
        let c = TrainConfig {
            epochs: a.epochs + 1,
            batch_size: a.batch_size,
            seed: 0,
            shuffle: descent::app::train::ShuffleOrder::Randperm,
            hidden: parse_list(&a.hidden, "--hidden")?,
            act: Act::Relu,
            optimizer: a.optim.config()?,
            schedule: a.optim.schedule()?,
            eval_batch: 1000,
        };
        c.validate()?;
        Ok(c)
    })())?;
    let threads = usage((|| {
        let t = a.threads.as_deref().map_or(Ok(Vec::new()), |t| parse_list(t, "--threads"))?;
        anyhow::ensure!(!t.contains(&0), "--threads: each count must be at least 1");
        Ok(t)
    })())?;
    let data = descent::data::load_dataset(&a.dataset, a.data_dir.as_deref())?;
    if !a.json {
        println!("data: {}", super::flags(&data.source));
    }
    if threads.is_empty() {
        let median = epoch_run(&a, &data, config)?;
        return epoch_report(&a, data.train.rows, median, None);
    }
    let mut first = None;
    for &n in &threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .stack_size(8 << 20)
            .start_handler(|_| descent::backend::cpu::set_flush_to_zero())
            .build()?;
        let median = pool.install(|| epoch_run(&a, &data, config.clone()))?;
        let base = *first.get_or_insert(median.0);
        let speedup = base / median.0;
        epoch_report(&a, data.train.rows, median, Some((n, speedup)))?;
    }
    Ok(())
}

/// The warm-up epoch and the timed ones on the current rayon pool: (median, min, max) seconds
/// and the device's description.
fn epoch_run(a: &EpochBench, data: &descent::data::Dataset, config: TrainConfig) -> Result<(f64, f64, f64, String)> {
    let dev = open(a.device)?;
    let device = dev.describe();
    let mut t = Trainer::new(dev, data, config)?;
    usage(a.cpu_step.apply(&mut t))?;
    if !a.json {
        println!("device: {device}");
        if let (false, Some(why)) = (t.device().is_gpu(), t.cpu_step_plan()) {
            println!("steps run per op: {why}");
        }
        println!("warm-up epoch …");
    }
    t.train_epoch(|_, _, _| {}, 0)?;
    let mut secs = Vec::new();
    for e in 0..a.epochs {
        let (_, _, s) = t.train_epoch(|_, _, _| {}, 0)?;
        if !a.json {
            println!("epoch {}: {s:.3} s", e + 1);
        }
        secs.push(s * 1e3);
    }
    let tm = bench::Timing::from_ms(secs, "wall_clock");
    Ok((tm.median_ms / 1e3, tm.min_ms / 1e3, tm.max_ms / 1e3, device))
}

/// One line (or JSON object) per run; with `--threads`, its thread count and its speedup over
/// the first count's median.
fn epoch_report(
    a: &EpochBench,
    rows: usize,
    (median, min, max, device): (f64, f64, f64, String),
    threads: Option<(usize, f64)>,
) -> Result<()> {
    let sps = rows as f64 / median;
    if a.json {
        let mut j = json!({
            "median_s": median, "min_s": min, "max_s": max, "samples_per_s": sps,
            "batch_size": a.batch_size, "device": device, "optimizer": a.optim.optimizer,
            "epochs": a.epochs, "samples": rows, "cpu_step": a.cpu_step.cpu_step.name(),
        });
        if let Some((n, speedup)) = threads {
            j["threads"] = json!(n);
            j["speedup"] = json!(speedup);
        }
        println!("{j}");
    } else {
        let th = threads.map_or(String::new(), |(n, _)| format!("threads {n}: "));
        let sp = threads.map_or(String::new(), |(_, x)| format!(", {x:.2}× the first count"));
        println!(
            "{th}median {median:.3} s (min {min:.3}, max {max:.3}), {sps:.0} samples/s, batch {}{sp}",
            a.batch_size
        );
    }
    Ok(())
}
