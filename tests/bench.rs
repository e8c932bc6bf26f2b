//! `descent bench`: the unfused baseline computes what the fused kernels compute (so the
//! speedup compares like with like), and the JSON schemas users script against stay put.
//! No timing is asserted.

mod common;

use descent::app::bench::{bench_config, Unfused, BENCH_OPTIMIZERS};
use descent::backend::Device;
use descent::optim::{Optimizer, Schedule};
use descent::reference::{ABS_TOL, REL_TOL};
use descent::rng::Rng;
use serde_json::Value;
use std::process::Command;

fn unfused_matches_fused(dev: &mut Device) {
    // The baseline covers the lecture's optimizers; the newer ones are benchmarked fused only.
    let covered: Vec<&str> =
        BENCH_OPTIMIZERS.into_iter().filter(|name| Unfused::covers(&bench_config(name).unwrap())).collect();
    assert_eq!(covered, ["adam", "adamw", "sgd", "rmsprop", "adagrad"]);
    for name in covered {
        for n in [1, 7, 1023] {
            let config = bench_config(name).unwrap();
            let mut rng = Rng::new(n as u64 + 17);
            let init = rng.uniform_vec(n, -1.0, 1.0);
            let params = dev.upload(&init).unwrap();
            let mut fused = Optimizer::for_len(dev, config.clone(), Schedule::Constant, n).unwrap();
            let mut unfused = Unfused::new(dev, &config, &init).unwrap();
            for _ in 0..3 {
                let g = dev.upload(&rng.uniform_vec(n, -1.0, 1.0)).unwrap();
                fused.step_views(dev, params, g).unwrap();
                unfused.step(dev, g);
                dev.release(g);
            }
            let want = dev.read(params).unwrap();
            let got = dev.read(unfused.params[0]).unwrap();
            let state = fused.read_state(dev).unwrap();
            let mut pairs = vec![("params", want, got)];
            for (k, (slot, v)) in state.into_iter().enumerate() {
                pairs.push((slot, v, dev.read(unfused.state[k][0]).unwrap()));
            }
            for (what, want, got) in pairs {
                for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                    // The unfused form rounds differently (sqrt(v)/√bc2 vs sqrt(v/bc2) etc.).
                    let tol = 10.0 * (ABS_TOL + REL_TOL * w.abs() as f64);
                    assert!(((w - g).abs() as f64) <= tol, "{name} n={n} {what}[{i}]: fused {w}, unfused {g}");
                }
            }
            fused.release(dev);
            unfused.release(dev);
            dev.release(params);
        }
    }
}

#[test]
fn unfused_baseline_matches_fused_on_cpu() {
    unfused_matches_fused(&mut Device::cpu());
}

#[test]
fn unfused_baseline_matches_fused_on_gpu() {
    unfused_matches_fused(&mut common::gpu());
}

fn descent_json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_descent")).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e})"))
}

fn number(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} missing or not a number in {v}"))
}

#[test]
fn bench_optim_json_schema() {
    let v =
        descent_json(&["bench", "optim", "--optimizer", "adam,sgd", "--params", "1000", "--repeats", "2", "--json"]);
    assert!(v["device"]["name"].is_string() && number(&v, "copy_gb_per_s") > 0.0);
    assert!(number(&v, "streaming_gb_per_s") > 0.0);
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "2 optimizers × 3 variants");
    let variants: Vec<&str> = rows.iter().map(|r| r["variant"].as_str().unwrap()).collect();
    assert_eq!(&variants[..3], ["fused_multi_tensor", "fused_per_tensor", "unfused"]);
    for r in rows {
        for key in ["median_ms", "min_ms", "max_ms", "gb_per_s", "fraction_of_copy_bw", "fraction_of_streaming_bw"] {
            assert!(number(r, key) > 0.0, "{key} in {r}");
        }
        assert!(number(r, "min_ms") <= number(r, "median_ms") && number(r, "median_ms") <= number(r, "max_ms"));
        assert_eq!(r["params"], 1000);
        let want = if r["optimizer"] == "adam" { 28 } else { 20 };
        assert_eq!(r["bytes_per_param"], want, "{r}");
        assert_eq!(r["clock"], "wall_clock");
    }
}

#[test]
fn bench_matmul_json_schema() {
    let v = descent_json(&["bench", "matmul", "--shapes", "nt:7x9x5,tn:3x4x5", "--repeats", "2", "--json"]);
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0]["form"].as_str(), rows[0]["m"].as_u64(), rows[0]["k"].as_u64()),
        (Some("nt"), Some(7), Some(9))
    );
    for r in rows {
        assert!(number(r, "gflop_per_s") > 0.0 && number(r, "median_ms") > 0.0);
        assert!(r["kernel"].is_null(), "the CPU backend runs no GPU kernel: {r}");
    }
}

