//! `nn::Init` draws what PyTorch 2.15's `torch.nn.init` draws from the same seed
//! (`tests/fixtures/make_init_fixture.py`): the uniform schemes bit for bit, the normal ones to
//! within 2 ulp of the tensor's largest value (PyTorch's vectorized Box-Muller uses Sleef's log, sin and cos); small
//! tensors' normal draws, which keep a cached sample in the generator, bit for bit.

use descent::nn::{FanMode, Init, Nonlinearity};
use descent::torch_rng::TorchGenerator;
use serde_json::Value;

fn scheme(name: &str, args: &Value) -> Init {
    let f = |k: &str| args[k].as_f64().unwrap();
    let mode = || match args["mode"].as_str().unwrap() {
        "fan_in" => FanMode::FanIn,
        _ => FanMode::FanOut,
    };
    let nl = || match args["nonlinearity"].as_str().unwrap() {
        "relu" => Nonlinearity::Relu,
        "tanh" => Nonlinearity::Tanh,
        "leaky_relu" => Nonlinearity::LeakyRelu(f("a")),
        other => panic!("{other}"),
    };
    match name {
        "xavier_uniform" => Init::XavierUniform { gain: f("gain") },
        "xavier_normal" => Init::XavierNormal { gain: f("gain") },
        "kaiming_uniform" => Init::KaimingUniform { mode: mode(), nonlinearity: nl() },
        "kaiming_normal" => Init::KaimingNormal { mode: mode(), nonlinearity: nl() },
        "normal" => Init::Normal { mean: f("mean"), std: f("std") },
        other => panic!("{other}"),
    }
}

#[test]
fn init_schemes_draw_what_pytorch_draws() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_init.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut exact, mut close) = (0, 0);
    for case in fixture["cases"].as_array().unwrap() {
        let name = case["scheme"].as_str().unwrap();
        let init = scheme(name, &case["args"]);
        let mut rng = TorchGenerator::new(case["seed"].as_u64().unwrap());
        for t in case["tensors"].as_array().unwrap() {
            let shape: Vec<usize> =
                t["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
            let want: Vec<f32> =
                t["bits"].as_array().unwrap().iter().map(|b| f32::from_bits(b.as_u64().unwrap() as u32)).collect();
            let got = init.draw(&shape, &mut rng).unwrap();
            let what = format!("{name} {} seed {} shape {shape:?}", case["args"], case["seed"]);
            assert_eq!(got.len(), want.len(), "{what}");
            let vectorized_normal = name.ends_with("normal") && got.len() >= 16;
            if vectorized_normal {
                let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    // Measured here: at most 0.9 ulp of the largest value.
                    assert!((g - w).abs() <= 2.0 * f32::EPSILON * scale, "{what}[{i}]: {g} vs PyTorch's {w}");
                }
                close += 1;
            } else {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{what}: bit for bit");
                exact += 1;
            }
        }
    }
    assert!(exact >= 20 && close >= 10, "{exact} exact, {close} close");
}
