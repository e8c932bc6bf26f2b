//! Every optimizer and schedule against trajectories made by PyTorch's torch.optim in float64
//! (tests/fixtures/make_optim_fixtures.py): parameters after every step, the learning rate of
//! every step, and every final state buffer, on the CPU and GPU backends through `replay`.
//! Tolerance for f32 against the f64 reference:
//! |x − ref| ≤ 1e-4·|ref| + 1e-5·(largest |value| of that coordinate over the trajectory).

mod common;

use descent::app::replay::{run, ReplaySpec};
use descent::backend::Device;
use serde_json::Value;

fn fixtures() -> Vec<(String, Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/optim");
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .expect("fixture folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 20, "expected the committed fixtures, found {}", out.len());
    out
}

fn rows(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()).collect()
}

fn want_rows(fx: &Value) -> Vec<Vec<f64>> {
    rows(&fx["expected"]["params"])
}

/// The largest |value| of coordinate `i` over a trajectory.
fn want_scale(rows: &[Vec<f64>], i: usize) -> f64 {
    rows.iter().map(|r| r[i].abs()).fold(0.0, f64::max)
}

fn within(got: f64, want: f64, scale: f64) -> bool {
    (got - want).abs() <= 1e-4 * want.abs() + 1e-5 * scale
}

fn check_device(mut dev: Device) {
    let mut covered = std::collections::BTreeSet::new();
    for (name, fx) in fixtures() {
        let spec = ReplaySpec::parse(&fx["spec"].to_string()).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        covered.insert(spec.optimizer.name().to_string());
        if spec.optimizer.maximize() {
            covered.insert("maximize".to_string());
        }
        let t = run(&mut dev, &spec).unwrap();
        let want = rows(&fx["expected"]["params"]);
        let lr: Vec<f64> = fx["expected"]["lr"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert!(want.len() >= 30, "{name}: fewer than 30 steps");
        assert_eq!(t.params.len(), want.len(), "{name}: step count");
        for (s, (a, b)) in t.lr.iter().zip(&lr).enumerate() {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-12), "{name}: lr at step {s}: {a} vs PyTorch {b}");
        }
        let n = want[0].len();
        for i in 0..n {
            let scale = want.iter().map(|r| r[i].abs()).fold(0.0, f64::max);
            for (s, row) in want.iter().enumerate() {
                let got = t.params[s][i] as f64;
                assert!(
                    within(got, row[i], scale),
                    "{name} ({}): param {i} after step {}: {got} vs PyTorch {}",
                    dev.describe(),
                    s + 1,
                    row[i]
                );
            }
        }
        // Schedule-Free: x after the switch to eval mode.
        match (fx["expected"].get("eval_params"), &t.eval_params) {
            (Some(want), Some(got)) => {
                for (i, w) in want.as_array().unwrap().iter().enumerate() {
                    let w = w.as_f64().unwrap();
                    let scale = want_scale(&want_rows(&fx), i).max(w.abs());
                    assert!(within(got[i] as f64, w, scale), "{name}: eval param {i}: {} vs reference {w}", got[i]);
                }
            }
            (None, None) => {}
            (w, g) => panic!("{name}: eval_params expected {}, replay gave {}", w.is_some(), g.is_some()),
        }
        let states = fx["expected"]["states"].as_array().unwrap();
        let last = states.last().unwrap().as_object().unwrap();
        for (key, val) in last {
            if key == "step" {
                assert_eq!(t.steps as f64, val.as_f64().unwrap(), "{name}: step count");
                continue;
            }
            let (_, got) = t.state.iter().find(|(k, _)| k == key).unwrap_or_else(|| {
                panic!("{name}: no state '{key}' in {:?}", t.state.iter().map(|s| s.0).collect::<Vec<_>>())
            });
            let traj: Vec<Vec<f64>> = states
                .iter()
                .map(|s| s[key].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
                .collect();
            // A state is as long as the parameters, or (Adafactor's rows and columns) its own length.
            let len = val.as_array().unwrap().len();
            assert_eq!(got.len(), len, "{name}: {key} has {} values, PyTorch's {len}", got.len());
            for i in 0..len {
                let scale = traj.iter().map(|r| r[i].abs()).fold(0.0, f64::max);
                let want = val[i].as_f64().unwrap();
                assert!(within(got[i] as f64, want, scale), "{name}: {key}[{i}] = {} vs PyTorch {want}", got[i]);
            }
        }
        // Same buffers as PyTorch (SGD keeps no step count there; replay always reports one).
        let theirs = last.keys().filter(|k| *k != "step").count();
        assert_eq!(
            t.state.len(),
            theirs,
            "{name}: state buffers differ from PyTorch's: ours {:?}",
            t.state.iter().map(|s| s.0).collect::<Vec<_>>()
        );
    }
    for o in descent::optim::OPTIMIZER_NAMES {
        assert!(covered.contains(o), "no fixture covers {o}");
    }
    assert!(covered.contains("maximize"), "no fixture maximizes");
}

