//! The lecture's worked examples (SPEC.md), reproduced through `descent replay`'s code path on
//! both backends, compared within one unit of the last digit the lecture prints.

mod common;

use descent::app::replay::{run, ReplaySpec};
use descent::backend::Device;

/// Run a replay spec and return the parameters after each step.
fn trajectory(dev: &mut Device, spec: &str) -> Vec<Vec<f32>> {
    run(dev, &ReplaySpec::parse(spec).unwrap()).unwrap().params
}

/// `got` matches a printed value with `digits` decimals (truncated or rounded).
fn printed(got: f32, want: f64, digits: i32) -> bool {
    (got as f64 - want).abs() <= 10f64.powi(-digits)
}

fn check(dev: &mut Device, spec: &str, want: &[&[f64]], digits: i32) {
    let t = trajectory(dev, spec);
    for (s, row) in want.iter().enumerate() {
        for (i, &w) in row.iter().enumerate() {
            assert!(
                printed(t[s][i], w, digits),
                "{spec}: step {} coordinate {i}: {} vs the lecture's {w}",
                s + 1,
                t[s][i]
            );
        }
    }
}

fn all_examples(dev: &mut Device) {
    let gd = |a: f64, x0: f64| {
        format!(r#"{{"optimizer": {{"name": "sgd", "lr": 0.1}}, "init": [{x0}], "quadratic": [{a}], "steps": 4}}"#)
    };
    // x², x0 = 70: each step multiplies x by 0.8.
    check(dev, &gd(1.0, 70.0), &[&[56.0], &[44.8], &[35.84], &[28.672]], 3);
    // 9x²: factor −0.8 (oscillates).
    check(dev, &gd(9.0, 70.0), &[&[-56.0], &[44.8], &[-35.84], &[28.672]], 3);
    // 20x², x0 = 2: factor −3 (diverges).
    check(dev, &gd(20.0, 2.0), &[&[-6.0], &[18.0], &[-54.0], &[162.0]], 3);
    // The bowl x² + y² from (6, 9).
    check(
        dev,
        r#"{"optimizer": {"name": "sgd", "lr": 0.1}, "init": [6, 9], "quadratic": [1, 1], "steps": 3}"#,
        &[&[4.8, 7.2], &[3.84, 5.76], &[3.072, 4.608]],
        3,
    );
    // RMSProp on x² from 9: x1 = 8.6837, x2 ≈ 8.458, x3 ≈ 8.27, and s1 = 32.4.
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/replay/lecture_rmsprop.json")).unwrap();
    check(dev, &spec, &[&[8.6837]], 4);
    check(dev, &spec, &[&[8.6837], &[8.458]], 3);
    check(dev, &spec, &[&[8.6837], &[8.458], &[8.27]], 2);
    let s3 = run(dev, &ReplaySpec::parse(&spec.replace("\"steps\": 3", "\"steps\": 1")).unwrap()).unwrap();
    assert!(printed(s3.state[0].1[0], 32.4, 4), "s1 = {}", s3.state[0].1[0]);
    // The lecture's momentum on x² from 90: 72, 41.4, 5.58, −27.77, −52.23.
    check(
        dev,
        r#"{"optimizer": {"name": "lecture_momentum", "lr": 0.1, "momentum": 0.9}, "init": [90], "quadratic": [1], "steps": 5}"#,
        &[&[72.0], &[41.4], &[5.58], &[-27.77], &[-52.23]],
        2,
    );
}

#[test]
fn lecture_examples_on_cpu() {
    all_examples(&mut Device::cpu());
}

#[test]
fn lecture_examples_on_gpu() {
    all_examples(&mut common::gpu());
}
