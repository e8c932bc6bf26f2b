//! Saving and loading a model and its optimizer in library code (`ParamArena::state_dict`,
//! `Optimizer::state_dict`, `StateDict::save` / `load`): a run saved mid-way and resumed in a
//! fresh model and optimizer ends bit-identical to one that never stopped, at every width, on
//! both devices; loading is strict and names what does not fit.

#[macro_use]
mod common;

use descent::autograd::Tape;
use descent::backend::{Act, Device};
use descent::nn::Mlp;
use descent::optim::{OptimConfig, Optimizer, Schedule};
use descent::rng::Rng;
use descent::state_dict::{StateDict, Stored};
use descent::tensor::Tensor;
use descent::torch_rng::TorchGenerator;
use serde_json::json;

/// Big enough that the 8-bit state quantizes the first weight (4,096 elements and more).
const SIZES: [usize; 3] = [96, 48, 5];
const ROWS: usize = 12;

fn config(spec: serde_json::Value) -> OptimConfig {
    OptimConfig::from_json(&spec, "test").unwrap()
}

/// A model seeded by `seed` and its optimizer.
fn build(dev: &mut Device, spec: &serde_json::Value, seed: u64) -> (Mlp, Optimizer) {
    let model = Mlp::new(dev, &SIZES, Act::Tanh, &mut TorchGenerator::new(seed)).unwrap();
    let schedule = Schedule::parse("cosine:40").unwrap();
    let opt = Optimizer::new(dev, &model.arena, config(spec.clone()), schedule).unwrap();
    (model, opt)
}

/// `steps` steps of cross-entropy on batches drawn from `rng`.
fn train(dev: &mut Device, model: &Mlp, opt: &mut Optimizer, rng: &mut Rng, steps: usize) {
    for _ in 0..steps {
        let x = rng.uniform_vec(ROWS * SIZES[0], -1.0, 1.0);
        let y: Vec<f32> = (0..ROWS).map(|_| rng.below(SIZES[2]) as f32).collect();
        let labels = dev.upload_labels(&y, SIZES[2]).unwrap();
        let xv = dev.upload(&x).unwrap();
        let mut tape = Tape::new(dev);
        let input = tape.input(Tensor::new(xv, &[ROWS, SIZES[0]]).unwrap());
        let logits = model.forward(&mut tape, input).unwrap();
        let loss = tape.softmax_ce(logits, labels, None).unwrap();
        tape.backward(loss).unwrap();
        drop(tape);
        dev.release(xv);
        dev.release(labels);
        opt.step(dev, &model.arena).unwrap();
    }
}

/// Everything a resume must restore: the model's and the optimizer's tensors and entries.
fn everything(dev: &mut Device, model: &Mlp, opt: &Optimizer) -> StateDict {
    let mut dict = model.arena.state_dict(dev).unwrap();
    dict.extend(opt.state_dict(dev, &model.arena).unwrap()).unwrap();
    dict
}