#[test]
fn cpu_matches_pytorch_fixtures() {
    check_device(Device::cpu());
}

#[test]
fn gpu_matches_pytorch_fixtures() {
    check_device(common::gpu());
}

/// Rprop reads its rate once, for the first step sizes (PyTorch's semantics): a schedule moves
/// nothing, on either device.
#[test]
fn rprop_ignores_the_schedule() {
    let spec = |schedule: &str| {
        ReplaySpec::parse(&format!(
            r#"{{"optimizer": {{"name": "rprop", "lr": 0.05}}, "schedule": {schedule}, "init": [0.5, -1.5, 2.0],
               "quadratic": [1.0, 10.0, 0.01], "steps": 30}}"#
        ))
        .unwrap()
    };
    for mut dev in [Device::cpu(), common::gpu()] {
        let constant = run(&mut dev, &spec("null")).unwrap();
        let scheduled = run(&mut dev, &spec(r#"{"name": "step", "step_size": 3, "gamma": 0.1}"#)).unwrap();
        assert!(scheduled.lr[29] < 1e-10 && constant.lr[29] == 0.05, "the schedules differ");
        assert_eq!(constant.params, scheduled.params, "{}", dev.describe());
        assert_eq!(constant.state, scheduled.state);
    }
}

#[test]
fn replay_rejects_bad_specs_with_json_paths() {
    let bad = [
        ("{", "invalid JSON"),
        (r#"{"init": [1], "grads": [[1]]}"#, "$.optimizer: missing"),
        (r#"{"optimizer": {"name": "adamx"}, "init": [1], "grads": [[1]]}"#, "unknown optimizer"),
        (r#"{"optimizer": {"name": "adam", "lr": -1}, "init": [1], "grads": [[1]]}"#, "invalid lr"),
        (r#"{"optimizer": {"name": "adam", "betas": [0.9, 1.0]}, "init": [1], "grads": [[1]]}"#, "beta"),
        (r#"{"optimizer": {"name": "sgd", "nesterov": true}, "init": [1], "grads": [[1]]}"#, "nesterov"),
        (
            r#"{"optimizer": {"name": "adam", "maximize": 1}, "init": [1], "grads": [[1]]}"#,
            "$.optimizer.maximize: expected true or false",
        ),
        (
            r#"{"optimizer": {"name": "lion", "betas": [0.9, 1.5]}, "init": [1], "grads": [[1]]}"#,
            "invalid beta parameter at index 1: 1.5 (must be in [0, 1])",
        ),
        (
            r#"{"optimizer": {"name": "nadam", "rho": 0.9}, "init": [1], "grads": [[1]]}"#,
            "$.optimizer.rho: 'nadam' takes no 'rho'",
        ),
        (r#"{"optimizer": {"name": "adadelta", "rho": 1.5}, "init": [1], "grads": [[1]]}"#, "rho"),
        (r#"{"optimizer": {"name": "nadam", "momentum_decay": -1}, "init": [1], "grads": [[1]]}"#, "momentum_decay"),
        (r#"{"optimizer": {"name": "rprop", "etas": [1.5, 1.2]}, "init": [1], "grads": [[1]]}"#, "invalid etas"),
        (
            r#"{"optimizer": {"name": "rprop", "weight_decay": 0.1}, "init": [1], "grads": [[1]]}"#,
            "'rprop' takes no 'weight_decay'",
        ),
        (
            r#"{"optimizer": {"name": "ademamix", "betas": [0.9, 0.999]}, "init": [1], "grads": [[1]]}"#,
            "$.optimizer.betas: expected an array of 3 numbers",
        ),
        (r#"{"optimizer": {"name": "ademamix", "t_alpha": 0}, "init": [1], "grads": [[1]]}"#, "invalid t_alpha: 0"),
        (r#"{"optimizer": {"name": "ademamix", "t_beta3": "soon"}, "init": [1], "grads": [[1]]}"#, "t_beta3"),
        (
            r#"{"optimizer": {"name": "schedulefree_adamw", "warmup_steps": -1}, "init": [1], "grads": [[1]]}"#,
            "warmup_steps",
        ),
        (r#"{"optimizer": {"name": "asgd", "t0": 1e400}, "init": [1], "grads": [[1]]}"#, "invalid JSON"),
        (
            r#"{"optimizer": {"name": "adafactor"}, "shape": [2, 2], "init": [1, 2, 3], "grads": [[1, 2, 3]]}"#,
            "$.shape: [2, 2] holds 4 values but init has 3",
        ),
        (
            r#"{"optimizer": {"name": "adafactor"}, "shape": [0, 3], "init": [1], "grads": [[1]]}"#,
            "$.shape[0]: expected a whole number >= 1",
        ),
        (r#"{"optimizer": {"name": "adafactor", "d": 0.5}, "init": [1], "grads": [[1]]}"#, "invalid d: 0.5"),
        (
            r#"{"optimizer": {"name": "adafactor", "eps": [1e-30]}, "init": [1], "grads": [[1]]}"#,
            "$.optimizer.eps: expected an array of 2 numbers (or null where the default is)",
        ),
        (
            r#"{"optimizer": {"name": "adafactor", "eps": [1e-30, null]}, "init": [1], "grads": [[1]]}"#,
            "$.optimizer.eps",
        ),
        (
            r#"{"optimizer": {"name": "adafactor", "beta2_decay": 0.5}, "init": [1], "grads": [[1]]}"#,
            "invalid beta2_decay",
        ),
        (
            r#"{"optimizer": {"name": "adafactor", "optim_bits": 8}, "init": [1], "grads": [[1]]}"#,
            "'adafactor' has no 8-bit form",
        ),
        (r#"{"optimizer": {"name": "sgd"}, "init": [1, 2], "grads": [[1, 2], [1]]}"#, "$.grads[1]: has 1 values"),
        (r#"{"optimizer": {"name": "sgd"}, "init": [1], "grads": [[1]], "quadratic": [1], "steps": 2}"#, "not both"),
        (r#"{"optimizer": {"name": "sgd"}, "init": [1]}"#, "missing \"grads\""),
        (r#"{"optimizer": {"name": "sgd"}, "init": [1], "quadratic": [1, 2], "steps": 2}"#, "$.quadratic: has 2"),
        (
            r#"{"optimizer": {"name": "sgd", "lr": "x"}, "init": [1], "grads": [[1]]}"#,
            "$.optimizer.lr: expected a number",
        ),
        (r#"{"optimizer": {"name": "sgd"}, "init": ["a"], "grads": [[1]]}"#, "$.init[0]"),
        (
            r#"{"optimizer": {"name": "sgd"}, "schedule": {"name": "step"}, "init": [1], "grads": [[1]]}"#,
            "$.schedule.step_size",
        ),
    ];
    for (text, want) in bad {
        let err = format!("{:#}", ReplaySpec::parse(text).unwrap_err());
        assert!(err.contains(want), "spec {text}: error '{err}' does not mention '{want}'");
    }
}
