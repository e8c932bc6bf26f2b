//! Optimizer state in 16 and 8 bits: the maps against bitsandbytes', replay against an
//! independent PyTorch implementation of the same semantics (tests/fixtures/
//! make_lowbit_fixtures.py) on both backends, bit-exact checkpoint resume at every width with
//! the state stored as BF16 / U8 + F32 tensors, frozen tensors at 8 bits, and the figures
//! `bench optim` reports. Kernel parity at odd sizes is in tests/parity.rs.

#[macro_use]
mod common;

use descent::app::checkpoint::{self, Stored};
use descent::app::replay::{self, ReplaySpec};
use descent::backend::quant::{DynamicMap, BLOCK};
use descent::backend::Device;
use descent::reference::{ABS_TOL, REL_TOL};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lowbit");
const SUBSET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/fashion-mnist-subset");

fn fixture(name: &str) -> Value {
    let path = format!("{FIXTURES}/{name}");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

#[test]
fn maps_equal_bitsandbytes_create_dynamic_map() {
    // maps.json was written by bitsandbytes.functional.create_dynamic_map (signed and not).
    let m = fixture("maps.json");
    assert_eq!(DynamicMap::signed().values.to_vec(), floats(&m["signed"]));
    assert_eq!(DynamicMap::unsigned().values.to_vec(), floats(&m["unsigned"]));
}

/// Every fixture replayed on `dev`: the parameters within the kernel tolerance (bit-exact on
/// the CPU), f32 and bf16 state likewise, and 8-bit state code for code except where the
/// PyTorch side's value sat within rounding of a midpoint (at most one per thousand).
fn replay_matches_independent_fixtures(dev: &mut Device) {
    let exact = !dev.is_gpu();
    for name in [
        "adam_8bit_4097",
        "adamw_8bit_4097",
        "adam_8bit_300",
        "adamw_16bit_300",
        "sgd_16bit_300",
        "sgd_8bit_4097",
        "rmsprop_8bit_4097",
        "adagrad_8bit_4097",
        "lion_8bit_4097",
        "ademamix_8bit_4097",
    ] {
        let f = fixture(&format!("{name}.json"));
        let spec = ReplaySpec::parse(&f["spec"].to_string()).unwrap();
        let out = replay::run(dev, &spec).unwrap();
        let close = |got: &[f32], want: &[f32], what: &str| {
            assert_eq!(got.len(), want.len(), "{name} {what}");
            for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
                let ok = if exact {
                    g.to_bits() == w.to_bits()
                } else {
                    (g - w).abs() as f64 <= ABS_TOL + REL_TOL * w.abs() as f64
                };
                assert!(ok, "{name} {what}[{i}]: got {g:e}, PyTorch {w:e} ({})", dev.describe());
            }
        };
        close(out.params.last().unwrap(), &floats(&f["params"]), "params");
        let state = |key: &str| out.state.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()).unwrap();
        match f.get("codes") {
            None => {
                for (key, want) in f["state"].as_object().unwrap() {
                    close(&state(key), &floats(want), key);
                }
            }
            Some(codes) => {
                let slots = codes.as_object().unwrap();
                assert!(!slots.is_empty(), "{name}: no codes");
                for slot in slots.keys().map(String::as_str) {
                    // bitsandbytes' rule: the signed map but for a second moment.
                    let map =
                        if matches!(slot, "exp_avg_sq" | "nu") { DynamicMap::unsigned() } else { DynamicMap::signed() };
                    let absmax_key = format!("{slot}_absmax");
                    let absmax = floats(&f["state"][&absmax_key]);
                    close(&state(&absmax_key), &absmax, &absmax_key);
                    let got = state(slot);
                    let mut ties = 0;
                    for (i, c) in codes[slot].as_array().unwrap().iter().enumerate() {
                        let c = c.as_u64().unwrap() as usize;
                        let a = absmax[i / BLOCK];
                        let value = |c: usize| map.values[c] * a;
                        if got[i] == value(c) {
                            continue;
                        }
                        // A neighbouring code: the two sides rounded a near-midpoint differently.
                        let neighbour = [c.wrapping_sub(1), c + 1].into_iter().any(|d| d < 256 && got[i] == value(d));
                        assert!(
                            neighbour,
                            "{name} {slot}[{i}]: {} is not code {c} of PyTorch's side or a neighbour",
                            got[i]
                        );
                        ties += 1;
                    }
                    assert!(ties <= (got.len() / 1000).max(1), "{name} {slot}: {ties} codes differ");
                }
            }
        }
    }
}

test_device!(replay_fixtures, replay_matches_independent_fixtures);

