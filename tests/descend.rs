//! `descent descend` and `descent ewa`: the lecture's function demos through the code users call
//! (functions recorded on the autograd tape, gradients from backward, the fused optimizer
//! kernels), on both backends, compared within one unit of the last digit the lecture prints.

mod common;

use descent::app::descend::{descend, ewa, ewa_weights, Iterate};
use descent::app::functions::{Function, FUNCTIONS};
use descent::backend::Device;
use descent::optim::{OptimConfig, Rmsprop, Schedule};
use std::process::Command;

fn run(dev: &mut Device, function: &str, start: &[f32], optimizer: &str, lr: f64, steps: usize) -> Vec<Iterate> {
    let mut config = OptimConfig::defaults(optimizer).unwrap();
    config.set_lr(lr);
    descend(dev, &Function::find(function).unwrap(), start, &config, &Schedule::Constant, steps).unwrap()
}

/// Check x_1, x_2, … against the lecture's printed values to `digits` decimals.
fn check(its: &[Iterate], want: &[&[f64]], digits: i32, what: &str) {
    for (s, row) in want.iter().enumerate() {
        for (i, &w) in row.iter().enumerate() {
            let got = its[s + 1].x[i] as f64;
            assert!((got - w).abs() <= 10f64.powi(-digits), "{what}: x_{} coordinate {i} = {got}, lecture {w}", s + 1);
        }
    }
}

fn worked_examples(dev: &mut Device) {
    let its = run(dev, "square", &[70.0], "sgd", 0.1, 31);
    check(&its, &[&[56.0], &[44.8], &[35.84], &[28.672]], 3, "x² from 70");
    // The slides' "x10 = 6.012" and "x30 = 0.069" are 70·0.8^11 and 70·0.8^31.
    assert!((its[11].x[0] - 6.012).abs() < 1e-3 && (its[31].x[0] - 0.069).abs() < 1e-3);
    check(&run(dev, "square9", &[70.0], "sgd", 0.1, 4), &[&[-56.0], &[44.8], &[-35.84], &[28.672]], 3, "9x²");
    check(&run(dev, "square20", &[2.0], "sgd", 0.1, 4), &[&[-6.0], &[18.0], &[-54.0], &[162.0]], 3, "20x²");
    check(&run(dev, "bowl", &[6.0, 9.0], "sgd", 0.1, 3), &[&[4.8, 7.2], &[3.84, 5.76], &[3.072, 4.608]], 3, "bowl");
    // Composite g(f(x)): g'(3) = 8757 from the chain rule, then one step at each lr.
    for (lr, want, digits) in [(0.01, -84.57, 2), (0.001, -5.757, 3), (0.0005, -1.3785, 4), (0.0001, 2.1243, 4)] {
        let its = run(dev, "composite", &[3.0], "sgd", lr, 1);
        assert_eq!(its[0].grad[0], 8757.0, "g'(f(3))·f'(3)");
        check(&its, &[&[want]], digits, &format!("composite lr {lr}"));
    }
    let its = run(dev, "log_square", &[9.0], "sgd", 10.0, 4);
    check(&its, &[&[6.7778], &[3.8270], &[-1.3991], &[12.8955]], 4, "log x²");
    // From 99: lr 0.001 crawls, 0.8 oscillates and converges, 1.1 diverges.
    let crawl = run(dev, "square", &[99.0], "sgd", 0.001, 10);
    assert!(crawl[10].x[0] > 97.0);
    let osc = run(dev, "square", &[99.0], "sgd", 0.8, 10);
    for w in osc.windows(2) {
        assert!(w[0].x[0] * w[1].x[0] < 0.0 && w[1].x[0].abs() < w[0].x[0].abs(), "lr 0.8 oscillates inward");
    }
    let div = run(dev, "square", &[99.0], "sgd", 1.1, 10);
    assert!(div[10].x[0].abs() > 99.0 * 1.2f32.powi(10) * 0.999);
    // RMSProp on x² from 9 (α = ρ = 0.9, eps = 1e-7): 8.6837, 8.458, 8.27.
    let c = OptimConfig::Rmsprop(Rmsprop { lr: 0.1, alpha: 0.9, eps: 1e-7, ..Rmsprop::default() });
    let its = descend(dev, &Function::find("square").unwrap(), &[9.0], &c, &Schedule::Constant, 3).unwrap();
    check(&its, &[&[8.6837]], 4, "rmsprop");
    check(&its, &[&[8.6837], &[8.458], &[8.27]], 2, "rmsprop");
    // The lecture's momentum on x² from 90: 72, 41.4, 5.58, −27.77, −52.23.
    let its = run(dev, "square", &[90.0], "lecture_momentum", 0.1, 5);
    check(&its, &[&[72.0], &[41.4], &[5.58], &[-27.77], &[-52.23]], 2, "lecture momentum");
}

#[test]
fn worked_examples_on_cpu() {
    worked_examples(&mut Device::cpu());
}

#[test]
fn worked_examples_on_gpu() {
    worked_examples(&mut common::gpu());
}

