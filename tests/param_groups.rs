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

/// One grouped step is one dispatch on a GPU, and bit for bit what two optimizers give, each
/// over one group (the other group's tensors frozen), at 32 and 16 bits: with a frozen tensor
/// in a group, which stays as it is, as does the padding between tensors.
fn one_dispatch_matches_separate_optimizers(dev: &mut Device) {
    for bits in ["32", "16"] {
        let config = |lr: f64, wd: f64| {
            let j = json!({"name": "adamw", "lr": lr, "weight_decay": wd, "optim_bits": bits.parse::<u32>().unwrap()});
            OptimConfig::from_json(&j, "test").unwrap()
        };
        let schedule = || Schedule::parse("step:2:0.5").unwrap();
        let build = |dev: &mut Device| {
            let mut m = Mlp::new(dev, &[5, 7, 6, 3], Act::Relu, &mut TorchGenerator::new(1)).unwrap();
            let first = m.arena.ids().next().unwrap();
            m.arena.set_frozen(first, true); // layers.0.weight, in the weights' group
                                             // Padding between tensors holds a sentinel no step may touch.
            let mut p = dev.read(m.arena.params).unwrap();
            let inside: Vec<bool> =
                (0..p.len()).map(|i| m.arena.entries.iter().any(|e| e.range().contains(&i))).collect();
            p.iter_mut().zip(&inside).filter(|(_, &i)| !i).for_each(|(v, _)| *v = 12345.0);
            dev.write(m.arena.params, &p).unwrap();
            m
        };
        let (grouped, mut split) = (build(dev), build(dev));
        let weights: Vec<_> =
            grouped.arena.ids().filter(|&i| grouped.arena.info(i).name.ends_with(".weight")).collect();
        let biases: Vec<_> = grouped.arena.ids().filter(|&i| grouped.arena.info(i).name.ends_with(".bias")).collect();
        let mut opt = Optimizer::new(dev, &grouped.arena, config(0.01, 0.1), schedule()).unwrap();
        let groups = [
            ParamGroup { tensors: weights.clone(), lr: None, weight_decay: None },
            ParamGroup { tensors: biases.clone(), lr: Some(0.03), weight_decay: Some(0.0) },
        ];
        opt.set_param_groups(&grouped.arena, &groups).unwrap();
        // The same two groups as two optimizers, each stepped with the other group frozen.
        let mut opt_w = Optimizer::new(dev, &split.arena, config(0.01, 0.1), schedule()).unwrap();
        let mut opt_b = Optimizer::new(dev, &split.arena, config(0.03, 0.0), schedule()).unwrap();
        let freeze = |arena: &mut descent::nn::ParamArena, ids: &[descent::nn::ParamId], frozen: bool| {
            ids.iter().for_each(|&i| arena.set_frozen(i, frozen))
        };
        let before = dev.read(grouped.arena.params).unwrap();
        for step in 0..4 {
            let g = descent::rng::Rng::new(10 + step).uniform_vec(grouped.arena.params.len, -1.0, 1.0);
            dev.write(grouped.arena.grads, &g).unwrap();
            dev.write(split.arena.grads, &g).unwrap();
            // The last round steps twice on one gradient, in one submit: each step reads the
            // tables it wrote, not the next one's.
            let repeats = if step == 3 { 2 } else { 1 };
            for _ in 0..repeats {
                let c0 = dev.counters();
                opt.step(dev, &grouped.arena).unwrap();
                let c1 = dev.counters();
                if dev.is_gpu() {
                    assert_eq!(c1.dispatches - c0.dispatches, 1, "{bits}-bit: a grouped step is one dispatch");
                    assert_eq!(c1.submits, c0.submits, "{bits}-bit: a grouped step submits nothing");
                }
            }
            for _ in 0..repeats {
                freeze(&mut split.arena, &biases, true);
                opt_w.step(dev, &split.arena).unwrap();
                freeze(&mut split.arena, &biases, false);
                freeze(&mut split.arena, &weights, true);
                opt_b.step(dev, &split.arena).unwrap();
                freeze(&mut split.arena, &weights[1..], false);
            }
            let (got, want) = (dev.read(grouped.arena.params).unwrap(), dev.read(split.arena.params).unwrap());
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert_eq!(a.to_bits(), b.to_bits(), "{bits}-bit step {}: element {i}: {a} vs {b}", step + 1);
            }
        }
        let after = dev.read(grouped.arena.params).unwrap();
        let frozen = grouped.arena.entries[0].range();
        assert_eq!(after[frozen.clone()], before[frozen], "{bits}-bit: the frozen tensor moved");
        assert_eq!(after.iter().filter(|&&v| v == 12345.0).count(), before.iter().filter(|&&v| v == 12345.0).count());
        assert!(before.contains(&12345.0), "the arena has padding between tensors");
        for o in [opt, opt_w, opt_b] {
            o.release(dev);
        }
    }
}
test_device!(param_groups_one_dispatch, one_dispatch_matches_separate_optimizers);