/// Adafactor with bfloat16 statistics, replayed on `dev` against PyTorch's own Adafactor in
/// float32 with its statistics rounded to bfloat16 after every step (20 steps; a matrix in each
/// orientation and a vector). PyTorch sums its statistics in another order (a norm, squared),
/// so a statistic near a bfloat16 rounding boundary may land one bfloat16 unit away: the
/// statistics must be equal or neighbouring bfloat16 values (at most one in twenty
/// neighbouring), and the parameters within the kernel tolerances.
fn adafactor_bf16_matches_pytorch(dev: &mut Device) {
    for name in ["adafactor_16bit_9x7", "adafactor_16bit_7x9", "adafactor_16bit_300"] {
        let f = fixture(&format!("{name}.json"));
        let spec = ReplaySpec::parse(&f["spec"].to_string()).unwrap();
        let out = replay::run(dev, &spec).unwrap();
        let params = out.params.last().unwrap();
        let want = floats(&f["params"]);
        assert_eq!(params.len(), want.len(), "{name}");
        for (i, (&g, &w)) in params.iter().zip(&want).enumerate() {
            let ok = (g - w).abs() as f64 <= ABS_TOL + REL_TOL * w.abs() as f64;
            assert!(ok, "{name} params[{i}]: got {g:e}, PyTorch {w:e} ({})", dev.describe());
        }
        let stats = f["state"].as_object().unwrap();
        assert!(!stats.is_empty(), "{name}: no statistics");
        for (key, want) in stats {
            let got = out.state.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap();
            let want = floats(want);
            assert_eq!(got.len(), want.len(), "{name} {key}");
            let mut neighbours = 0;
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits() & 0xFFFF, 0, "{name} {key}[{i}]: {g:e} is not a bfloat16");
                let units = (g.to_bits() >> 16).abs_diff(w.to_bits() >> 16);
                assert!(units <= 1, "{name} {key}[{i}]: got {g:e}, PyTorch {w:e} ({})", dev.describe());
                neighbours += units;
            }
            assert!(neighbours as usize <= got.len().div_ceil(20), "{name} {key}: {neighbours} neighbouring values");
        }
    }
}

test_device!(adafactor_bf16_fixtures, adafactor_bf16_matches_pytorch);

fn descent(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_descent")).args(args).output().unwrap()
}

