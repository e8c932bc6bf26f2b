//! Gradient clipping on both devices: `ParamArena::clip_grad_norm` against PyTorch 2.15's
//! `torch.nn.utils.clip_grad_norm_` (figures below, float32), frozen tensors left out, and no
//! readback until the norm is asked for.

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
