//! The composed losses against PyTorch 2.15 (`tests/fixtures/make_loss_fixture.py`, float64 from
//! the same float32 inputs): `Tape::l1`, `huber`, `bce_with_logits` (logits of ±40 included),
//! `cross_entropy_soft` and `cross_entropy_label_smoothing` (an ignored row included), and the
//! activations `gelu`, `gelu_tanh` and `silu` over [-6, 6]: the value and the gradient of every
//! input, on both devices; and the losses' errors.

#[macro_use]
mod common;

use descent::autograd::{Tape, Var};
use descent::backend::Device;
use descent::reference as r;
use descent::tensor::Tensor;
use serde_json::Value;

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn against_pytorch(dev: &mut Device) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_losses.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for case in fixture["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let inputs: Vec<(Vec<f32>, Vec<usize>)> = case["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let shape = i["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
                (floats(&i["values"]), shape)
            })
            .collect();
        let mut grads = Vec::new();
        let mut values = Vec::new();
        let (loss, got_grads) = {
            let mut tape = Tape::new(dev);
            let mut vars: Vec<Var> = Vec::new();
            for (data, shape) in &inputs {
                let v = tape.device().upload(data).unwrap();
                let g = tape.device().alloc(data.len()).unwrap();
                tape.device().fill(g, f32::NAN);
                values.push(v);
                grads.push(g);
                vars.push(tape.param(Tensor::new(v, shape).unwrap(), g).unwrap());
            }
            let loss = match name {
                "l1" => tape.l1(vars[0], vars[1]),
                "huber" => tape.huber(vars[0], vars[1], case["delta"].as_f64().unwrap() as f32),
                "bce_with_logits" => tape.bce_with_logits(vars[0], vars[1]),
                "cross_entropy_soft" => tape.cross_entropy_soft(vars[0], vars[1]),
                "cross_entropy_label_smoothing" => tape.cross_entropy_label_smoothing(
                    vars[0],
                    &floats(&case["labels"]),
                    case["eps"].as_f64().unwrap() as f32,
                ),
                "mean_gelu" => tape.gelu(vars[0]).and_then(|h| tape.mean(h)),
                "mean_gelu_tanh" => tape.gelu_tanh(vars[0]).and_then(|h| tape.mean(h)),
                "mean_silu" => tape.silu(vars[0]).and_then(|h| tape.mean(h)),
                other => panic!("{other}"),
            }
            .unwrap();
            tape.backward(loss).unwrap();
            let l = tape.read(loss).unwrap()[0];
            drop(tape);
            (l, grads.iter().map(|&g| dev.read(g).unwrap()).collect::<Vec<_>>())
        };
        let what =
            format!("{name} {} on {}", case.get("delta").map_or(String::new(), |d| format!("δ {d}")), dev.describe());
        let want = case["loss"].as_f64().unwrap();
        assert!(r::close(loss as f64, want, 1e-6, 1e-5), "{what}: loss {loss} vs PyTorch's {want}");
        for (k, g) in got_grads.iter().enumerate() {
            let Some(w) = case["grads"][k].as_array() else { continue };
            let w: Vec<f64> = w.iter().map(|x| x.as_f64().unwrap()).collect();
            for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
                assert!(r::close(a as f64, b, 1e-6, 1e-4), "{what}: d/dinput{k}[{i}] {a} vs PyTorch's {b}");
            }
        }
        for v in values.into_iter().chain(grads) {
            dev.release(v);
        }
    }
}
test_device!(losses_match_pytorch, against_pytorch);

fn errors(dev: &mut Device) {
    let a = dev.upload(&[1.0; 6]).unwrap();
    let mut tape = Tape::new(dev);
    let x = tape.input(Tensor::new(a, &[2, 3]).unwrap());
    let y = tape.input(Tensor::new(a, &[3, 2]).unwrap());
    let e = tape.l1(x, y).unwrap_err().to_string();
    assert!(e.contains("l1: prediction [2, 3] and target [3, 2] differ in shape"), "{e}");
    let e = tape.huber(x, x, 0.0).unwrap_err().to_string();
    assert!(e.contains("delta must be a finite number > 0"), "{e}");
    let e = tape.bce_with_logits(x, y).unwrap_err().to_string();
    assert!(e.contains("differ in shape"), "{e}");
    let e = tape.cross_entropy_label_smoothing(x, &[0.0, 3.0], 0.1).unwrap_err();
    assert!(format!("{e:#}").contains("row 1") && format!("{e:#}").contains("3 classes"), "{e:#}");
    let e = tape.cross_entropy_label_smoothing(x, &[0.0, 1.0], 1.5).unwrap_err().to_string();
    assert!(e.contains("label_smoothing must be between 0 and 1"), "{e}");
}
test_device!(loss_errors, errors);