/// `--matmul-kernels` times each shape with each GPU kernel choice, and each row names the
/// kernel it ran (on lavapipe, a software adapter, auto picks the tiled one).
#[test]
fn bench_matmul_names_the_gpu_kernel() {
    let v = descent_json(&[
        "bench",
        "matmul",
        "--device",
        "gpu",
        "--shapes",
        "nt:64x784x128,nn:5x7x3",
        "--repeats",
        "2",
        "--matmul-kernels",
        "auto,split-k",
        "--json",
    ]);
    let kernels: Vec<&str> = v["results"].as_array().unwrap().iter().map(|r| r["kernel"].as_str().unwrap()).collect();
    assert_eq!(kernels, ["tiled", "split-k 49×16", "tiled", "tiled"]);
}

#[test]
fn bench_epoch_json_schema() {
    let subset = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/fashion-mnist-subset");
    let v = descent_json(&["bench", "epoch", "--data-dir", subset, "--epochs", "3", "--batch-size", "100", "--json"]);
    for key in ["median_s", "min_s", "max_s", "samples_per_s"] {
        assert!(number(&v, key) > 0.0, "{key} in {v}");
    }
    assert_eq!(v["batch_size"], 100);
    assert!(v["device"].is_string());
}

/// Muon's rows on matrices: one per Newton–Schulz precision asked for, each with its FLOP rate
/// and its elementwise passes timed alone.
#[test]
fn bench_optim_muon_rows() {
    let v = descent_json(&[
        "bench",
        "optim",
        "--optimizer",
        "muon",
        "--shapes",
        "24x40",
        "--ns-dtype",
        "float32,bfloat16",
        "--repeats",
        "2",
        "--json",
    ]);
    let rows = v["results"].as_array().unwrap();
    let dtypes: Vec<&str> = rows.iter().map(|r| r["ns_dtype"].as_str().unwrap()).collect();
    assert_eq!(dtypes, ["float32", "bfloat16"]);
    for r in rows {
        assert_eq!(r["shapes"], serde_json::json!([[24, 40]]));
        for key in ["newton_schulz_tflop_per_s", "elementwise_ms", "elementwise_gb_per_s"] {
            assert!(number(r, key) > 0.0, "{key} in {r}");
        }
        assert!(number(r, "elementwise_ms") < number(r, "median_ms"), "{r}");
    }
}

/// `N*RxC` is one row of N same-shaped matrices in one arena (Muon steps them as one
/// Newton–Schulz batch), counted in the FLOP rate and printed back in that form.
#[test]
fn bench_optim_repeated_shapes_are_one_row() {
    let args = ["bench", "optim", "--optimizer", "muon", "--shapes", "24x40,4*8x12", "--repeats", "2"];
    let v = descent_json(&[&args[..], &["--json"]].concat());
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["shapes"], serde_json::json!([[24, 40]]));
    assert_eq!(rows[1]["shapes"], serde_json::json!([[8, 12], [8, 12], [8, 12], [8, 12]]));
    assert_eq!(rows[1]["tensors"], 4);
    // Muon's first and last matrices go to the auxiliary AdamW: two of the four are Muon's.
    let (m, n) = (8.0, 12.0);
    let flops = 2.0 * 5.0 * (4.0 * m * m * n + 2.0 * m * m * m);
    let rate = number(&rows[1], "newton_schulz_tflop_per_s");
    let counted = rate * 1e12 * number(&rows[1], "median_ms") * 1e-3;
    assert!((counted / flops - 1.0).abs() < 1e-6, "{counted} FLOPs counted, {flops} wanted: {}", rows[1]);
    let out = Command::new(env!("CARGO_BIN_EXE_descent")).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("4*8x12"), "{text}");
}

#[test]
fn bench_rejects_bad_requests() {
    for (args, says) in [
        (vec!["bench", "optim", "--params", "0"], "--params"),
        (vec!["bench", "optim", "--optimizer", "lbfgs"], "unknown optimizer"),
        (vec!["bench", "optim", "--device", "auto"], "--device cpu or --device gpu"),
        (vec!["bench", "optim", "--variants", "fast"], "--variants"),
        (vec!["bench", "optim", "--optimizer", "muon", "--shapes", "4x4", "--ns-dtype", "float16"], "--ns-dtype"),
        (
            vec!["bench", "optim", "--optimizer", "muon", "--shapes", "0*4x4"],
            "not a shape such as 784x128 or 12*256x256",
        ),
        (vec!["bench", "optim", "--optimizer", "muon", "--shapes", "5000*4x4"], "use at most 4096"),
        (vec!["bench", "matmul", "--shapes", "64x0x3"], "--shapes"),
        (vec!["bench", "matmul", "--matmul-kernels", "tiled"], "--device gpu"),
        (vec!["bench", "matmul", "--device", "gpu", "--matmul-kernels", "fast"], "--matmul-kernels fast"),
        (vec!["bench", "epoch", "--epochs", "2"], "at least 3"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_descent")).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