fn resume_is_bit_exact(dev: &mut Device) {
    let d = common::temp_dir(&format!("resume-{}", dev.is_gpu()));
    for spec in [
        json!({"name": "adamw", "lr": 0.01}),
        json!({"name": "adamw", "lr": 0.01, "optim_bits": 16}),
        json!({"name": "adamw", "lr": 0.01, "optim_bits": 8}),
        json!({"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": true}),
        json!({"name": "adafactor", "lr": 0.01}),
        json!({"name": "adafactor", "lr": 0.01, "optim_bits": 16}),
        json!({"name": "muon", "lr": 0.02}),
        json!({"name": "schedulefree_adamw", "lr": 0.01, "warmup_steps": 2}),
    ] {
        // Straight through: 6 steps.
        let (model, mut opt) = build(dev, &spec, 0);
        let mut rng = Rng::new(7);
        train(dev, &model, &mut opt, &mut rng, 3);
        let path = d.join("mid.safetensors");
        everything(dev, &model, &opt).save(&path).unwrap();
        let rng_mid = rng.clone();
        train(dev, &model, &mut opt, &mut rng, 3);
        let straight = everything(dev, &model, &opt);

        // Saved after 3, loaded into a model of another seed and a fresh optimizer, 3 more.
        let (copy, mut opt2) = build(dev, &spec, 1);
        let loaded = StateDict::load(&path).unwrap();
        copy.arena.load_state_dict(dev, &loaded).unwrap();
        opt2.load_state_dict(dev, &copy.arena, &loaded).unwrap();
        assert_eq!(opt2.step, 3, "{spec}: the step count (the schedule's position) comes back");
        let mut rng = rng_mid;
        train(dev, &copy, &mut opt2, &mut rng, 3);
        let resumed = everything(dev, &copy, &opt2);
        assert!(resumed == straight, "{spec}: resumed from the file, every tensor and entry bit for bit");
        let bits = opt.config.optim_bits().bits();
        let want = match bits {
            16 => Stored::Bf16,
            8 => Stored::U8,
            _ => Stored::F32,
        };
        // Every state tensor at the optimizer's width (at 8 bits: the quantized weight's codes;
        // its absmax and the small tensors stay f32).
        let state: Vec<_> = resumed.tensors.iter().filter(|t| t.name.starts_with("optimizer.")).collect();
        assert!(!state.is_empty(), "{spec}: the state is saved");
        if bits == 8 {
            assert!(state.iter().any(|t| t.dtype == Stored::U8), "{spec}: 8-bit codes are saved as U8");
        } else {
            assert!(state.iter().all(|t| t.dtype == want), "{spec}: the state is stored at {bits} bits");
        }
        opt.release(dev);
        opt2.release(dev);
    }
    let _ = std::fs::remove_dir_all(&d);
}
test_device!(save_load_resume_is_bit_exact_at_every_width, resume_is_bit_exact);

/// The message of a failed model load, after which the parameters must be unchanged.
fn refused_model(dev: &mut Device, model: &Mlp, dict: &StateDict) -> String {
    let before = dev.read(model.arena.params).unwrap();
    let e = model.arena.load_state_dict(dev, dict).expect_err("the model's load must fail");
    assert!(dev.read(model.arena.params).unwrap() == before, "a refused load changes nothing ({e:#})");
    format!("{e:#}")
}

/// The message of a failed optimizer load (the model's tensors fit), after which the
/// optimizer's state dict must be unchanged.
fn refused_opt(dev: &mut Device, model: &Mlp, opt: &mut Optimizer, dict: &StateDict) -> String {
    model.arena.load_state_dict(dev, dict).unwrap();
    let before = opt.state_dict(dev, &model.arena).unwrap();
    let e = opt.load_state_dict(dev, &model.arena, dict).expect_err("the optimizer's load must fail");
    assert!(opt.state_dict(dev, &model.arena).unwrap() == before, "a refused load changes nothing ({e:#})");
    format!("{e:#}")
}

