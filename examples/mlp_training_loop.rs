//! A training loop written against the library: the lecture's 784-128-128-10 MLP on the
//! Fashion-MNIST subset embedded in `datasets/`, with Adam, mini-batches of 64, and test
//! accuracy after each epoch.
//!
//! `cargo run --release --example mlp_training_loop [-- gpu]`

use anyhow::Result;
use descent::autograd::Tape;
use descent::backend::{Act, Device};
use descent::data::{embedded_subset_dir, load_dataset, Split};
use descent::nn::Mlp;
use descent::optim::{OptimConfig, Optimizer, Schedule};
use descent::tensor::Tensor;
use descent::torch_rng::TorchGenerator;

/// Rows `rows` of a split as f32 pixels in [0, 1] and f32 labels.
fn batch(split: &Split, row_len: usize, rows: &[u32]) -> (Vec<f32>, Vec<f32>) {
    let pixels = rows.iter().flat_map(|&r| &split.images[r as usize * row_len..][..row_len]);
    (pixels.map(|&p| p as f32 / 255.0).collect(), rows.iter().map(|&r| split.labels[r as usize] as f32).collect())
}

fn main() -> Result<()> {
    let mut dev = if std::env::args().any(|a| a == "gpu") { Device::gpu()? } else { Device::cpu() };
    let data = load_dataset("fashion-mnist", Some(&embedded_subset_dir()))?;
    println!("{} on {}", data.source, dev.describe());
    let mut rng = TorchGenerator::new(0);
    let model = Mlp::new(&mut dev, &[data.row_len, 128, 128, data.classes], Act::Relu, &mut rng)?;
    let mut opt = Optimizer::new(&mut dev, &model.arena, OptimConfig::defaults("adam")?, Schedule::Constant)?;
    // [Σ loss, correct predictions], accumulated on the device: nothing is read back per step.
    let metrics = dev.alloc_zeroed(2)?;
    for epoch in 1..=5 {
        for rows in rng.randperm(data.train.rows as u32).chunks(64) {
            let (x, y) = batch(&data.train, data.row_len, rows);
            let (xv, yv) = (dev.upload(&x)?, dev.upload_labels(&y, data.classes)?);
            let mut tape = Tape::new(&mut dev);
            let input = tape.input_owned(Tensor::new(xv, &[rows.len(), data.row_len])?);
            tape.adopt(yv); // the tape releases the batch's buffers when it is dropped
            let logits = model.forward(&mut tape, input)?;
            let loss = tape.softmax_ce(logits, yv, Some(metrics))?;
            tape.backward(loss)?;
            drop(tape);
            opt.step(&mut dev, &model.arena)?; // one fused Adam kernel for all 118,282 weights
        }
        let train = dev.read(metrics)?;
        dev.fill(metrics, 0.0);
        // The whole test split in one forward pass, without recording gradients.
        let all: Vec<u32> = (0..data.test.rows as u32).collect();
        let (x, y) = batch(&data.test, data.row_len, &all);
        let (xv, yv) = (dev.upload(&x)?, dev.upload_labels(&y, data.classes)?);
        let mut tape = Tape::new(&mut dev);
        let input = tape.input_owned(Tensor::new(xv, &[all.len(), data.row_len])?);
        tape.adopt(yv);
        let logits = model.forward_no_grad(&mut tape, input)?;
        tape.softmax_ce(logits, yv, Some(metrics))?;
        drop(tape);
        let test = dev.read(metrics)?;
        dev.fill(metrics, 0.0);
        let (n, m) = (data.train.rows as f32, data.test.rows as f32);
        println!(
            "epoch {epoch}: train loss {:.4} acc {:.3}, test loss {:.4} acc {:.3}",
            train[0] / n,
            train[1] / n,
            test[0] / m,
            test[1] / m
        );
    }
    Ok(())
}
