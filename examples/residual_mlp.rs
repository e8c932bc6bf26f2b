//! A model of your own from `Linear` handles: a residual MLP (`h ← h + W₂·gelu(W₁·h)`, twice,
//! between an input and an output layer), its tensors registered with `ArenaBuilder` in one
//! arena so that one fused AdamW launch updates them all. It learns a three-armed spiral and
//! checks its accuracy on held-out points.
//!
//! `cargo run --release --example residual_mlp [-- gpu]`

use anyhow::{ensure, Result};
use descent::autograd::{Tape, Var};
use descent::backend::{Act, Axis, Device};
use descent::nn::{ArenaBuilder, Linear, ParamArena};
use descent::optim::{OptimConfig, Optimizer, Schedule};
use descent::rng::Rng;
use descent::tensor::Tensor;
use descent::torch_rng::TorchGenerator;

const WIDTH: usize = 32;
const CLASSES: usize = 3;

/// The model: handles into one arena.
struct ResidualMlp {
    arena: ParamArena,
    input: Linear,
    blocks: Vec<(Linear, Linear)>,
    output: Linear,
}

impl ResidualMlp {
    fn new(dev: &mut Device, blocks: usize, rng: &mut TorchGenerator) -> Result<ResidualMlp> {
        let mut b = ArenaBuilder::new();
        let input = b.linear("input", 2, WIDTH, rng)?;
        let blocks = (0..blocks)
            .map(|k| {
                Ok((
                    b.linear(&format!("block{k}.fc1"), WIDTH, WIDTH, rng)?,
                    b.linear(&format!("block{k}.fc2"), WIDTH, WIDTH, rng)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let output = b.linear("output", WIDTH, CLASSES, rng)?;
        Ok(ResidualMlp { arena: b.build(dev)?, input, blocks, output })
    }

    /// Logits for a batch `x` of [rows, 2].
    fn forward(&self, tape: &mut Tape, x: Var) -> Result<Var> {
        let mut h = self.input.forward(&self.arena, tape, x, Act::Relu)?;
        for (fc1, fc2) in &self.blocks {
            // GELU needs its input for its derivative, so it follows an identity linear.
            let z = fc1.forward(&self.arena, tape, h, Act::Identity)?;
            let z = tape.gelu(z)?;
            let z = fc2.forward(&self.arena, tape, z, Act::Identity)?;
            h = tape.add(h, z)?;
        }
        self.output.forward(&self.arena, tape, h, Act::Identity)
    }
}

/// `n` points per arm of a three-armed spiral, with noise, and their arm as the label.
fn spiral(n: usize, rng: &mut Rng) -> (Vec<f32>, Vec<f32>) {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for arm in 0..CLASSES {
        for i in 0..n {
            let r = i as f64 / n as f64;
            let t = arm as f64 * 2.0 * std::f64::consts::PI / 3.0 + 4.0 * r + rng.uniform(-0.15, 0.15);
            x.extend([(r * t.sin()) as f32, (r * t.cos()) as f32]);
            y.push(arm as f32);
        }
    }
    (x, y)
}

fn main() -> Result<()> {
    let mut dev = if std::env::args().any(|a| a == "gpu") { Device::gpu()? } else { Device::cpu() };
    let mut data_rng = Rng::new(5);
    let (train_x, train_y) = spiral(200, &mut data_rng);
    let (test_x, test_y) = spiral(100, &mut data_rng);
    let model = ResidualMlp::new(&mut dev, 2, &mut TorchGenerator::new(0))?;
    println!("on {}: {} parameters in {} tensors", dev.describe(), model.arena.count(), model.arena.entries.len());
    let mut opt =
        Optimizer::new(&mut dev, &model.arena, OptimConfig::defaults("adamw")?, Schedule::parse("cosine:400")?)?;
    opt.set_lr(0.01)?;
    let (xv, yv) = (dev.upload(&train_x)?, dev.upload_labels(&train_y, CLASSES)?);
    let rows = train_y.len();
    for step in 0..400 {
        let mut tape = Tape::new(&mut dev);
        let x = tape.input(Tensor::new(xv, &[rows, 2])?);
        let logits = model.forward(&mut tape, x)?;
        let loss = tape.softmax_ce(logits, yv, None)?;
        tape.backward(loss)?;
        if step % 100 == 0 {
            println!("step {step:3}: loss {:.4}", tape.read(loss)?[0]);
        }
        drop(tape);
        opt.step(&mut dev, &model.arena)?;
    }
    // Held-out accuracy, predictions by argmax on the device.
    let tv = dev.upload(&test_x)?;
    let mut tape = Tape::new(&mut dev);
    let x = tape.input(Tensor::new(tv, &[test_y.len(), 2])?);
    let logits = model.forward(&mut tape, x)?;
    let pred = tape.argmax_axis(logits, Axis::Cols)?;
    let pred = tape.read(pred)?;
    let correct = pred.iter().zip(&test_y).filter(|(p, y)| p == y).count();
    let acc = correct as f64 / test_y.len() as f64;
    println!("held-out accuracy {acc:.3} ({correct}/{})", test_y.len());
    ensure!(acc > 0.95, "the residual MLP should separate the spiral's arms, got {acc}");
    Ok(())
}
