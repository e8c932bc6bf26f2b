//! Dropout: the masks are bit-identical on the CPU and the GPU for the same seed and offset
//! (odd sizes, NaN inputs); `nn::Dropout` in eval mode is the identity and in train mode equals
//! the reference's mask, with a fresh mask per call that `set_calls` replays; an `Mlp` takes
//! per-layer activations and dropout, and trains with it on both devices.

#[macro_use]
mod common;

use descent::autograd::Tape;
use descent::backend::{Act, Device, DropoutMask};
use descent::nn::{Dropout, Mlp};
use descent::optim::{OptimConfig, Optimizer, Schedule};
use descent::reference as r;
use descent::rng::Rng;
use descent::tensor::Tensor;
use descent::torch_rng::TorchGenerator;

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn dropout_on(dev: &mut Device, x: &[f32], mask: &DropoutMask) -> Vec<f32> {
    let xv = dev.upload(x).unwrap();
    let y = dev.alloc(x.len()).unwrap();
    dev.fill(y, 777.0);
    dev.dropout(xv, y, mask);
    let out = dev.read(y).unwrap();
    dev.release(xv);
    dev.release(y);
    out
}

#[test]
fn masks_are_bit_identical_on_cpu_and_gpu() {
    let (mut cpu, mut gpu) = (Device::cpu(), common::gpu());
    for (n, p, seed, offset) in [
        (1, 0.5f32, 0u64, 0u64),
        (7, 0.1, 1, 1),
        (1023, 0.5, u64::MAX, 3),
        (4099, 0.9, 0x0123_4567_89ab_cdef, 1 << 40),
        (65_537, 0.25, 42, 7),
    ] {
        let mut x = Rng::new(n as u64).uniform_vec(n, -2.0, 2.0);
        x.iter_mut().step_by(11).for_each(|v| *v = f32::NAN);
        let mask = DropoutMask::new(p, seed, offset).unwrap();
        let (a, b) = (dropout_on(&mut cpu, &x, &mask), dropout_on(&mut gpu, &x, &mask));
        assert_eq!(bits(&a), bits(&b), "n {n} p {p}: CPU and GPU masks and values, bit for bit");
        let want = r::dropout(&x, p as f64, seed, offset);
        for (i, (&g, &w)) in a.iter().zip(&want).enumerate() {
            assert!(g.is_nan() == w.is_nan() && (g.is_nan() || r::close(g as f64, w, 0.0, 1e-6)), "n {n} [{i}]");
        }
        let finite = a.iter().filter(|v| !v.is_nan()).count();
        let kept = a.iter().filter(|v| !v.is_nan() && **v != 0.0).count() as f64 / finite as f64;
        if n > 4000 {
            assert!((kept - (1.0 - p as f64)).abs() < 0.02, "n {n} p {p}: kept {kept}");
        }
    }
}

fn layer_modes(dev: &mut Device) {
    let x = Rng::new(3).uniform_vec(6 * 10, -1.0, 1.0);
    let xv = dev.upload(&x).unwrap();
    let drop = Dropout::new(0.5, 99).unwrap();
    let run = |dev: &mut Device, drop: &Dropout| {
        let mut tape = Tape::new(dev);
        let input = tape.input(Tensor::new(xv, &[6, 10]).unwrap());
        let y = drop.forward(&mut tape, input).unwrap();
        tape.read(y).unwrap()
    };
    // Train mode: call k uses offset k.
    let first = run(dev, &drop);
    let second = run(dev, &drop);
    assert_eq!(drop.calls(), 2);
    for (k, got) in [first.clone(), second.clone()].iter().enumerate() {
        let want = r::dropout(&x, 0.5, 99, k as u64);
        assert!(r::compare(got, &want, 0.0, 1e-6).2, "call {k} equals the reference's mask");
    }
    assert_ne!(first, second, "each call draws a fresh mask");
    drop.set_calls(0);
    assert_eq!(bits(&run(dev, &drop)), bits(&first), "set_calls replays the masks");
    // Eval mode: the identity, and the count stands still.
    drop.eval();
    assert_eq!(bits(&run(dev, &drop)), bits(&x));
    assert_eq!(drop.calls(), 1);
    assert!(Dropout::new(1.5, 0).is_err() && Dropout::new(-0.1, 0).is_err());
}
test_device!(dropout_layer_train_and_eval, layer_modes);

