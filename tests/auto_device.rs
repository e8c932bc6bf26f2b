//! `--device auto` by measurement (`app::auto_device`), with lavapipe standing in for a GPU: the
//! trial times a few steps on each device, keeps the faster (the CPU backend here: lavapipe
//! renders in software), says so with both times, and caches the verdict; the next call takes
//! the cached verdict without a trial, and a verdict for the GPU opens the GPU.

mod common;

use descent::app::auto_device::{faster_for_training, time_steps, TRIAL_STEPS};
use descent::app::train::{ShuffleOrder, TrainConfig};
use descent::backend::{Act, Device};
use descent::data::load_idx_dataset;
use descent::optim::{OptimConfig, Schedule};

fn config() -> TrainConfig {
    TrainConfig {
        epochs: 1,
        batch_size: 64,
        seed: 0,
        shuffle: ShuffleOrder::Randperm,
        hidden: vec![32],
        act: Act::Relu,
        optimizer: OptimConfig::defaults("adam").unwrap(),
        schedule: Schedule::Constant,
        eval_batch: 1000,
    }
}

fn notice(dev: &Device) -> String {
    dev.notice.as_ref().map(|m| m.to_string()).unwrap_or_default()
}

#[test]
fn a_trial_times_both_devices_and_keeps_the_faster() {
    let data = load_idx_dataset("fashion-mnist", Some(&descent::data::embedded_subset_dir())).unwrap();
    let c = config();
    for dev in [Device::cpu(), common::gpu()] {
        let ms = time_steps(dev, &data, &c, TRIAL_STEPS).unwrap();
        assert!(ms.is_finite() && ms > 0.0, "{ms}");
    }
    let cache = common::temp_dir("auto").join("auto-device.json");
    let dev = faster_for_training(common::gpu(), &data, &c, Some(&cache)).unwrap();
    let said = notice(&dev);
    assert!(!dev.is_gpu(), "lavapipe is slower than the CPU backend: {said}");
    assert!(said.starts_with("the CPU backend, the faster for this model and batch"), "{said}");
    assert!(said.contains("ms a step on gpu: llvmpipe") && said.contains("timed now"), "{said}");
    let stored = std::fs::read_to_string(&cache).unwrap();
    assert!(stored.contains("\"cpu\"") && stored.contains("llvmpipe"), "{stored}");
    // The next run takes the cached verdict.
    let again = faster_for_training(common::gpu(), &data, &c, Some(&cache)).unwrap();
    assert!(!again.is_gpu() && notice(&again).contains("cached in"), "{}", notice(&again));
    // A verdict for the GPU (as a hardware adapter would earn) opens the GPU, untimed.
    std::fs::write(&cache, stored.replace("\"cpu\"", "\"gpu\"")).unwrap();
    let gpu = faster_for_training(common::gpu(), &data, &c, Some(&cache)).unwrap();
    assert!(gpu.is_gpu() && notice(&gpu).starts_with("the GPU, the faster"), "{}", notice(&gpu));
    // Another run shape is timed afresh; without a cache nothing is written.
    let other = TrainConfig { batch_size: 32, ..c.clone() };
    let none = common::temp_dir("auto-none").join("auto-device.json");
    let d = faster_for_training(common::gpu(), &data, &other, None).unwrap();
    assert!(notice(&d).contains("timed now") && !none.exists());
}

/// A GPU that cannot run the model loses the trial: the CPU backend, with the reason.
#[test]
fn a_failed_trial_falls_back_to_the_cpu() {
    let data = load_idx_dataset("fashion-mnist", Some(&descent::data::embedded_subset_dir())).unwrap();
    // 784 × 512 weights: an arena past the 1 MiB binding, which the trainer refuses.
    let c = TrainConfig { hidden: vec![512], ..config() };
    let dev = faster_for_training(common::small_binding_gpu(), &data, &c, None).unwrap();
    let said = notice(&dev);
    assert!(!dev.is_gpu() && said.starts_with("the CPU backend: the trial on gpu: llvmpipe"), "{said}");
    assert!(said.contains("failed (") && said.ends_with("Device::gpu tries it anyway"), "{said}");
}
