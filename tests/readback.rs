//! The asynchronous readback path both targets use: natively `Device::read` and `sync` wait
//! for the same futures `read_async` and `finish_async` return (a browser awaits them). A
//! future owns its copy: work recorded after it was asked for does not change what it reads,
//! and futures may be awaited in any order. Training's async epoch gives the sync epoch's
//! numbers bit for bit.

mod common;

use descent::app::train::{ShuffleOrder, TrainConfig, Trainer};
use descent::backend::{wait, Act, Device};
use descent::data::{embedded_subset_dir, load_idx_dataset};
use descent::optim::{OptimConfig, Schedule};

fn reads_what_was_there_when_asked(mut dev: Device) {
    let v = dev.upload(&[1.0, 2.0, 3.0]).unwrap();
    let first = dev.read_async(v);
    dev.fill(v, 5.0);
    let second = dev.read_async(v.slice(1, 2));
    assert_eq!(wait(second).unwrap(), vec![5.0; 2]);
    assert_eq!(wait(first).unwrap(), vec![1.0, 2.0, 3.0]);
    dev.fill(v, 7.0);
    wait(dev.finish_async()).unwrap();
    assert_eq!(dev.read(v).unwrap(), vec![7.0; 3]);
    let empty = dev.read_async(v.slice(0, 0));
    assert_eq!(wait(empty).unwrap(), Vec::<f32>::new());
}

#[test]
fn cpu_futures_read_what_was_there_when_asked() {
    reads_what_was_there_when_asked(Device::cpu());
}

#[test]
fn gpu_futures_read_what_was_there_when_asked() {
    reads_what_was_there_when_asked(common::gpu());
}

fn trainer(dev: Device) -> Trainer {
    let data = load_idx_dataset("fashion-mnist", Some(&embedded_subset_dir())).unwrap();
    let config = TrainConfig {
        epochs: 2,
        batch_size: 64,
        seed: 0,
        shuffle: ShuffleOrder::Randperm,
        hidden: vec![32],
        act: Act::Relu,
        optimizer: OptimConfig::defaults("adam").unwrap(),
        schedule: Schedule::Constant,
        eval_batch: 1000,
    };
    Trainer::new(dev, &data, config).unwrap()
}

#[test]
fn async_epochs_are_the_sync_epochs() {
    for gpu in [false, true] {
        let dev = || if gpu { common::gpu() } else { Device::cpu() };
        let (mut sync, mut asynchronous) = (trainer(dev()), trainer(dev()));
        for _ in 0..2 {
            let a = sync.run_epoch(|_, _, _| {}, 0).unwrap();
            let b = wait(asynchronous.run_epoch_async()).unwrap();
            let strip = |m: descent::app::train::EpochMetrics| {
                (m.epoch, m.train_loss, m.train_accuracy, m.test_loss, m.test_accuracy)
            };
            assert_eq!(strip(a), strip(b), "gpu: {gpu}");
        }
    }
}