fn mlp_options(dev: &mut Device) {
    let sizes = [10, 16, 12, 4];
    let x = Rng::new(5).uniform_vec(8 * 10, -1.0, 1.0);
    let xv = dev.upload(&x).unwrap();
    let logits = |dev: &mut Device, model: &Mlp| {
        let mut tape = Tape::new(dev);
        let input = tape.input(Tensor::new(xv, &[8, 10]).unwrap());
        let y = model.forward(&mut tape, input).unwrap();
        tape.read(y).unwrap()
    };
    let mut model = Mlp::new(dev, &sizes, Act::Relu, &mut TorchGenerator::new(0)).unwrap();
    let err = model.set_activations(&[Act::Tanh]).unwrap_err();
    assert!(format!("{err:#}").contains("has 2 hidden layers, so it takes 2 activations, not 1"), "{err:#}");
    model.set_activations(&[Act::Tanh, Act::LeakyRelu]).unwrap();
    assert_eq!(model.activations(), &[Act::Tanh, Act::LeakyRelu]);
    let plain = logits(dev, &model);

    // The same by hand: tanh after layer 0, leaky ReLU after layer 1, none after the last.
    let params = dev.read(model.arena.params).unwrap();
    let entries = model.arena.entries.clone();
    let read = |name: &str| {
        let e = entries.iter().find(|e| e.name == name).unwrap();
        params[e.range()].to_vec()
    };
    let layer = |h: &[f64], l: usize, rows: usize| -> Vec<f64> {
        let (w, b) = (read(&format!("{}.weight", 2 * l)), read(&format!("{}.bias", 2 * l)));
        let (fin, fout) = (sizes[l], sizes[l + 1]);
        (0..rows * fout)
            .map(|i| {
                b[i % fout] as f64 + (0..fin).map(|j| h[i / fout * fin + j] * w[i % fout * fin + j] as f64).sum::<f64>()
            })
            .collect()
    };
    let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let h0: Vec<f64> = layer(&x64, 0, 8).iter().map(|v| v.tanh()).collect();
    let h1: Vec<f64> = layer(&h0, 1, 8).iter().map(|&v| if v > 0.0 { v } else { 0.01 * v }).collect();
    assert!(r::compare(&plain, &layer(&h1, 2, 8), 1e-5, 1e-4).2, "per-layer activations");

    // Dropout after each hidden activation in train mode (masks at offsets 0 and 1), none in
    // eval mode or in forward_no_grad.
    model.set_dropout(Some(Dropout::new(0.3, 7).unwrap()));
    let dropped = logits(dev, &model);
    let f0 = r::dropout(&vec![1.0; h0.len()], 0.3f32 as f64, 7, 0);
    let f1 = r::dropout(&vec![1.0; h1.len()], 0.3f32 as f64, 7, 1);
    let d0: Vec<f64> = h0.iter().zip(&f0).map(|(a, f)| a * f).collect();
    let d1: Vec<f64> =
        layer(&d0, 1, 8).iter().map(|&v| if v > 0.0 { v } else { 0.01 * v }).zip(&f1).map(|(a, f)| a * f).collect();
    assert!(
        r::compare(&dropped, &layer(&d1, 2, 8), 1e-5, 1e-4).2,
        "dropout in train mode matches the reference's masks"
    );
    model.eval();
    assert_eq!(bits(&logits(dev, &model)), bits(&plain), "eval mode: dropout is the identity");
    model.train();
    assert_ne!(bits(&logits(dev, &model)), bits(&dropped), "a fresh mask per forward");
    let mut tape = Tape::new(dev);
    let input = tape.input(Tensor::new(xv, &[8, 10]).unwrap());
    let y = model.forward_no_grad(&mut tape, input).unwrap();
    assert_eq!(bits(&tape.read(y).unwrap()), bits(&plain), "forward_no_grad never drops");
}
test_device!(mlp_per_layer_activations_and_dropout, mlp_options);

/// A 2-16-16-3 MLP with dropout 0.2 learns three Gaussian blobs: the train loss falls and the
/// eval-mode accuracy is high.
fn trains_with_dropout(dev: &mut Device) {
    let mut rng = Rng::new(11);
    let centres = [[2.0f32, 0.0], [-1.0, 1.7], [-1.0, -1.7]];
    let rows = 96;
    let labels: Vec<f32> = (0..rows).map(|i| (i % 3) as f32).collect();
    let x: Vec<f32> = (0..rows).flat_map(|i| centres[i % 3].map(|c| c + rng.uniform(-0.6, 0.6) as f32)).collect();
    let mut model = Mlp::new(dev, &[2, 16, 16, 3], Act::Relu, &mut TorchGenerator::new(1)).unwrap();
    model.set_dropout(Some(Dropout::new(0.2, 3).unwrap()));
    let mut opt =
        Optimizer::new(dev, &model.arena, OptimConfig::defaults("adam").unwrap(), Schedule::Constant).unwrap();
    let (xv, yv) = (dev.upload(&x).unwrap(), dev.upload_labels(&labels, 3).unwrap());
    let mut losses = Vec::new();
    for _ in 0..150 {
        let mut tape = Tape::new(dev);
        let input = tape.input(Tensor::new(xv, &[rows, 2]).unwrap());
        let logits = model.forward(&mut tape, input).unwrap();
        let loss = tape.softmax_ce(logits, yv, None).unwrap();
        tape.backward(loss).unwrap();
        losses.push(tape.read(loss).unwrap()[0]);
        drop(tape);
        opt.step(dev, &model.arena).unwrap();
    }
    assert!(losses[149] < 0.3 * losses[0], "loss {} → {}", losses[0], losses[149]);
    model.eval();
    let mut tape = Tape::new(dev);
    let input = tape.input(Tensor::new(xv, &[rows, 2]).unwrap());
    let logits = model.forward(&mut tape, input).unwrap();
    let pred = tape.argmax_axis(logits, descent::backend::Axis::Cols).unwrap();
    let pred = tape.read(pred).unwrap();
    let correct = pred.iter().zip(&labels).filter(|(p, l)| p == l).count();
    assert!(correct >= 90, "{correct}/{rows} right in eval mode");
}
test_device!(an_mlp_trains_with_dropout, trains_with_dropout);
