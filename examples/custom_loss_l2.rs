//! A custom loss: cross-entropy plus an L2 penalty `λ·Σ W²` on every weight matrix (not the
//! biases), through the layers' typed parameter handles. The penalty's gradient adds to the
//! one the model's own use of each weight gives, and the example checks that against
//! `2λW` on one weight.
//!
//! `cargo run --release --example custom_loss_l2 [-- gpu]`

use anyhow::{ensure, Result};
use descent::autograd::Tape;
use descent::backend::{Act, Device};
use descent::nn::Mlp;
use descent::optim::{OptimConfig, Optimizer, Schedule};
use descent::rng::Rng;
use descent::tensor::Tensor;
use descent::torch_rng::TorchGenerator;

/// One step's loss `ce + λ·Σ_layers Σ W²`; gradients land in the model's arena.
fn loss(dev: &mut Device, model: &Mlp, x: Tensor, labels: descent::tensor::View, lambda: f32) -> Result<f32> {
    let mut tape = Tape::new(dev);
    let input = tape.input(x);
    let logits = model.forward(&mut tape, input)?;
    let mut total = tape.softmax_ce(logits, labels, None)?;
    for layer in model.layers() {
        let w = model.arena.var(&mut tape, layer.weight)?; // the same Var the forward pass used
        let w2 = tape.mul(w, w)?;
        let sum = tape.sum(w2)?;
        let penalty = tape.scale(sum, lambda)?;
        total = tape.add(total, penalty)?;
    }
    tape.backward(total)?;
    Ok(tape.read(total)?[0])
}

fn main() -> Result<()> {
    let mut dev = if std::env::args().any(|a| a == "gpu") { Device::gpu()? } else { Device::cpu() };
    let (rows, features, classes) = (32, 20, 4);
    let mut rng = Rng::new(1);
    let x = rng.uniform_vec(rows * features, -1.0, 1.0);
    let labels: Vec<f32> = (0..rows).map(|i| (i % classes) as f32).collect();
    let (xv, yv) = (dev.upload(&x)?, dev.upload(&labels)?);
    let model = Mlp::new(&mut dev, &[features, 16, classes], Act::Tanh, &mut TorchGenerator::new(0))?;
    let x = Tensor::new(xv, &[rows, features])?;

    // The penalty's share of one weight's gradient is exactly 2λW.
    let w0 = model.layers()[0].weight;
    let lambda = 1e-2;
    loss(&mut dev, &model, x.clone(), yv, 0.0)?;
    let plain = model.arena.read_grad(&mut dev, w0)?;
    loss(&mut dev, &model, x.clone(), yv, lambda)?;
    let with = model.arena.read_grad(&mut dev, w0)?;
    let w = model.arena.read(&mut dev, w0)?;
    let worst = (0..w.len()).map(|i| (with[i] - plain[i] - 2.0 * lambda * w[i]).abs()).fold(0.0, f32::max);
    println!("penalty gradient: largest |dW_with − dW_without − 2λW| = {worst:.2e}");
    ensure!(worst < 1e-6, "the penalty's gradient is off by {worst}");

    let mut opt = Optimizer::new(&mut dev, &model.arena, OptimConfig::defaults("sgd")?, Schedule::Constant)?;
    opt.set_lr(0.5)?;
    for step in 0..=200 {
        let l = loss(&mut dev, &model, x.clone(), yv, lambda)?;
        if step % 50 == 0 {
            let norm: f32 = model.arena.read(&mut dev, w0)?.iter().map(|v| v * v).sum();
            println!("step {step:>3}: loss {l:.4}, ‖W₀‖² {norm:.3}");
        }
        opt.step(&mut dev, &model.arena)?;
    }
    Ok(())
}
