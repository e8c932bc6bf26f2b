//! Muon's Newton–Schulz in bfloat16 (`ns_dtype` bfloat16), the CPU backend's op against
//! PyTorch's own iteration (`tests/fixtures/muon_bf16_ns.json`, made by
//! `make_muon_bf16_fixture.py`) and against the f64 reference with PyTorch's roundings; the
//! mode in an optimizer, and where it is refused.

mod common;

use descent::backend::{Device, NewtonSchulz};
use descent::optim::reference as optim_ref;
use descent::optim::{Muon, NsDtype, OptimConfig, Optimizer, Schedule};
use serde_json::Value;

fn fixture() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/muon_bf16_ns.json"))
        .expect("the fixture");
    serde_json::from_str(&text).expect("JSON")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("an array").iter().map(|x| x.as_f64().expect("a number") as f32).collect()
}

fn muon(ns_dtype: NsDtype) -> OptimConfig {
    OptimConfig::Muon(Muon { ns_dtype, ..Muon::default() })
}

/// The op's output for `input` (rows × cols) on the CPU backend.
fn ours(input: &[f32], rows: usize, cols: usize, ns: &NewtonSchulz) -> Vec<f32> {
    let mut dev = Device::cpu();
    let x = dev.upload(input).expect("upload");
    dev.newton_schulz_bf16(x, rows, cols, ns);
    dev.read(x).expect("no fault")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Every case: ours gives PyTorch's bfloat16 values but for a few sums that round the other
/// way (on the CPU that made the fixture, none), and is many times closer to it than the f32
/// iteration (the f64 reference without roundings) is.
#[test]
fn matches_pytorch_bf16_newton_schulz() {
    let f = fixture();
    let c = floats(&f["ns_coefficients"]);
    let ns = NewtonSchulz {
        coefficients: (c[0], c[1], c[2]),
        steps: f["ns_steps"].as_u64().expect("steps"),
        eps: f["eps"].as_f64().expect("eps") as f32,
    };
    for case in f["cases"].as_array().expect("cases") {
        let (rows, cols) = (case["rows"].as_u64().unwrap() as usize, case["cols"].as_u64().unwrap() as usize);
        let (input, torch) = (floats(&case["input"]), floats(&case["torch"]));
        let got = ours(&input, rows, cols, &ns);
        // Outputs are bfloat16 values: the low 16 bits of each f32 are zero.
        assert!(got.iter().all(|v| v.to_bits() & 0xFFFF == 0), "{rows}x{cols}: not bfloat16 values");
        let u: Vec<f64> = input.iter().map(|&v| v as f64).collect();
        let f32_mode: Vec<f32> =
            optim_ref::newton_schulz(&u, rows, cols, &muon(NsDtype::Float32)).iter().map(|&v| v as f32).collect();
        let (to_torch, f32_to_torch) = (max_abs_diff(&got, &torch), max_abs_diff(&f32_mode, &torch));
        let same = got.iter().zip(&torch).filter(|(a, b)| a == b).count();
        eprintln!(
            "{rows}x{cols}: {same}/{} equal to PyTorch's, max |ours − torch| {to_torch:.4}, max |f32 − torch| {f32_to_torch:.4}",
            got.len()
        );
        // PyTorch's values are about 1 in magnitude: 1/128 is two steps of bfloat16 at 1.
        assert!(to_torch <= 1.0 / 128.0, "{rows}x{cols}: {to_torch} from PyTorch's");
        assert!(same * 100 >= got.len() * 98, "{rows}x{cols}: only {same} of {} equal to PyTorch's", got.len());
        assert!(to_torch * 4.0 <= f32_to_torch, "{rows}x{cols}: {to_torch} vs the f32 iteration's {f32_to_torch}");
    }
}

/// Against the f64 reference with PyTorch's roundings, at odd shapes in both orientations
/// (the reference is what parity checks the mode against).
#[test]
fn matches_the_rounded_reference_at_odd_shapes() {
    let ns = NewtonSchulz { coefficients: (3.4445, -4.775, 2.0315), steps: 5, eps: 1e-7 };
    for (rows, cols) in [(1, 1), (1, 7), (7, 1), (3, 5), (5, 3), (33, 65), (65, 33), (129, 65)] {
        let input = descent::rng::Rng::new((rows * 1000 + cols) as u64).uniform_vec(rows * cols, -1.0, 1.0);
        let got = ours(&input, rows, cols, &ns);
        let u: Vec<f64> = input.iter().map(|&v| v as f64).collect();
        let want: Vec<f32> =
            optim_ref::newton_schulz(&u, rows, cols, &muon(NsDtype::Bfloat16)).iter().map(|&v| v as f32).collect();
        let d = max_abs_diff(&got, &want);
        // f32 sums against f64 ones: a few values one bfloat16 step (1/256 at 1) apart.
        assert!(d <= 1.0 / 128.0, "{rows}x{cols}: {d} from the rounded reference");
    }
}

/// A tall view shorter than the matrix is a fault, not a read past it.
#[test]
fn a_short_view_is_a_fault() {
    let mut dev = Device::cpu();
    let x = dev.upload(&[1.0; 5]).unwrap();
    let ns = NewtonSchulz { coefficients: (3.4445, -4.775, 2.0315), steps: 5, eps: 1e-7 };
    dev.newton_schulz_bf16(x, 2, 3, &ns);
    let e = dev.read(x).unwrap_err().to_string();
    assert!(e.contains("newton_schulz_bf16") && e.contains("6 elements"), "{e}");
}

/// The mode in an optimizer: Muon steps a matrix with it on the CPU, and its update differs
/// from the f32 mode's by about bfloat16's precision, not more.
#[test]
fn an_optimizer_steps_with_it() {
    let (rows, cols) = (24, 40);
    let n = rows * cols;
    let mut rng = descent::rng::Rng::new(3);
    let (p0, g) = (rng.uniform_vec(n, -1.0, 1.0), rng.uniform_vec(n, -1.0, 1.0));
    let mut after = Vec::new();
    for dtype in [NsDtype::Float32, NsDtype::Bfloat16] {
        let mut dev = Device::cpu();
        let cfg = OptimConfig::Muon(Muon { lr: 0.02, ns_dtype: dtype, ..Muon::default() });
        let mut opt = Optimizer::for_shapes(&mut dev, cfg, Schedule::Constant, n, &[(0, vec![rows, cols])]).unwrap();
        let (p, gv) = (dev.upload(&p0).unwrap(), dev.upload(&g).unwrap());
        opt.step_views(&mut dev, p, gv).unwrap();
        after.push(dev.read(p).unwrap());
    }
    let moved = max_abs_diff(&after[0], &p0);
    let apart = max_abs_diff(&after[0], &after[1]);
    assert!(moved > 1e-3, "the f32 step moved the parameters by {moved}");
    assert!(apart > 0.0 && apart < 0.05 * moved, "bf16 and f32 steps {apart} apart, the step {moved}");
}

/// A GPU has no bfloat16 products: the optimizer is refused, naming the key.
#[test]
fn a_gpu_refuses_it() {
    let mut dev = common::gpu();
    let cfg = muon(NsDtype::Bfloat16);
    let e = Optimizer::for_shapes(&mut dev, cfg, Schedule::Constant, 12, &[(0, vec![3, 4])]).err().expect("refused");
    let text = format!("{e:#}");
    assert!(text.contains("ns_dtype") && text.contains("CPU backend only"), "{text}");
}

/// The JSON form: the key's values, and a wrong one named.
#[test]
fn the_json_key() {
    let c = OptimConfig::from_json(&serde_json::json!({"name": "muon", "ns_dtype": "bfloat16"}), "optimizer").unwrap();
    assert!(matches!(c, OptimConfig::Muon(Muon { ns_dtype: NsDtype::Bfloat16, .. })));
    assert!(OptimConfig::defaults("muon").unwrap().keys().contains(&"ns_dtype".to_string()));
    let e = OptimConfig::from_json(&serde_json::json!({"name": "muon", "ns_dtype": "float16"}), "optimizer")
        .unwrap_err()
        .to_string();
    assert!(e.contains("ns_dtype") && e.contains("\"float32\" or \"bfloat16\""), "{e}");
}