fn train(args: &[&str]) {
    let mut all = vec!["train", "--data-dir", SUBSET, "--device", "cpu", "--hidden", "64"];
    all.extend_from_slice(args);
    let out = descent(&all);
    assert!(out.status.success(), "{all:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn checkpoints_store_each_width_and_resume_bit_exactly() {
    let d = common::temp_dir("resume");
    // 784·64 weights are quantized at 8 bits; the 64×10 layer and the biases keep f32 state.
    for (optimizer, bits) in [("adamw", "8"), ("adam", "16"), ("rmsprop", "16")] {
        let (full, half, resumed) = (d.join("full.st"), d.join("half.st"), d.join("resumed.st"));
        let common = ["--optimizer", optimizer, "--optim-bits", bits, "--schedule", "cosine:40:5"];
        train(&[&common[..], &["--epochs", "2", "--checkpoint", &s(&full)]].concat());
        train(&[&common[..], &["--epochs", "1", "--checkpoint", &s(&half)]].concat());
        train(&["--epochs", "2", "--resume", &s(&half), "--checkpoint", &s(&resumed)]);
        assert_eq!(std::fs::read(&full).unwrap(), std::fs::read(&resumed).unwrap(), "{optimizer} at {bits} bits");
        let (tensors, meta) = checkpoint::read(&full).unwrap();
        assert!(meta["optimizer"].contains(&format!("\"optim_bits\":{bits}")), "{}", meta["optimizer"]);
        let dtype = |name: &str| tensors.iter().find(|t| t.name == name).map(|t| t.dtype);
        let first = if optimizer == "rmsprop" { "square_avg" } else { "exp_avg" };
        if bits == "8" {
            assert_eq!(dtype("optimizer.exp_avg.0.weight"), Some(Stored::U8));
            assert_eq!(dtype("optimizer.exp_avg_sq_absmax.0.weight"), Some(Stored::F32));
            let absmax = tensors.iter().find(|t| t.name == "optimizer.exp_avg_absmax.0.weight").unwrap();
            assert_eq!(absmax.shape, vec![(784 * 64usize).div_ceil(BLOCK)]);
            assert_eq!(dtype("optimizer.exp_avg.2.weight"), Some(Stored::F32), "640 elements keep f32 state");
            assert_eq!(dtype("optimizer.exp_avg_absmax.2.weight"), None);
            assert_eq!(dtype("optimizer.exp_avg.0.bias"), Some(Stored::F32));
        } else {
            for t in tensors.iter().filter(|t| t.name.starts_with("optimizer.")) {
                assert_eq!(t.dtype, Stored::Bf16, "{}", t.name);
            }
            assert!(dtype(&format!("optimizer.{first}.0.weight")).is_some());
        }
        assert_eq!(dtype("0.weight"), Some(Stored::F32), "weights stay f32");
        // Export writes the f32 weights only.
        let out = d.join("w.st");
        let r = descent(&["export", "--checkpoint", &s(&full), "--out", &s(&out)]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let (w, _) = checkpoint::read(&out).unwrap();
        assert!(w.iter().all(|t| t.dtype == Stored::F32 && !t.name.starts_with("optimizer.")));
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_resume_at_another_width_or_with_other_state_is_refused() {
    let d = common::temp_dir("width");
    let ck = d.join("c.st");
    train(&["--optimizer", "adam", "--epochs", "1", "--checkpoint", &s(&ck)]);
    let r = descent(&[
        "train",
        "--data-dir",
        SUBSET,
        "--device",
        "cpu",
        "--epochs",
        "2",
        "--resume",
        &s(&ck),
        "--optim-bits",
        "8",
    ]);
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("keeps 32-bit optimizer state; a resume continues at the checkpoint's width"), "{err}");
    // A file whose state tensors are of another dtype than its optimizer says: no conversion.
    let (tensors, mut meta) = checkpoint::read(&ck).unwrap();
    meta.insert("optimizer".into(), meta["optimizer"].replace("\"name\"", "\"optim_bits\":16,\"name\""));
    let bad = d.join("bad.st");
    std::fs::write(&bad, checkpoint::encode(&tensors, &meta).unwrap()).unwrap();
    let r = descent(&["train", "--data-dir", SUBSET, "--device", "cpu", "--epochs", "2", "--resume", &s(&bad)]);
    assert_ne!(r.status.code(), Some(0));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("is stored as F32, but this 16-bit optimizer keeps it as Bf16"), "{err}");
    // A missing absmax tensor at 8 bits.
    let ck8 = d.join("c8.st");
    train(&["--optimizer", "adam", "--optim-bits", "8", "--epochs", "1", "--checkpoint", &s(&ck8)]);
    let (t8, m8) = checkpoint::read(&ck8).unwrap();
    let t8: Vec<_> = t8.into_iter().filter(|t| t.name != "optimizer.exp_avg_absmax.0.weight").collect();
    std::fs::write(&bad, checkpoint::encode(&t8, &m8).unwrap()).unwrap();
    let r = descent(&["train", "--data-dir", SUBSET, "--device", "cpu", "--epochs", "2", "--resume", &s(&bad)]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("tensor optimizer.exp_avg_absmax.0.weight is missing"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn metrics_record_the_width() {
    let d = common::temp_dir("metrics");
    let m = d.join("m.json");
    train(&["--optimizer", "adamw", "--optim-bits", "8", "--epochs", "1", "--metrics", &s(&m)]);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&m).unwrap()).unwrap();
    assert_eq!(v["runs"][0]["optim_bits"], 8);
    assert_eq!(v["runs"][0]["hyperparameters"]["optim_bits"], 8);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn bench_reports_bytes_per_parameter_and_state_bytes() {
    let out = descent(&[
        "bench",
        "optim",
        "--optimizer",
        "adam",
        "--optim-bits",
        "32,16,8",
        "--params",
        "1e5",
        "--repeats",
        "2",
        "--variants",
        "fused_multi_tensor",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["results"].as_array().unwrap();
    let figures: Vec<(u64, u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["optim_bits"].as_u64().unwrap(),
                r["bytes_per_param"].as_u64().unwrap(),
                r["state_bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    // 1e5 parameters: 391 blocks of 256, two absmax each.
    assert_eq!(figures, [(32, 28, 800_000), (16, 20, 400_000), (8, 16, 200_000 + 8 * 391)]);
}

/// At 8 bits a frozen tensor's parameters and state stay as they were, and the others train.
fn frozen_tensors_keep_their_state(dev: &mut Device) {
    use descent::nn::Mlp;
    use descent::optim::{Adam, OptimBits, OptimConfig, Optimizer, Schedule, StoredState};
    let mut rng = descent::torch_rng::TorchGenerator::new(0);
    let mut model = Mlp::new(dev, &[100, 64, 10], descent::backend::Act::Relu, &mut rng).unwrap();
    let config = OptimConfig::Adam(Adam::default()).with_optim_bits(OptimBits::B8);
    let mut opt = Optimizer::new(dev, &model.arena, config, Schedule::Constant).unwrap();
    let step = |dev: &mut Device, model: &Mlp, opt: &mut Optimizer| {
        let n = model.arena.len();
        dev.write(model.arena.grads, &(0..n).map(|i| ((i % 7) as f32 - 3.0) * 0.01).collect::<Vec<_>>()).unwrap();
        opt.step(dev, &model.arena).unwrap();
    };
    step(dev, &model, &mut opt);
    let first = model.arena.ids().next().unwrap();
    model.arena.set_frozen(first, true);
    let before = (dev.read(model.arena.params).unwrap(), opt.read_stored(dev).unwrap());
    step(dev, &model, &mut opt);
    let after = (dev.read(model.arena.params).unwrap(), opt.read_stored(dev).unwrap());
    let r = model.arena.entries[0].range();
    assert_eq!(before.0[r.clone()], after.0[r.clone()], "frozen parameters moved");
    let (StoredState::Blockwise8 { codes: c0, absmax: a0, .. }, StoredState::Blockwise8 { codes: c1, absmax: a1, .. }) =
        (&before.1, &after.1)
    else {
        panic!("8-bit state")
    };
    assert_eq!(c0[0][r.clone()], c1[0][r.clone()], "frozen codes changed");
    let blocks = 100 * 64 / BLOCK;
    assert_eq!(a0[0][..blocks], a1[0][..blocks], "frozen absmax changed");
    let r2 = model.arena.entries[2].range();
    assert_ne!(before.0[r2.clone()], after.0[r2], "the trainable layer did not train");
    opt.release(dev);
}

test_device!(frozen_at_8_bits, frozen_tensors_keep_their_state);

/// 16- and 8-bit training on the GPU (lavapipe) follows the CPU's: the same first epoch within
/// rounding.
#[test]
fn gpu_trains_at_every_width_like_the_cpu() {
    let _ = common::gpu();
    let d = common::temp_dir("gpu");
    for bits in ["16", "8"] {
        let mut losses = Vec::new();
        for device in ["cpu", "gpu"] {
            let m = d.join(format!("{device}{bits}.json"));
            let out = descent(&[
                "train",
                "--data-dir",
                SUBSET,
                "--device",
                device,
                "--hidden",
                "64",
                "--optimizer",
                "adamw",
                "--optim-bits",
                bits,
                "--epochs",
                "1",
                "--metrics",
                &s(&m),
            ]);
            assert!(out.status.success(), "{device} {bits}: {}", String::from_utf8_lossy(&out.stderr));
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&m).unwrap()).unwrap();
            losses.push(v["runs"][0]["epochs"][0]["train_loss"].as_f64().unwrap());
        }
        assert!((losses[0] - losses[1]).abs() < 1e-3 * losses[0], "{bits} bits: cpu {} gpu {}", losses[0], losses[1]);
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// bitsandbytes' other 8-bit optimizers: each slot stored as U8 codes with its `_absmax`, small
/// tensors in f32, and a resume bit-exact.
#[test]
fn every_8bit_optimizer_checkpoints_its_slots_and_resumes_bit_exactly() {
    let d = common::temp_dir("resume8");
    let cases: [(&[&str], &[&str]); 5] = [
        (&["--optimizer", "sgd", "--momentum", "0.9"], &["momentum_buffer"]),
        (&["--optimizer", "rmsprop", "--lr", "1e-3"], &["square_avg"]),
        (&["--optimizer", "adagrad"], &["sum"]),
        (&["--optimizer", "lion"], &["exp_avg"]),
        (&["--optimizer", "ademamix", "--t-alpha", "10"], &["m1", "m2", "nu"]),
    ];
    for (optimizer, slots) in cases {
        let (full, half, resumed) = (d.join("full.st"), d.join("half.st"), d.join("resumed.st"));
        let common = [optimizer, &["--optim-bits", "8"]].concat();
        train(&[&common[..], &["--epochs", "2", "--checkpoint", &s(&full)]].concat());
        train(&[&common[..], &["--epochs", "1", "--checkpoint", &s(&half)]].concat());
        train(&["--epochs", "2", "--resume", &s(&half), "--checkpoint", &s(&resumed)]);
        assert_eq!(std::fs::read(&full).unwrap(), std::fs::read(&resumed).unwrap(), "{optimizer:?}");
        let (tensors, _) = checkpoint::read(&full).unwrap();
        let dtype = |name: &str| tensors.iter().find(|t| t.name == name).map(|t| t.dtype);
        for slot in slots {
            assert_eq!(dtype(&format!("optimizer.{slot}.0.weight")), Some(Stored::U8), "{optimizer:?} {slot}");
            assert_eq!(dtype(&format!("optimizer.{slot}_absmax.0.weight")), Some(Stored::F32), "{optimizer:?} {slot}");
            assert_eq!(dtype(&format!("optimizer.{slot}.0.bias")), Some(Stored::F32), "{optimizer:?} {slot}");
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}
