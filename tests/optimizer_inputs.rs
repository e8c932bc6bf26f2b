//! What an optimizer refuses, on both devices: inputs that would otherwise give a wrong number
//! later with no error (a schedule with NaN or wrapped rates, an arena it was not built for).

#[macro_use]
mod common;

use descent::backend::{Act, Device};
use descent::nn::Mlp;
use descent::optim::{OptimConfig, Optimizer, Schedule};
use descent::torch_rng::TorchGenerator;

/// An optimizer refuses a schedule that would give a wrong rate (cosine with `t_max` equal to
/// its warm-up: a NaN rate; a step schedule of step 0: a division by zero), when it is built.
fn optimizer_refuses_a_bad_schedule(dev: &mut Device) {
    let bad = [
        Schedule::Cosine { t_max: 10, eta_min: 0.0, warmup_steps: 10 },
        Schedule::Cosine { t_max: 5, eta_min: 0.0, warmup_steps: 10 },
        Schedule::Step { step_size: 0, gamma: 0.5 },
    ];
    for s in bad {
        let config = OptimConfig::defaults("adam").unwrap();
        let err = Optimizer::for_len(dev, config, s.clone(), 16).err().map(|e| e.to_string());
        assert!(err.as_deref().is_some_and(|e| e.contains("schedule")), "{s:?}: {err:?}");
    }
}
test_device!(optimizer_schedule_checked, optimizer_refuses_a_bad_schedule);

/// A rate changed after construction is checked too: `Optimizer::set_lr` refuses a negative
/// or NaN rate, and a step refuses one written into the public `config` or `schedule` fields
/// (or another optimizer or width than the state was built for) without counting the step.
fn optimizer_refuses_a_bad_rate_set_later(dev: &mut Device) {
    let mut rng = TorchGenerator::new(0);
    let mlp = Mlp::new(dev, &[2, 4, 3], Act::Tanh, &mut rng).unwrap();
    let mut opt = Optimizer::new(dev, &mlp.arena, OptimConfig::defaults("adam").unwrap(), Schedule::Constant).unwrap();
    for bad in [-1.0, f64::NAN, f64::INFINITY, 0.0] {
        let err = opt.set_lr(bad).unwrap_err().to_string();
        assert!(err.contains("lr"), "set_lr({bad}): {err}");
        assert_eq!(opt.config.lr(), 1e-3, "a refused rate is not kept");
    }
    opt.set_lr(0.01).unwrap();
    opt.step(dev, &mlp.arena).unwrap();
    let before = dev.read(mlp.arena.params).unwrap();
    opt.config.set_lr(-1.0);
    let err = opt.step(dev, &mlp.arena).unwrap_err();
    assert!(format!("{err:#}").contains("invalid lr: -1"), "{err:#}");
    assert_eq!((opt.step, dev.read(mlp.arena.params).unwrap()), (1, before.clone()), "nothing stepped");
    opt.config.set_lr(0.01);
    opt.schedule = Schedule::Cosine { t_max: 3, eta_min: 0.0, warmup_steps: 3 };
    assert!(format!("{:#}", opt.step(dev, &mlp.arena).unwrap_err()).contains("schedule"));
    opt.schedule = Schedule::Exponential { gamma: 1e300 };
    opt.step(dev, &mlp.arena).unwrap(); // step 2 at 0.01 · 1e300: finite
    let err = opt.step(dev, &mlp.arena).unwrap_err().to_string();
    assert!(err.contains("learning rate at step 3 is inf"), "{err}");
    opt.schedule = Schedule::Constant;
    opt.config = OptimConfig::defaults("sgd").unwrap();
    let err = opt.step(dev, &mlp.arena).unwrap_err().to_string();
    assert!(err.contains("built for 'adam' at 32 bits") && err.contains("'sgd'"), "{err}");
    assert_eq!(opt.step, 2);
}
test_device!(optimizer_rate_checked_later, optimizer_refuses_a_bad_rate_set_later);

/// An optimizer steps only the arena it was built for: a 2-16-3 and a 2-4-3 MLP pad to the same
/// length, and stepping one with the other's optimizer would mix their state.
fn optimizer_checks_the_arena_layout(dev: &mut Device) {
    let mut rng = TorchGenerator::new(0);
    let a = Mlp::new(dev, &[2, 16, 3], Act::Tanh, &mut rng).unwrap();
    let b = Mlp::new(dev, &[2, 4, 3], Act::Tanh, &mut rng).unwrap();
    assert_eq!(a.arena.len(), b.arena.len(), "the two arenas pad to one length");
    let mut opt = Optimizer::new(dev, &a.arena, OptimConfig::defaults("adam").unwrap(), Schedule::Constant).unwrap();
    opt.step(dev, &a.arena).unwrap();
    let err = opt.step(dev, &b.arena).unwrap_err().to_string();
    assert!(err.contains("built for another arena") && err.contains("[16, 2]") && err.contains("[4, 2]"), "{err}");
    assert_eq!(opt.step, 1, "the refused step was not counted");
}
test_device!(optimizer_arena_checked, optimizer_checks_the_arena_layout);

/// Schedule-Free steps in train mode only (its reference raises otherwise); eval then train
/// gives y back (within rounding), and before the first step both are no-ops, as there is no z.
fn schedule_free_modes(dev: &mut Device) {
    let mut rng = TorchGenerator::new(0);
    let m = Mlp::new(dev, &[2, 16, 3], Act::Tanh, &mut rng).unwrap();
    let config = OptimConfig::defaults("schedulefree_adamw").unwrap();
    let mut opt = Optimizer::new(dev, &m.arena, config, Schedule::Constant).unwrap();
    let y0 = dev.read(m.arena.params).unwrap();
    opt.eval(dev, &m.arena).unwrap();
    assert_eq!(dev.read(m.arena.params).unwrap(), y0, "no z before the first step: nothing moves");
    let err = opt.step(dev, &m.arena).unwrap_err().to_string();
    assert!(err.contains("eval mode") && err.contains("train()"), "{err}");
    assert_eq!(opt.step, 0, "the refused step was not counted");
    opt.train(dev, &m.arena).unwrap();
    dev.fill(m.arena.grads, 0.5);
    for _ in 0..3 {
        opt.step(dev, &m.arena).unwrap();
    }
    let y = dev.read(m.arena.params).unwrap();
    opt.eval(dev, &m.arena).unwrap();
    let x = dev.read(m.arena.params).unwrap();
    assert!(x.iter().zip(&y).any(|(a, b)| a != b), "x differs from y after steps");
    opt.train(dev, &m.arena).unwrap();
    let back = dev.read(m.arena.params).unwrap();
    for (a, b) in back.iter().zip(&y) {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "train(eval(y)) = {a}, y = {b}");
    }
}
test_device!(schedule_free_train_and_eval, schedule_free_modes);