/// Groups with any hyperparameter of their own (`set_param_group_configs`): AdamW with other
/// betas and eps on the biases steps bit for bit as two optimizers would, each over one group.
/// And what one shared state cannot hold is refused: another kind or width, other state slots
/// (SGD with and without momentum), state that starts elsewhere (Rprop's step sizes start at
/// its rate, so a group with another rate would have started wrong), another direction.
fn whole_configs_per_group(dev: &mut Device) {
    let adamw = |j: Value| OptimConfig::from_json(&j, "test").unwrap();
    let weights_cfg = adamw(json!({"name": "adamw", "lr": 0.01, "weight_decay": 0.1}));
    let biases_cfg =
        adamw(json!({"name": "adamw", "lr": 0.02, "betas": [0.8, 0.95], "eps": 1e-6, "weight_decay": 0.0}));
    let grouped = Mlp::new(dev, &[5, 7, 3], Act::Relu, &mut TorchGenerator::new(2)).unwrap();
    let mut split = Mlp::new(dev, &[5, 7, 3], Act::Relu, &mut TorchGenerator::new(2)).unwrap();
    let named =
        |m: &Mlp, end: &str| -> Vec<_> { m.arena.ids().filter(|&i| m.arena.info(i).name.ends_with(end)).collect() };
    let (weights, biases) = (named(&grouped, ".weight"), named(&grouped, ".bias"));
    let mut opt = Optimizer::new(dev, &grouped.arena, weights_cfg.clone(), Schedule::Constant).unwrap();
    opt.set_param_group_configs(
        &grouped.arena,
        &[(weights.clone(), weights_cfg.clone()), (biases.clone(), biases_cfg.clone())],
    )
    .unwrap();
    let mut opt_w = Optimizer::new(dev, &split.arena, weights_cfg.clone(), Schedule::Constant).unwrap();
    let mut opt_b = Optimizer::new(dev, &split.arena, biases_cfg.clone(), Schedule::Constant).unwrap();
    for step in 0..3 {
        let g = descent::rng::Rng::new(40 + step).uniform_vec(grouped.arena.params.len, -1.0, 1.0);
        dev.write(grouped.arena.grads, &g).unwrap();
        dev.write(split.arena.grads, &g).unwrap();
        opt.step(dev, &grouped.arena).unwrap();
        biases.iter().for_each(|&b| split.arena.set_frozen(b, true));
        opt_w.step(dev, &split.arena).unwrap();
        biases.iter().for_each(|&b| split.arena.set_frozen(b, false));
        weights.iter().for_each(|&w| split.arena.set_frozen(w, true));
        opt_b.step(dev, &split.arena).unwrap();
        weights.iter().for_each(|&w| split.arena.set_frozen(w, false));
        let (got, want) = (dev.read(grouped.arena.params).unwrap(), dev.read(split.arena.params).unwrap());
        for e in &grouped.arena.entries {
            for i in e.range() {
                assert_eq!(got[i].to_bits(), want[i].to_bits(), "step {}: {}[{}]", step + 1, e.name, i - e.offset);
            }
        }
    }
    let all: Vec<_> = grouped.arena.ids().collect();
    let refused = |opt: &mut Optimizer, arena: &descent::nn::ParamArena, configs: Vec<(Vec<_>, OptimConfig)>| {
        format!("{:#}", opt.set_param_group_configs(arena, &configs).unwrap_err())
    };
    let e = refused(&mut opt, &grouped.arena, vec![(all.clone(), OptimConfig::defaults("adam").unwrap())]);
    assert!(e.contains("a adam at 32 bits in an optimizer of adamw"), "{e}");
    let amsgrad = adamw(json!({"name": "adamw", "amsgrad": true}));
    let e = refused(&mut opt, &grouped.arena, vec![(weights.clone(), weights_cfg.clone()), (biases.clone(), amsgrad)]);
    assert!(e.contains("parameter group 1: keeps state") && e.contains("max_exp_avg_sq"), "{e}");
    let maximize = adamw(json!({"name": "adamw", "maximize": true}));
    let e = refused(&mut opt, &grouped.arena, vec![(all.clone(), maximize)]);
    assert!(e.contains("maximize differs"), "{e}");
    let sgd = |j: Value| OptimConfig::from_json(&j, "test").unwrap();
    let momentum = sgd(json!({"name": "sgd", "lr": 0.1, "momentum": 0.9}));
    let mut o = Optimizer::new(dev, &grouped.arena, momentum.clone(), Schedule::Constant).unwrap();
    let e = refused(
        &mut o,
        &grouped.arena,
        vec![(weights.clone(), momentum), (biases.clone(), sgd(json!({"name": "sgd", "lr": 0.1})))],
    );
    assert!(e.contains("give every group momentum, or none"), "{e}");
    let rprop = OptimConfig::defaults("rprop").unwrap();
    let mut o = Optimizer::new(dev, &grouped.arena, rprop, Schedule::Constant).unwrap();
    let faster = ParamGroup { tensors: biases.clone(), lr: Some(0.05), weight_decay: None };
    let rest = ParamGroup { tensors: weights.clone(), lr: None, weight_decay: None };
    let e = format!("{:#}", o.set_param_groups(&grouped.arena, &[rest.clone(), faster]).unwrap_err());
    assert!(e.contains("rprop's state starts from the rate"), "{e}");
    o.set_param_groups(&grouped.arena, &[rest, ParamGroup { tensors: biases, lr: Some(0.01), weight_decay: None }])
        .unwrap();
}
test_device!(param_groups_whole_configs, whole_configs_per_group);
