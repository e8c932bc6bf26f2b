//! What an optimizer refuses when it is built, on both devices: inputs that would otherwise
//! give a wrong number later with no error.

#[macro_use]
mod common;

use descent::backend::Device;
use descent::optim::{OptimConfig, Optimizer, Schedule};

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
