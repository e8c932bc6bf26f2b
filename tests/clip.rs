//! Gradient clipping on both devices: `ParamArena::clip_grad_norm` and `clip_grad_value`
//! against PyTorch 2.15's `torch.nn.utils.clip_grad_norm_` and `clip_grad_value_` (figures
//! below, float32), frozen tensors left out, and no readback until the norm is asked for.

#[macro_use]
mod common;

use descent::backend::Device;
use descent::nn::ParamArena;

const A_GRAD: [f32; 6] = [0.5, -1.25, 2.0, 0.75, -0.5, 1.5];
const B_GRAD: [f32; 3] = [3.0, -0.25, 1.0];
/// `clip_grad_norm_([a, b], 2.0)` in PyTorch 2.15: the norm it returns and the clipped grads.
const TORCH_NORM: f64 = 4.351723670959473;
const TORCH_A: [f64; 6] = [
    0.2297939509153366,
    -0.5744848847389221,
    0.9191758036613464,
    0.3446909189224243,
    -0.2297939509153366,
    0.6893818378448486,
];
const TORCH_B: [f64; 3] = [1.3787636756896973, -0.1148969754576683, 0.4595879018306732];

fn arena(dev: &mut Device) -> ParamArena {
    let shapes = vec![("a".to_string(), vec![2, 3]), ("b".to_string(), vec![3]), ("frozen".to_string(), vec![2])];
    let arena = ParamArena::new(dev, shapes, vec![vec![0.0; 6], vec![0.0; 3], vec![0.0; 2]]).unwrap();
    let at = |name: &str| arena.entries.iter().find(|e| e.name == name).unwrap().offset;
    dev.write(arena.grads.slice(at("a"), 6), &A_GRAD).unwrap();
    dev.write(arena.grads.slice(at("b"), 3), &B_GRAD).unwrap();
    dev.write(arena.grads.slice(at("frozen"), 2), &[100.0, -100.0]).unwrap();
    arena
}

fn grads_of(dev: &mut Device, arena: &ParamArena, name: &str) -> Vec<f32> {
    let e = arena.entries.iter().find(|e| e.name == name).unwrap();
    dev.read(arena.grads.slice(e.offset, e.len())).unwrap()
}

fn close(got: &[f32], want: &[f64]) -> bool {
    got.iter().zip(want).all(|(&g, w)| (g as f64 - w).abs() <= 1e-6 + 1e-6 * w.abs())
}

/// Clipping to 2.0 matches PyTorch; a frozen tensor's gradient (100, −100) neither counts in
/// the norm nor survives; clipping to 10 leaves the gradients as they are; nothing is read back
/// until the norm is read.
fn clip_grad_norm_matches_pytorch(dev: &mut Device) {
    let mut arena = arena(dev);
    let frozen = arena.find("frozen").unwrap();
    arena.set_frozen(frozen, true);
    let before = dev.counters().bytes_read_back;
    let norm = arena.clip_grad_norm(dev, 2.0).unwrap();
    assert_eq!(dev.counters().bytes_read_back, before, "clipping reads nothing back");
    let n = norm.read(dev).unwrap() as f64;
    assert!((n - TORCH_NORM).abs() <= 1e-6 * TORCH_NORM, "norm {n} vs PyTorch {TORCH_NORM}");
    let (a, b) = (grads_of(dev, &arena, "a"), grads_of(dev, &arena, "b"));
    assert!(close(&a, &TORCH_A) && close(&b, &TORCH_B), "{a:?} {b:?} vs PyTorch {TORCH_A:?} {TORCH_B:?}");
    assert_eq!(grads_of(dev, &arena, "frozen"), vec![0.0, 0.0], "a frozen tensor has no gradient");
    norm.release(dev);

    let mut arena = self::arena(dev);
    arena.set_frozen(frozen, true);
    let norm = arena.clip_grad_norm(dev, 10.0).unwrap();
    assert!((norm.read(dev).unwrap() as f64 - TORCH_NORM).abs() <= 1e-6 * TORCH_NORM);
    assert_eq!((grads_of(dev, &arena, "a"), grads_of(dev, &arena, "b")), (A_GRAD.to_vec(), B_GRAD.to_vec()));
    for bad in [-1.0, f32::NAN, f32::INFINITY] {
        let err = arena.clip_grad_norm(dev, bad).unwrap_err().to_string();
        assert!(err.contains("max_norm"), "{bad}: {err}");
    }
}
test_device!(clip_grad_norm, clip_grad_norm_matches_pytorch);

