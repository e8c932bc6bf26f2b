//! Regression on your own f32 data with the toolkit PyTorch users reach for: an MLP built from
//! `Linear` handles with dropout between its layers (train and eval mode), AdamW through one
//! optimizer with two parameter groups (weight decay on the weights, none on the biases),
//! gradient-norm clipping on the device, and MSE. It fits `y = sin(2·x₀) + ½·x₁²` from noisy
//! samples and checks the held-out error.
//!
//! `cargo run --release --example regression [-- gpu]`

use anyhow::{ensure, Result};
use descent::autograd::{Tape, Var};
use descent::backend::{Act, Device};
use descent::nn::{ArenaBuilder, Dropout, Linear, ParamArena};
use descent::optim::{OptimConfig, Optimizer, ParamGroup, Schedule};
use descent::rng::Rng;
use descent::tensor::Tensor;
use descent::torch_rng::TorchGenerator;

struct Net {
    arena: ParamArena,
    layers: [Linear; 3],
    dropout: Dropout,
}

impl Net {
    fn forward(&self, tape: &mut Tape, x: Var) -> Result<Var> {
        let h = self.layers[0].forward(&self.arena, tape, x, Act::Tanh)?;
        let h = self.dropout.forward(tape, h)?; // the identity in eval mode
        let h = self.layers[1].forward(&self.arena, tape, h, Act::Tanh)?;
        let h = self.dropout.forward(tape, h)?;
        self.layers[2].forward(&self.arena, tape, h, Act::Identity)
    }
}

/// `n` samples of two features in [-1.5, 1.5] and their noisy target.
fn samples(n: usize, rng: &mut Rng) -> (Vec<f32>, Vec<f32>) {
    let x = rng.uniform_vec(2 * n, -1.5, 1.5);
    let y =
        x.chunks(2).map(|r| (2.0 * r[0]).sin() + 0.5 * r[1] * r[1] + 0.02 * rng.uniform(-1.0, 1.0) as f32).collect();
    (x, y)
}

fn mse(dev: &mut Device, net: &Net, x: &[f32], y: &[f32]) -> Result<f32> {
    let (xv, yv) = (dev.upload(x)?, dev.upload(y)?);
    let mut tape = Tape::new(dev);
    let input = tape.input_owned(Tensor::new(xv, &[y.len(), 2])?);
    let target = tape.input_owned(Tensor::new(yv, &[y.len(), 1])?);
    let pred = net.forward(&mut tape, input)?;
    let loss = tape.mse(pred, target)?;
    Ok(tape.read(loss)?[0])
}

fn main() -> Result<()> {
    let mut dev = if std::env::args().any(|a| a == "gpu") { Device::gpu()? } else { Device::cpu() };
    let mut data = Rng::new(3);
    let (train_x, train_y) = samples(512, &mut data);
    let (test_x, test_y) = samples(256, &mut data);

    let mut rng = TorchGenerator::new(0);
    let mut b = ArenaBuilder::new();
    let layers = [b.linear("0", 2, 64, &mut rng)?, b.linear("3", 64, 64, &mut rng)?, b.linear("6", 64, 1, &mut rng)?];
    let net = Net { arena: b.build(&mut dev)?, layers, dropout: Dropout::new(0.05, 7)? };

    let mut opt =
        Optimizer::new(&mut dev, &net.arena, OptimConfig::defaults("adamw")?, Schedule::parse("cosine:1600")?)?;
    opt.set_lr(0.01)?;
    let weights = ParamGroup { tensors: layers.iter().map(|l| l.weight).collect(), weight_decay: Some(0.01), lr: None };
    let biases = ParamGroup { tensors: layers.iter().map(|l| l.bias).collect(), weight_decay: Some(0.0), lr: None };
    opt.set_param_groups(&net.arena, &[weights, biases])?;

    let batch = 64;
    let mut order: Vec<usize> = (0..train_y.len()).collect();
    for epoch in 1..=200 {
        data.shuffle(&mut order);
        for rows in order.chunks(batch) {
            let x: Vec<f32> = rows.iter().flat_map(|&r| [train_x[2 * r], train_x[2 * r + 1]]).collect();
            let y: Vec<f32> = rows.iter().map(|&r| train_y[r]).collect();
            let (xv, yv) = (dev.upload(&x)?, dev.upload(&y)?);
            let mut tape = Tape::new(&mut dev);
            let input = tape.input_owned(Tensor::new(xv, &[rows.len(), 2])?);
            let target = tape.input_owned(Tensor::new(yv, &[rows.len(), 1])?);
            let pred = net.forward(&mut tape, input)?;
            let loss = tape.mse(pred, target)?;
            tape.backward(loss)?;
            drop(tape);
            // clip_grad_norm_(max_norm=1): on the device, nothing read back.
            let norm = net.arena.clip_grad_norm(&mut dev, 1.0)?;
            opt.step(&mut dev, &net.arena)?;
            norm.release(&mut dev);
        }
        if epoch % 50 == 0 {
            net.dropout.eval();
            let (train, test) = (mse(&mut dev, &net, &train_x, &train_y)?, mse(&mut dev, &net, &test_x, &test_y)?);
            net.dropout.train();
            println!("epoch {epoch:3}: train mse {train:.5}, held-out mse {test:.5}");
        }
    }
    net.dropout.eval();
    let test = mse(&mut dev, &net, &test_x, &test_y)?;
    ensure!(test < 0.01, "the held-out MSE should fall below 0.01, got {test}");
    let mean = test_y.iter().sum::<f32>() / test_y.len() as f32;
    let var = test_y.iter().map(|y| (y - mean).powi(2)).sum::<f32>() / test_y.len() as f32;
    println!("held-out mse {test:.5} (the target's variance: {var:.3})");
    Ok(())
}
