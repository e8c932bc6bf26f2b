//! Parameter groups: one optimizer and one state over two groups (weights with weight decay,
//! biases with none and their own rate) under a StepLR schedule matches PyTorch 2.15's
//! `param_groups` step for step (`tests/fixtures/make_param_groups_fixture.py`), on both
//! devices, for AdamW and SGD with momentum; and what groups refuse.

#[macro_use]
mod common;

use descent::backend::{Act, Device};
use descent::nn::Mlp;
use descent::optim::{OptimConfig, Optimizer, ParamGroup, Schedule};
use descent::torch_rng::TorchGenerator;
use serde_json::{json, Value};

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|b| f32::from_bits(b.as_u64().unwrap() as u32)).collect()
}

fn groups_of(model: &Mlp, w: &Value, b: &Value) -> Vec<ParamGroup> {
    let ids = |name: &str| model.arena.ids().filter(|&id| model.arena.info(id).name.ends_with(name)).collect();
    let group =
        |tensors, g: &Value| ParamGroup { tensors, lr: g["lr"].as_f64(), weight_decay: g["weight_decay"].as_f64() };
    vec![group(ids(".weight"), w), group(ids(".bias"), b)]
}

fn matches_pytorch(dev: &mut Device) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_param_groups.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for case in fixture["cases"].as_array().unwrap() {
        let name = case["optimizer"].as_str().unwrap();
        let config = match name {
            "adamw" => json!({"name": "adamw", "lr": 0.01, "weight_decay": 0.1}),
            _ => json!({"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
        };
        let model = Mlp::new(dev, &[5, 7, 3], Act::Relu, &mut TorchGenerator::new(0)).unwrap();
        let config = OptimConfig::from_json(&config, "test").unwrap();
        let mut opt = Optimizer::new(dev, &model.arena, config, Schedule::parse("step:2:0.5").unwrap()).unwrap();
        opt.set_param_groups(&model.arena, &groups_of(&model, &case["weights"], &case["biases"])).unwrap();
        for (k, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            for (e, g) in model.arena.entries.clone().iter().zip(step["grads"].as_array().unwrap()) {
                dev.write(model.arena.grads.slice(e.offset, e.len()), &floats(g)).unwrap();
            }
            opt.step(dev, &model.arena).unwrap();
            let params = dev.read(model.arena.params).unwrap();
            for (e, want) in model.arena.entries.iter().zip(step["params"].as_array().unwrap()) {
                for (i, (&g, &w)) in params[e.range()].iter().zip(&floats(want)).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-6 + 1e-5 * w.abs(),
                        "{name} step {}: {}[{i}] {g} vs PyTorch's {w}",
                        k + 1,
                        e.name
                    );
                }
            }
        }
        opt.release(dev);
    }
}
test_device!(param_groups_match_pytorch, matches_pytorch);

fn refusals(dev: &mut Device) {
    let model = Mlp::new(dev, &[5, 7, 3], Act::Relu, &mut TorchGenerator::new(0)).unwrap();
    let ids: Vec<_> = model.arena.ids().collect();
    let adamw = OptimConfig::defaults("adamw").unwrap();
    let mut opt = Optimizer::new(dev, &model.arena, adamw, Schedule::Constant).unwrap();
    let g = |t: &[usize]| ParamGroup { tensors: t.iter().map(|&i| ids[i]).collect(), ..Default::default() };
    let e = opt.set_param_groups(&model.arena, &[g(&[0, 1]), g(&[1, 2, 3])]).unwrap_err().to_string();
    assert!(e.contains("0.bias is in parameter groups 0 and 1"), "{e}");
    let e = opt.set_param_groups(&model.arena, &[g(&[0, 1, 2])]).unwrap_err().to_string();
    assert!(e.contains("2.bias is in no parameter group"), "{e}");
    let bad = ParamGroup { lr: Some(-1.0), ..g(&[0, 1, 2, 3]) };
    let e = format!("{:#}", opt.set_param_groups(&model.arena, &[bad]).unwrap_err());
    assert!(e.contains("parameter group 0") && e.contains("lr"), "{e}");
    opt.set_param_groups(&model.arena, &[g(&[0, 2]), g(&[1, 3])]).unwrap();
    let e = opt.step_views(dev, model.arena.params, model.arena.grads).unwrap_err().to_string();
    assert!(e.contains("step it with Optimizer::step(arena)"), "{e}");
    opt.step(dev, &model.arena).unwrap();
    for name in ["asgd", "schedulefree_adamw", "adafactor", "muon"] {
        let mut o =
            Optimizer::new(dev, &model.arena, OptimConfig::defaults(name).unwrap(), Schedule::Constant).unwrap();
        assert!(o.set_param_groups(&model.arena, &[g(&[0, 1, 2, 3])]).is_err(), "{name}");
    }
    let eight = OptimConfig::from_json(&json!({"name": "adamw", "optim_bits": 8}), "t").unwrap();
    let mut o = Optimizer::new(dev, &model.arena, eight, Schedule::Constant).unwrap();
    assert!(o.set_param_groups(&model.arena, &[g(&[0, 1, 2, 3])]).unwrap_err().to_string().contains("8-bit"));
}
test_device!(param_groups_refuse_what_they_cannot_do, refusals);
