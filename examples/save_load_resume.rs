//! Save, load and resume in library code: train an MLP with AdamW and a cosine schedule for 40
//! steps, saving the model and the optimizer after 20 (`ParamArena::state_dict`,
//! `Optimizer::state_dict`, `StateDict::save`); then load that file into a fresh model and
//! optimizer, train the last 20 steps again, and check the result is bit-identical to the run
//! that never stopped. The file is safetensors under PyTorch's names: the model tensors load
//! into `nn.Sequential` with `load_state_dict(strict=True)`
//! (`tests/fixtures/make_state_dict_fixture.py FILE` checks that).
//!
//! `cargo run --release --example save_load_resume [-- gpu] [-- --keep FILE]`

use anyhow::{ensure, Result};
use descent::autograd::Tape;
use descent::backend::{Act, Device};
use descent::nn::Mlp;
use descent::optim::{OptimConfig, Optimizer, Schedule};
use descent::rng::Rng;
use descent::state_dict::StateDict;
use descent::tensor::Tensor;
use descent::torch_rng::TorchGenerator;

const SIZES: [usize; 4] = [10, 32, 32, 4];
const ROWS: usize = 32;

/// A model and its optimizer, from `seed`.
fn build(dev: &mut Device, seed: u64) -> Result<(Mlp, Optimizer)> {
    let model = Mlp::new(dev, &SIZES, Act::Relu, &mut TorchGenerator::new(seed))?;
    let adamw = OptimConfig::defaults("adamw")?; // PyTorch's defaults: weight_decay 0.01
    let mut opt = Optimizer::new(dev, &model.arena, adamw, Schedule::parse("cosine:40")?)?;
    opt.set_lr(0.01)?;
    Ok((model, opt))
}

/// The `step`th batch: features in [-1, 1], the label is the largest of the first 4 features.
fn batch(step: usize) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(step as u64);
    let x = rng.uniform_vec(ROWS * SIZES[0], -1.0, 1.0);
    let y = x.chunks(SIZES[0]).map(|r| (0..4).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap_or(0) as f32).collect();
    (x, y)
}

/// Train steps `steps` and return the last loss.
fn train(dev: &mut Device, model: &Mlp, opt: &mut Optimizer, steps: std::ops::Range<usize>) -> Result<f32> {
    let mut last = f32::NAN;
    for step in steps {
        let (x, y) = batch(step);
        let (xv, yv) = (dev.upload(&x)?, dev.upload_labels(&y, SIZES[3])?);
        let mut tape = Tape::new(dev);
        let input = tape.input_owned(Tensor::new(xv, &[ROWS, SIZES[0]])?);
        tape.adopt(yv); // the tape releases the batch's buffers when it is dropped
        let logits = model.forward(&mut tape, input)?;
        let loss = tape.softmax_ce(logits, yv, None)?;
        tape.backward(loss)?;
        last = tape.read(loss)?[0];
        drop(tape);
        opt.step(dev, &model.arena)?;
    }
    Ok(last)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mut dev = if args.iter().any(|a| a == "gpu") { Device::gpu()? } else { Device::cpu() };
    let keep = args.iter().position(|a| a == "--keep").and_then(|i| args.get(i + 1)).map(std::path::PathBuf::from);
    let path = keep.clone().unwrap_or_else(|| std::env::temp_dir().join("descent-save-load-resume.safetensors"));
    println!("on {}", dev.describe());

    // The run that never stops, saving after step 20.
    let (model, mut opt) = build(&mut dev, 0)?;
    let loss = train(&mut dev, &model, &mut opt, 0..20)?;
    let mut dict = model.arena.state_dict(&mut dev)?;
    dict.extend(opt.state_dict(&mut dev, &model.arena)?)?;
    dict.save(&path)?;
    println!("step 20: loss {loss:.4}; saved {} tensors to {}", dict.tensors.len(), path.display());
    let loss = train(&mut dev, &model, &mut opt, 20..40)?;
    println!("step 40: loss {loss:.4} (straight through)");

    // A fresh model (another seed) and optimizer take the file, and train the last 20 steps.
    let (resumed, mut opt2) = build(&mut dev, 1)?;
    let loaded = StateDict::load(&path)?;
    resumed.arena.load_state_dict(&mut dev, &loaded)?; // strict: names, shapes, dtypes
    opt2.load_state_dict(&mut dev, &resumed.arena, &loaded)?; // state, step count
    println!("loaded: the optimizer resumes at step {}, lr {:.6}", opt2.step, opt2.lr_at(opt2.step));
    let loss2 = train(&mut dev, &resumed, &mut opt2, 20..40)?;
    println!("step 40: loss {loss2:.4} (resumed)");

    let (a, b) = (dev.read(model.arena.params)?, dev.read(resumed.arena.params)?);
    ensure!(a == b && loss.to_bits() == loss2.to_bits(), "the resumed run differs from the straight one");
    ensure!(
        opt.state_dict(&mut dev, &model.arena)? == opt2.state_dict(&mut dev, &resumed.arena)?,
        "the resumed optimizer's state differs"
    );
    let n = model.arena.count();
    println!("the resumed run is bit-identical to the straight one: {n} parameters and the optimizer's state");
    if keep.is_none() {
        std::fs::remove_file(&path)?;
    }
    Ok(())
}