/// The autograd's gradient of every function matches central differences of the function.
#[test]
fn gradients_match_finite_differences() {
    let mut dev = Device::cpu();
    for f in FUNCTIONS {
        let point: Vec<f32> = vec![0.7, -0.4][..f.dims].to_vec();
        let its = run(&mut dev, f.name, &point, "sgd", 0.1, 0);
        for d in 0..f.dims {
            let h = 1e-2f32;
            let mut coords: Vec<Vec<f32>> = point.iter().map(|&p| vec![p, p]).collect();
            coords[d][0] += h;
            coords[d][1] -= h;
            let v = f.eval_many(&mut dev, &coords).unwrap();
            let fd = (v[0] - v[1]) / (2.0 * h);
            let g = its[0].grad[d];
            assert!(
                (g - fd).abs() <= 2e-2 * g.abs().max(1.0),
                "{}: d/dx{d} autograd {g}, finite difference {fd}",
                f.name
            );
        }
    }
}

#[test]
fn double_well_traps_gradient_descent_but_not_momentum() {
    let mut dev = Device::cpu();
    let stuck = run(&mut dev, "double_well", &[-1.5], "sgd", 0.01, 500);
    assert!((stuck[500].x[0] + 0.96).abs() < 0.02, "local minimum near -0.96, got {}", stuck[500].x[0]);
    let right = run(&mut dev, "double_well", &[1.5], "sgd", 0.01, 500);
    assert!((right[500].x[0] - 1.04).abs() < 0.02, "global minimum near 1.04, got {}", right[500].x[0]);
    assert!(right[500].f < stuck[500].f);
    // The rolling ball: from -3.2 momentum carries it over the bump into the global minimum.
    let ball = run(&mut dev, "double_well", &[-3.2], "lecture_momentum", 0.002, 300);
    assert!((ball[300].x[0] - 1.04).abs() < 0.02, "momentum ends at {}", ball[300].x[0]);
    let plain = run(&mut dev, "double_well", &[-3.2], "sgd", 0.002, 300);
    assert!((plain[300].x[0] + 0.96).abs() < 0.05, "plain GD ends at {}", plain[300].x[0]);
}

#[test]
fn ewa_weights_are_the_lectures() {
    let w = ewa_weights(0.9, 3);
    for (got, want) in w.iter().zip([0.081, 0.09, 0.1]) {
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }
    let v = ewa(&[3.0, 8.0, 6.0], 0.9, false);
    assert!((v[2] - (0.081 * 3.0 + 0.09 * 8.0 + 0.1 * 6.0)).abs() < 1e-12);
    // Bias correction undoes the pull towards V_0 = 0: the first corrected value is s_1.
    for rho in [0.5, 0.9, 0.98] {
        assert!((ewa(&[3.0, 8.0], rho, true)[0] - 3.0).abs() < 1e-12);
    }
}

fn descent(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_descent")).args(args).output().unwrap();
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), s(&out.stdout), s(&out.stderr))
}

#[test]
fn cli_prints_the_step_table() {
    let (code, out, err) = descent(&["descend", "--function", "composite", "--lr", "0.01,0.0001", "--steps", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("-84.57") && out.contains("2.1243") && out.contains("8757"), "{out}");
    let (code, out, _) = descent(&["descend", "--list"]);
    assert_eq!(code, 0);
    for f in FUNCTIONS {
        assert!(out.contains(f.name) && out.contains(f.formula));
    }
    let (code, out, _) = descent(&["ewa", "--rho", "0.9", "--series", "3,8,6"]);
    assert_eq!(code, 0);
    assert!(out.contains("0.1 s_3 + 0.09 s_2 + 0.081 s_1") && out.contains("1.563"), "{out}");
}

#[test]
fn cli_rejects_bad_requests_with_usage_errors() {
    for (args, says) in [
        (vec!["descend", "--function", "cube"], "unknown function 'cube'"),
        (vec!["descend", "--function", "square", "--y0", "1"], "drop --y0"),
        (vec!["descend", "--function", "square", "--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'"),
        (vec!["descend", "--function", "square", "--lr=-1"], "invalid lr"),
        (vec!["descend", "--function", "square", "--plot", "out.jpg"], "PNG"),
        (vec!["ewa", "--rho", "1.5"], "[0, 1)"),
    ] {
        let (code, _, err) = descent(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// Count the distinct colours of a PNG: a blank or failed drawing has one or two.
fn colours(path: &std::path::Path) -> usize {
    let img = image::open(path).unwrap().to_rgb8();
    let mut seen = std::collections::HashSet::new();
    for p in img.pixels() {
        seen.insert(p.0);
    }
    seen.len()
}

#[test]
fn cli_draws_curves_contours_and_averages() {
    let dir = std::env::temp_dir().join(format!("descent-plots-{}", std::process::id()));
    let cases: [&[&str]; 3] = [
        &["descend", "--function", "square", "--x0", "99", "--lr", "0.1,0.001,0.8,1.1"],
        &["descend", "--function", "rosenbrock", "--optimizer", "sgd,adam", "--lr", "0.001", "--steps", "50"],
        &["ewa"],
    ];
    for (k, args) in cases.iter().enumerate() {
        let path = dir.join(format!("{k}.png"));
        let mut a = args.to_vec();
        let p = path.to_string_lossy().into_owned();
        a.extend(["--plot", &p]);
        let (code, _, err) = descent(&a);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(colours(&path) > 20, "{args:?}: the picture is nearly blank");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
