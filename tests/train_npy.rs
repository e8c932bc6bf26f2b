//! Training on your own f32 data (`descent train --dataset npy:DIR`, `app::tabular`), on both
//! devices: a regression (`tests/fixtures/npy/sine`, MSE) and a classification
//! (`tests/fixtures/npy/blobs`, cross-entropy) reach their targets and PyTorch's figures for
//! the same loop, seed and order (`tests/fixtures/torch_train_npy.py`, PyTorch 2.15).

#[macro_use]
mod common;

use descent::app::tabular::{load_npy_dir, TabularLoss, TabularTrainer};
use descent::app::train::{ShuffleOrder, TrainConfig};
use descent::backend::{Act, Device};
use descent::optim::{OptimConfig, Schedule};
use std::path::Path;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npy").join(name)
}

fn config(epochs: usize, hidden: Vec<usize>, act: Act) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        seed: 0,
        shuffle: ShuffleOrder::Randperm,
        hidden,
        act,
        optimizer: OptimConfig::defaults("adam").unwrap().with_lr(0.01),
        schedule: Schedule::Constant,
        eval_batch: 100,
    }
}

/// Within 1% of PyTorch's figure (f32 sums in another order, over every step of the run).
fn near_torch(got: f64, torch: f64, what: &str) {
    assert!((got - torch).abs() <= 0.01 * torch, "{what}: {got} vs PyTorch's {torch}");
}

/// `y = sin(2·x0) + x1·x2`: 30 epochs of Adam (lr 0.01, batch 32) on a 3-32-32-1 tanh MLP
/// reach a test MSE under 0.01, and PyTorch's train 0.004075 and test 0.003641.
fn sine_regression_reaches_its_target(dev: &mut Device) {
    let dev = std::mem::replace(dev, Device::cpu());
    let data = load_npy_dir(&fixture("sine"), TabularLoss::Mse, None).unwrap();
    assert_eq!((data.train.rows, data.test.as_ref().unwrap().rows, data.train.cols), (512, 256, 3));
    let mut t = TabularTrainer::new(dev, &data, config(30, vec![32, 32], Act::Tanh), TabularLoss::Mse).unwrap();
    let mut last = None;
    for _ in 0..30 {
        last = Some(t.run_epoch().unwrap());
    }
    let m = last.unwrap();
    assert!(m.train_accuracy.is_nan() && m.test_accuracy.is_nan(), "a regression has no accuracy");
    assert!(m.test_loss < 0.01, "test MSE {}", m.test_loss);
    near_torch(m.train_loss, 0.004075, "train MSE, epoch 30");
    near_torch(m.test_loss, 0.003641, "test MSE, epoch 30");
}
test_device!(sine_regression, sine_regression_reaches_its_target);

/// Three Gaussian blobs: 5 epochs of Adam on a 4-16-3 ReLU MLP reach a test accuracy over
/// 0.95, and PyTorch's losses (train 0.027949, test 0.022586).
fn blobs_classification_reaches_its_target(dev: &mut Device) {
    let dev = std::mem::replace(dev, Device::cpu());
    let data = load_npy_dir(&fixture("blobs"), TabularLoss::CrossEntropy, None).unwrap();
    let mut t = TabularTrainer::new(dev, &data, config(5, vec![16], Act::Relu), TabularLoss::CrossEntropy).unwrap();
    assert_eq!(t.model().sizes, vec![4, 16, 3], "the classes come from the labels");
    let m = (0..5).map(|_| t.run_epoch().unwrap()).last().unwrap();
    assert!(m.test_accuracy > 0.95, "test accuracy {}", m.test_accuracy);
    near_torch(m.train_loss, 0.027949, "train loss, epoch 5");
    near_torch(m.test_loss, 0.022586, "test loss, epoch 5");
}
test_device!(blobs_classification, blobs_classification_reaches_its_target);

/// The wrong loss for the targets, and a model the data does not fit, are errors that say so.
#[test]
fn targets_that_do_not_fit_the_loss_are_errors() {
    let e = load_npy_dir(&fixture("sine"), TabularLoss::CrossEntropy, None).unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains("not a class index") && e.contains("--loss mse"), "{e}");
    let e = load_npy_dir(&fixture("blobs"), TabularLoss::Mse, None).unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains("float32"), "{e}");
    let e = load_npy_dir(&fixture("blobs"), TabularLoss::CrossEntropy, Some(2)).unwrap_err();
    let e = format!("{e:#}");
    assert!(e.contains("2 classes"), "{e}");
    let data = load_npy_dir(&fixture("sine"), TabularLoss::Mse, None).unwrap();
    let e = TabularTrainer::new(Device::cpu(), &data, config(1, vec![4], Act::Relu), TabularLoss::CrossEntropy);
    assert!(format!("{:#}", e.err().unwrap()).contains("--loss ce needs class indices"));
}

/// The command line: the regression's epoch lines name the loss, and --metrics writes the
/// schema of `descent train`'s metrics.json with no accuracy (null) for a regression.
#[test]
fn the_command_line_trains_a_regression_and_writes_its_metrics() {
    let dir = common::temp_dir("npy-cli");
    let metrics = dir.join("metrics.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(["train", "--dataset", &format!("npy:{}", fixture("sine").display()), "--loss", "mse"])
        .args(["--optimizer", "adam", "--lr", "0.01", "--hidden", "32,32", "--activation", "tanh"])
        .args(["--batch-size", "32", "--epochs", "30", "--device", "cpu", "--metrics"])
        .arg(&metrics)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("model: 3-32-32-1") && text.contains("loss mse"), "{text}");
    assert!(text.contains("epoch  30/30  train mse 0.0040") && text.contains("test mse 0.0036"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&metrics).unwrap()).unwrap();
    let epochs = json["runs"][0]["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 30);
    assert!(epochs[29]["train_accuracy"].is_null() && epochs[29]["test_loss"].as_f64().unwrap() < 0.01);
}
