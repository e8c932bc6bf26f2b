//! `descent compare` and `descent train --metrics/--plot` on the embedded Fashion-MNIST subset:
//! the files they write and the metrics.json schema users script against.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn descent(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_descent")).args(args).output().unwrap();
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), s(&out.stdout), s(&out.stderr))
}

const SUBSET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/fashion-mnist-subset");

fn check_epochs(run: &Value, epochs: usize) {
    let e = run["epochs"].as_array().expect("epochs array");
    assert_eq!(e.len(), epochs);
    for (i, m) in e.iter().enumerate() {
        assert_eq!(m["epoch"], i + 1);
        for key in ["train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds"] {
            let v = m[key].as_f64().unwrap_or_else(|| panic!("{key} in {m}"));
            assert!(v.is_finite() && v >= 0.0, "{key} = {v}");
        }
        assert!(m["test_accuracy"].as_f64().unwrap() <= 1.0);
    }
}

fn is_png(p: &Path) -> bool {
    std::fs::read(p).map(|b| b.starts_with(b"\x89PNG")).unwrap_or(false)
}

#[test]
fn compare_writes_metrics_figures_and_a_table() {
    let out = std::env::temp_dir().join(format!("descent-compare-{}", std::process::id()));
    let o = out.to_string_lossy().into_owned();
    let (code, stdout, stderr) = descent(&[
        "compare",
        "--case",
        "fashion-mnist",
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--data-dir",
        SUBSET,
        "--out",
        &o,
        "--optimizers",
        "sgd,adam",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("| optimizer |") && stdout.contains("| sgd |") && stdout.contains("| adam |"), "{stdout}");
    let m: Value = serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["case"], "fashion-mnist");
    assert_eq!(m["batch_size"], 64);
    assert_eq!((&m["seed"], &m["shuffle"]), (&serde_json::json!(0), &serde_json::json!("randperm")));
    assert!(m["dataset"].as_str().unwrap().contains("subset") && m["device"].is_string());
    let runs = m["runs"].as_array().unwrap();
    assert_eq!(runs.iter().map(|r| r["optimizer"].as_str().unwrap()).collect::<Vec<_>>(), ["sgd", "adam"]);
    assert_eq!(runs[1]["hyperparameters"]["lr"], 0.001);
    assert_eq!(runs[1]["hyperparameters"]["betas"], serde_json::json!([0.9, 0.999]));
    for r in runs {
        check_epochs(r, 2);
    }
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().next(), Some("optimizer,epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds"));
    assert_eq!(csv.lines().count(), 1 + 2 * 2);
    assert!(is_png(&out.join("train_loss.png")) && is_png(&out.join("test_accuracy.png")));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn train_writes_the_same_schema_and_a_plot() {
    let dir = std::env::temp_dir().join(format!("descent-train-metrics-{}", std::process::id()));
    let metrics = dir.join("m.json");
    let plot = dir.join("curves.png");
    let (code, _, stderr) = descent(&[
        "train",
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--data-dir",
        SUBSET,
        "--optimizer",
        "adamw",
        "--seed",
        "3",
        "--shuffle",
        "dataloader",
        "--metrics",
        &metrics.to_string_lossy(),
        "--plot",
        &plot.to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    assert_eq!((&m["seed"], &m["shuffle"]), (&serde_json::json!(3), &serde_json::json!("dataloader")));
    let runs = m["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["optimizer"], "adamw");
    assert_eq!(runs[0]["hyperparameters"]["weight_decay"], 0.01);
    check_epochs(&runs[0], 2);
    assert!(is_png(&plot));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compare_runs_each_width_an_optimizer_has() {
    // Adafactor keeps statistics, so it runs at 16 bits; plain SGD keeps none and is skipped.
    let out = std::env::temp_dir().join(format!("descent-compare-widths-{}", std::process::id()));
    let o = out.to_string_lossy().into_owned();
    let args = ["compare", "--case", "fashion-mnist", "--epochs", "1", "--device", "cpu", "--data-dir", SUBSET];
    let more = ["--out", &o, "--optimizers", "sgd,adafactor", "--optim-bits", "32,16"];
    let (code, stdout, stderr) = descent(&[&args[..], &more[..]].concat());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("sgd: skipped at 16 bits (it keeps no state)"), "{stdout}");
    let m: Value = serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let runs: Vec<&str> = m["runs"].as_array().unwrap().iter().map(|r| r["optimizer"].as_str().unwrap()).collect();
    assert_eq!(runs, ["sgd", "adafactor", "adafactor_16bit"]);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn compare_rejects_bad_requests() {
    for (args, want, says) in [
        (vec!["compare", "--case", "imagenet"], 2, "unknown case 'imagenet'"),
        // A label neither in the case nor an optimizer (any optimizer may join a case).
        (vec!["compare", "--case", "cifar10", "--optimizers", "lbfgs"], 2, "'lbfgs' is not in the cifar10 case"),
        (vec!["compare", "--case", "fashion-mnist", "--epochs", "0"], 2, "--epochs"),
        (vec!["compare", "--case", "fashion-mnist", "--batch-size", "0"], 2, "--batch-size"),
        (vec!["train", "--plot", "x.svg"], 2, "PNG"),
        (vec!["train", "--dataset", "folder:"], 2, "folder:PATH"),
        (vec!["train", "--dataset", "cifar10", "--data-dir", "/nonexistent"], 1, "no such directory"),
    ] {
        let (code, _, err) = descent(&args);
        assert_eq!(code, want, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
