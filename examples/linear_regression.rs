//! Linear regression with MSE: fit `y = x·wᵀ + b` to noisy data from known `w` and `b`, with
//! the bias broadcast over the rows and `Tape::mse` as the loss.
//!
//! `cargo run --release --example linear_regression [-- gpu]`

use anyhow::{ensure, Result};
use descent::autograd::Tape;
use descent::backend::Device;
use descent::optim::{OptimConfig, Optimizer, Schedule};
use descent::rng::Rng;
use descent::tensor::Tensor;

fn main() -> Result<()> {
    let mut dev = if std::env::args().any(|a| a == "gpu") { Device::gpu()? } else { Device::cpu() };
    let (rows, features) = (256, 3);
    let (true_w, true_b) = ([2.0f32, -3.0, 0.5], 1.25f32);
    let mut rng = Rng::new(7);
    let x = rng.uniform_vec(rows * features, -1.0, 1.0);
    let y: Vec<f32> = x
        .chunks(features)
        .map(|r| r.iter().zip(&true_w).map(|(a, w)| a * w).sum::<f32>() + true_b + 0.01 * rng.uniform(-1.0, 1.0) as f32)
        .collect();
    let (xv, yv) = (dev.upload(&x)?, dev.upload(&y)?);

    // The parameters [w (1×3), b (1)] in one flat buffer, so one fused kernel updates both.
    let params = dev.upload(&[0.0; 4])?;
    let grads = dev.alloc(4)?;
    let mut opt = Optimizer::for_len(&mut dev, OptimConfig::defaults("sgd")?, Schedule::Constant, 4)?;
    opt.set_lr(0.1)?;
    for step in 0..=300 {
        let mut tape = Tape::new(&mut dev);
        let w = tape.param(Tensor::new(params.slice(0, features), &[1, features])?, grads.slice(0, features))?;
        let b = tape.param(Tensor::new(params.slice(features, 1), &[1])?, grads.slice(features, 1))?;
        let xin = tape.input(Tensor::new(xv, &[rows, features])?);
        let target = tape.input(Tensor::new(yv, &[rows, 1])?);
        let xw = tape.mul(xin, w)?; // [rows, 3] ⊙ [1, 3]: w broadcast over the rows
        let pred = tape.sum_axis(xw, descent::backend::Axis::Cols)?; // [rows, 1]
        let pred = tape.add(pred, b)?; // + b, a scalar broadcast
        let loss = tape.mse(pred, target)?;
        tape.backward(loss)?;
        if step % 100 == 0 {
            println!("step {step:>3}: mse {:.6}", tape.read(loss)?[0]);
        }
        drop(tape);
        opt.step_views(&mut dev, params, grads)?;
    }
    let p = dev.read(params)?;
    println!("fitted w = {:?}, b = {:.4} (true w = {true_w:?}, b = {true_b})", &p[..features], p[features]);
    for (got, want) in p.iter().zip(true_w.iter().chain([&true_b])) {
        ensure!((got - want).abs() < 0.01, "fitted {got}, expected {want}");
    }
    Ok(())
}
