//! The non-finite gradient check folded into the optimizer step (`Device::optim_step_checked`):
//! on the CPU, on the GPU, and on a GPU whose launches are split into chunks past one binding,
//! at f32 and bfloat16 state and at odd sizes, it records what the separate `find_nonfinite`
//! pass records (the first tag, and the element's index), and the update is bit for bit the one
//! the unchecked step makes.

mod common;

use descent::backend::optim_kernel::Objective;
use descent::backend::{Device, GradCheck, OptimStep, View};
use descent::optim::{Carried, OptimConfig, Step};
use descent::rng::Rng;

/// Adam's first step, as the optimizer would launch it.
fn adam_step() -> OptimStep {
    let c = OptimConfig::defaults("adam").unwrap();
    let mut carried = Carried::new();
    carried.advance(&c, c.lr());
    match c.kernel_step(1, c.lr(), &carried) {
        Step::Fused(k) => k,
        other => panic!("adam is one fused kernel, got {other:?}"),
    }
}

/// What one step leaves: the parameters, the state slots' raw words, the flag.
type After = (Vec<u32>, Vec<Vec<u32>>, Vec<f32>);

fn bits(v: Vec<f32>) -> Vec<u32> {
    v.into_iter().map(f32::to_bits).collect()
}

/// How [`one_step`] checks the gradients.
#[derive(Clone, Copy, PartialEq)]
enum Check {
    /// In the step (`optim_step_checked`).
    Folded,
    /// `find_nonfinite`, then the step.
    Separate,
    /// Not at all (past one binding, where `find_nonfinite` refuses a buffer bound whole).
    Unchecked,
}

/// One Adam step over `n` elements from `p0` and `g0` (state zero), checked as `how` says,
/// the flag at elements 2..4 of a buffer whose first two hold 7 and the flag `flag0`.
fn one_step(dev: &mut Device, p0: &[f32], g0: &[f32], bf16: bool, how: Check, flag0: [f32; 2]) -> After {
    let n = p0.len();
    let k = adam_step();
    let p = dev.upload(p0).unwrap();
    let g = dev.upload(g0).unwrap();
    let words = if bf16 { n.div_ceil(2) } else { n };
    let slots: Vec<View> = (0..2).map(|_| dev.alloc(words).unwrap()).collect();
    for &s in &slots {
        dev.fill(s, 0.0);
    }
    let state: Vec<View> = slots.iter().map(|&s| if bf16 { View { offset: 0, len: n, ..s } } else { s }).collect();
    let metrics = dev.upload(&[7.0, 7.0, flag0[0], flag0[1]]).unwrap();
    let check = GradCheck { flag: metrics.slice(2, 2), tag: 5.0 };
    if how == Check::Folded {
        dev.optim_step_checked(&k, Objective::Minimize, p, g, &state, bf16, check);
    } else {
        if how == Check::Separate {
            dev.find_nonfinite(g, check.flag, check.tag);
        }
        if bf16 {
            dev.optim_step_bf16(&k, Objective::Minimize, p, g, &state);
        } else {
            dev.optim_step(&k, Objective::Minimize, p, g, &state);
        }
    }
    dev.sync().unwrap();
    let m = dev.read(metrics).unwrap();
    assert_eq!(&m[..2], &[7.0, 7.0], "the elements before the flag are untouched");
    let after =
        (bits(dev.read(p).unwrap()), slots.iter().map(|&s| bits(dev.read(s).unwrap())).collect(), m[2..].to_vec());
    for v in [p, g, metrics].into_iter().chain(slots) {
        dev.release(v);
    }
    after
}

/// The folded check against `reference` (the separate pass, or past one binding no check: then
/// only the update is compared, and the flag against what the separate pass records).
fn check_on(dev: &mut Device, sizes: &[usize], reference: Check) {
    let mut rng = Rng::new(17);
    for &n in sizes {
        for bf16 in [false, true] {
            let p0 = rng.uniform_vec(n, -1.0, 1.0);
            let clean = rng.uniform_vec(n, -1.0, 1.0);
            let what = format!("{} n={n} bf16={bf16}", dev.describe());
            // No bad gradient: the flag keeps its "none" and the update is the unchecked one.
            let none = [-1.0, -1.0];
            let folded = one_step(dev, &p0, &clean, bf16, Check::Folded, none);
            assert_eq!(folded, one_step(dev, &p0, &clean, bf16, reference, none), "{what}: clean");
            assert_eq!(folded.2, none, "{what}: nothing to record");
            // One bad gradient, last or in the middle (a chunk's second half on the small GPU).
            for (j, bad) in [(n - 1, f32::NAN), (n / 2, f32::INFINITY), (n / 3, f32::NEG_INFINITY)] {
                let mut g0 = clean.clone();
                g0[j] = bad;
                let folded = one_step(dev, &p0, &g0, bf16, Check::Folded, none);
                assert_eq!(folded.2, [5.0, j as f32], "{what}: {bad} at {j}");
                let want = one_step(dev, &p0, &g0, bf16, reference, none);
                assert_eq!((&folded.0, &folded.1), (&want.0, &want.1), "{what}: {bad} at {j}");
                if reference == Check::Separate {
                    assert_eq!(folded.2, want.2, "{what}: {bad} at {j}");
                }
                // A step already recorded is kept.
                let earlier = one_step(dev, &p0, &g0, bf16, Check::Folded, [2.0, 9.0]);
                assert_eq!(earlier.2, [2.0, 9.0], "{what}: the first record wins");
            }
        }
    }
}

#[test]
fn the_folded_check_records_what_find_nonfinite_records_on_the_cpu() {
    check_on(&mut Device::cpu(), &[1, 7, 1023, 1030], Check::Separate);
}

#[test]
fn the_folded_check_records_what_find_nonfinite_records_on_the_gpu() {
    check_on(&mut common::gpu(), &[1, 7, 1023, 1030], Check::Separate);
}

/// Past one binding the separate pass refuses the gradients bound whole; the folded check is
/// split into chunks with the step, and records each element by its index in the whole step.
#[test]
fn the_folded_check_records_what_find_nonfinite_records_past_one_binding() {
    // 300,001 floats: two chunks of a 1 MiB binding (262,144 floats less the alignment slack).
    let n = 300_001;
    assert!(n as u64 * 4 > common::SMALL_BINDING);
    check_on(&mut common::small_binding_gpu(), &[n], Check::Unchecked);
}

#[test]
fn a_flag_in_the_steps_own_buffers_is_a_fault() {
    for mut dev in [Device::cpu(), common::gpu()] {
        let k = adam_step();
        let p = dev.upload(&[0.5; 8]).unwrap();
        let g = dev.upload(&[0.25; 8]).unwrap();
        let s: Vec<View> = (0..2).map(|_| dev.alloc(8).unwrap()).collect();
        dev.optim_step_checked(&k, Objective::Minimize, p, g, &s, false, GradCheck { flag: g.slice(6, 2), tag: 1.0 });
        let err = format!("{:#}", dev.read(p).unwrap_err());
        assert!(err.contains("optim_step_checked") && err.contains("shares a buffer"), "{err}");
        // The refused step did not run.
        dev.clear_fault();
        assert_eq!(dev.read(p).unwrap(), vec![0.5; 8]);
    }
}