/// `clip_grad_value_([a, b], 0.8)` in PyTorch 2.15 (a NaN gradient stays NaN there too):
/// clamping is exact, so the gradients must equal these; a frozen tensor's gradient is zeroed;
/// nothing is read back.
fn clip_grad_value_matches_pytorch(dev: &mut Device) {
    let mut arena = arena(dev);
    let frozen = arena.find("frozen").unwrap();
    arena.set_frozen(frozen, true);
    let e = arena.entries.iter().find(|e| e.name == "a").unwrap().offset;
    dev.write(arena.grads.slice(e + 4, 1), &[f32::NAN]).unwrap();
    let before = dev.counters().bytes_read_back;
    arena.clip_grad_value(dev, 0.8).unwrap();
    assert_eq!(dev.counters().bytes_read_back, before, "clipping reads nothing back");
    let a = grads_of(dev, &arena, "a");
    assert_eq!(a.iter().map(|v| v.to_bits()).collect::<Vec<_>>()[..4], [0.5f32, -0.8, 0.8, 0.75].map(f32::to_bits));
    assert!(a[4].is_nan(), "a NaN gradient stays NaN: {a:?}");
    assert_eq!(a[5], 0.8);
    assert_eq!(grads_of(dev, &arena, "b"), vec![0.8, -0.25, 0.8]);
    assert_eq!(grads_of(dev, &arena, "frozen"), vec![0.0, 0.0], "a frozen tensor has no gradient");
    for bad in [-1.0, f32::NAN, f32::INFINITY] {
        let err = arena.clip_grad_value(dev, bad).unwrap_err().to_string();
        assert!(err.contains("clip_value"), "{bad}: {err}");
    }
}
test_device!(clip_grad_value, clip_grad_value_matches_pytorch);

fn trainer(dev: Device, lr: f64) -> descent::app::train::Trainer {
    use descent::app::train::{ShuffleOrder, TrainConfig, Trainer};
    let data = descent::data::load_idx_dataset("fashion-mnist", Some(&descent::data::embedded_subset_dir())).unwrap();
    let mut optimizer = descent::optim::OptimConfig::defaults("sgd").unwrap();
    optimizer.set_lr(lr);
    let config = TrainConfig {
        epochs: 1,
        batch_size: 64,
        seed: 0,
        shuffle: ShuffleOrder::Randperm,
        hidden: vec![32],
        act: descent::backend::Act::Relu,
        optimizer,
        schedule: descent::optim::Schedule::Constant,
        eval_batch: 1000,
    };
    Trainer::new(dev, &data, config).unwrap()
}

fn weights(t: &mut descent::app::train::Trainer) -> Vec<f32> {
    t.checkpoint_contents().unwrap().0.iter().flat_map(|n| n.data.clone()).collect()
}

/// In training (`--clip-grad-norm`, `--clip-grad-value`): a norm bound far above the gradient's
/// norm changes no bit, and SGD with every gradient clamped to ±1e-4 moves no weight by more
/// than lr · 1e-4 in a step.
fn trainer_clips_before_each_step(dev: &mut Device) {
    use descent::app::train::GradClip;
    let fresh = || if dev.is_gpu() { common::gpu() } else { Device::cpu() };
    let (mut plain, mut loose) = (trainer(fresh(), 0.1), trainer(fresh(), 0.1));
    loose.set_grad_clip(Some(GradClip::Norm(1e9))).unwrap();
    let order = plain.epoch_order().unwrap();
    let order2 = loose.epoch_order().unwrap();
    for s in 0..3 {
        plain.step(order, s * 64, 64).unwrap();
        loose.step(order2, s * 64, 64).unwrap();
    }
    assert_eq!(weights(&mut plain), weights(&mut loose), "a norm bound that never bites changes nothing");
    let mut tight = trainer(fresh(), 0.1);
    tight.set_grad_clip(Some(GradClip::Value(1e-4))).unwrap();
    let before = weights(&mut tight);
    let order = tight.epoch_order().unwrap();
    tight.step(order, 0, 64).unwrap();
    let moved = weights(&mut tight).iter().zip(&before).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(moved > 0.0 && moved <= 0.1 * 1e-4 * 1.001, "largest move {moved}");
    assert!(tight.set_grad_clip(Some(GradClip::Norm(f32::NAN))).is_err());
}
test_device!(trainer_clip, trainer_clips_before_each_step);