fn loading_is_strict(dev: &mut Device) {
    let adam = json!({"name": "adam", "lr": 0.01});
    let (model, mut opt) = build(dev, &adam, 0);
    train(dev, &model, &mut opt, &mut Rng::new(3), 2);
    let good = everything(dev, &model, &opt);
    let (target, mut topt) = build(dev, &adam, 1);
    let mut rng = Rng::new(4);
    train(dev, &target, &mut topt, &mut rng, 1);

    let mut missing = good.clone();
    missing.tensors.retain(|t| t.name != "2.bias");
    assert!(refused_model(dev, &target, &missing).contains("tensor 2.bias (shape [5]) is missing"));

    let mut extra = good.clone();
    let mut t = good.get("0.bias").unwrap().clone();
    t.name = "4.bias".into();
    extra.tensors.push(t);
    let msg = refused_model(dev, &target, &extra);
    assert!(msg.contains("unexpected tensor 4.bias") && msg.contains("0.weight, 0.bias, 2.weight, 2.bias"), "{msg}");

    let mut shaped = good.clone();
    shaped.tensors.iter_mut().find(|t| t.name == "0.weight").unwrap().shape = vec![SIZES[0], SIZES[1]];
    let msg = refused_model(dev, &target, &shaped);
    assert!(msg.contains("0.weight has shape [96, 48] in the state dict, the model's is [48, 96]"), "{msg}");

    let mut state_extra = good.clone();
    let mut t = good.get("optimizer.exp_avg.0.bias").unwrap().clone();
    t.name = "optimizer.max_exp_avg_sq.0.bias".into();
    state_extra.tensors.push(t);
    let msg = refused_opt(dev, &target, &mut topt, &state_extra);
    assert!(
        msg.contains("tensor optimizer.max_exp_avg_sq.0.bias is not state this 32-bit adam optimizer keeps"),
        "{msg}"
    );

    let mut state_missing = good.clone();
    state_missing.tensors.retain(|t| t.name != "optimizer.exp_avg_sq.2.weight");
    let msg = refused_opt(dev, &target, &mut topt, &state_missing);
    assert!(msg.contains("tensor optimizer.exp_avg_sq.2.weight is missing"), "{msg}");

    let mut no_step = good.clone();
    no_step.metadata.remove("optimizer_step");
    assert!(refused_opt(dev, &target, &mut topt, &no_step).contains("no 'optimizer_step' entry"));

    // Another optimizer's state (AdamW keeps the same slots as Adam) or another width.
    let (_, adamw) = build(dev, &json!({"name": "adamw"}), 0);
    let mut other = good.clone();
    other.metadata.insert("optimizer".into(), adamw.config.to_json().to_string());
    let msg = refused_opt(dev, &target, &mut topt, &other);
    assert!(msg.contains("saved by a 32-bit adamw optimizer, this one is a 32-bit adam"), "{msg}");
    let (m16, o16) = build(dev, &json!({"name": "adam", "lr": 0.01, "optim_bits": 16}), 0);
    let at16 = everything(dev, &m16, &o16);
    let msg = refused_opt(dev, &target, &mut topt, &at16);
    assert!(msg.contains("saved by a 16-bit adam optimizer, this one is a 32-bit adam"), "{msg}");
    let mut unmarked = at16.clone();
    unmarked.metadata.remove("optimizer");
    let msg = refused_opt(dev, &target, &mut topt, &unmarked);
    assert!(msg.contains("is stored as Bf16, but this 32-bit optimizer keeps it as F32"), "{msg}");

    // A parameter stored at another width is refused too.
    let mut bf = good.clone();
    bf.tensors.iter_mut().find(|t| t.name == "2.bias").unwrap().dtype = Stored::Bf16;
    assert!(refused_model(dev, &target, &bf).contains("2.bias is stored as Bf16; parameters are F32"));

    // And the good one loads.
    target.arena.load_state_dict(dev, &good).unwrap();
    topt.load_state_dict(dev, &target.arena, &good).unwrap();
    assert!(everything(dev, &target, &topt) == good, "the good state dict loads as it was saved");
}
test_device!(loading_is_strict_and_names_what_does_not_fit, loading_is_strict);

/// A file PyTorch wrote (`tests/fixtures/make_state_dict_fixture.py`: an `nn.Sequential`'s
/// `state_dict()` through `safetensors.torch.save_file`) loads strictly, values bit for bit.
#[test]
fn a_pytorch_state_dict_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_state_dict.safetensors");
    let dict = StateDict::load(&path).unwrap();
    let mut dev = Device::cpu();
    let model = Mlp::new(&mut dev, &[5, 7, 3], Act::Relu, &mut TorchGenerator::new(9)).unwrap();
    model.arena.load_state_dict(&mut dev, &dict).unwrap();
    // The fixture holds torch.manual_seed(0)'s nn.Linear draws, which Mlp reproduces.
    let seeded = Mlp::new(&mut dev, &[5, 7, 3], Act::Relu, &mut TorchGenerator::new(0)).unwrap();
    assert_eq!(dev.read(model.arena.params).unwrap(), dev.read(seeded.arena.params).unwrap());
}
