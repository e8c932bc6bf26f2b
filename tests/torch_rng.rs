//! `--seed S` starts PyTorch's experiment for `torch.manual_seed(S)`: the initial weights bit
//! for bit, every epoch's order (DataLoader(shuffle=True), or torch.randperm with a generator
//! seeded with S), and (on the full Fashion-MNIST) the same training steps. The expected values are what PyTorch 2.15 drew (tests/fixtures/torch_rng.json, made by
//! tests/fixtures/make_torch_rng_fixture.py).

use descent::app::train::{ShuffleOrder, TrainConfig, Trainer};
use descent::backend::{Act, Device};
use descent::data::{load_idx_dataset, DEBIAN_FASHION_MNIST};
use descent::nn::Mlp;
use descent::optim::{OptimConfig, Schedule};
use descent::torch_rng::TorchGenerator;
use serde_json::Value;

fn fixture() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_rng.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
}

#[test]
fn initial_weights_and_epoch_orders_are_pytorchs() {
    let f = fixture();
    for case in f["cases"].as_array().unwrap() {
        let seed = case["seed"].as_u64().unwrap();
        let (inputs, rows) = (case["inputs"].as_u64().unwrap() as usize, case["rows"].as_u64().unwrap() as u32);
        let mut g = TorchGenerator::new(seed);
        let mut dev = Device::cpu();
        let mlp = Mlp::new(&mut dev, &[inputs, 128, 128, 10], Act::Relu, &mut g).unwrap();
        let params = dev.read(mlp.arena.params).unwrap();
        let expected = case["params"].as_array().unwrap();
        assert_eq!(mlp.arena.entries.len(), expected.len());
        for (e, want) in mlp.arena.entries.iter().zip(expected) {
            assert_eq!(e.name, want["name"].as_str().unwrap(), "seed {seed}");
            let values = &params[e.range()];
            for (at, bits) in u64s(&want["at"]).into_iter().zip(u64s(&want["bits"])) {
                let got = values[at as usize];
                assert_eq!(
                    got.to_bits() as u64,
                    bits,
                    "seed {seed}, {}[{at}]: {got} vs {}",
                    e.name,
                    f32::from_bits(bits as u32)
                );
            }
            let sum: f64 = values.iter().map(|&v| v as f64).sum();
            let want_sum = want["sum"].as_f64().unwrap();
            assert!((sum - want_sum).abs() < 1e-9, "seed {seed}, {}: sum {sum} vs {want_sum}", e.name);
        }
        for (epoch, want) in case["epochs"].as_array().unwrap().iter().enumerate() {
            let ctx = format!("seed {seed}, {rows} rows, DataLoader epoch {}", epoch + 1);
            check_order(&g.dataloader_epoch_order(rows), want, &ctx);
        }
        let mut own = TorchGenerator::new(seed);
        for (epoch, want) in case["randperm_epochs"].as_array().unwrap().iter().enumerate() {
            let ctx = format!("seed {seed}, {rows} rows, randperm epoch {}", epoch + 1);
            check_order(&own.randperm(rows), want, &ctx);
        }
    }
}

fn check_order(order: &[u32], want: &Value, ctx: &str) {
    let first: Vec<u64> = order[..32].iter().map(|&i| i as u64).collect();
    let last: Vec<u64> = order[order.len() - 32..].iter().map(|&i| i as u64).collect();
    assert_eq!(first, u64s(&want["first"]), "{ctx}: first 32");
    assert_eq!(last, u64s(&want["last"]), "{ctx}: last 32");
    let weighted: u64 = order.iter().enumerate().map(|(i, &v)| i as u64 * v as u64).sum();
    assert_eq!(weighted, want["weighted_sum"].as_u64().unwrap(), "{ctx}: Σ position·index");
}

/// descent's trainer, seeded 0, takes PyTorch's first steps: same weights, same batches, so
/// the per-step losses agree up to f32 rounding order.
#[test]
fn training_steps_match_pytorchs_from_the_same_seed() {
    let dir = std::path::Path::new(DEBIAN_FASHION_MNIST);
    assert!(dir.is_dir(), "the full Fashion-MNIST is missing: apt-get install dataset-fashion-mnist");
    let data = load_idx_dataset("fashion-mnist", Some(dir)).unwrap();
    let f = fixture();
    // Adam's normalised update turns rounding-level gradient differences into full-size steps,
    // so its two trajectories part after a few dozen steps (measured: ≤ 7e-6 apart up to step
    // 25, 3e-5 at step 27, 1e-4–9e-4 from step 46); SGD's stay within 6e-6 for all 60.
    for (opt, lr, steps) in [("sgd", 0.01, 60), ("adam", 1e-3, 20)] {
        let want: Vec<f64> = f["fashion_mnist_seed0_step_losses"][opt].as_array().unwrap()[..steps]
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let mut o = OptimConfig::defaults(opt).unwrap();
        o.set_lr(lr);
        let config = TrainConfig {
            epochs: 1,
            batch_size: 64,
            seed: 0,
            shuffle: ShuffleOrder::DataLoader,
            hidden: vec![128, 128],
            act: Act::Relu,
            optimizer: o,
            schedule: Schedule::Constant,
            eval_batch: 1000,
        };
        let mut t = Trainer::new(Device::cpu(), &data, config).unwrap();
        let order = t.epoch_order().unwrap();
        let mut before = 0.0;
        for (s, w) in want.iter().enumerate() {
            t.step(order, s * 64, 64).unwrap();
            let now = t.loss_sum().unwrap();
            let got = (now - before) / 64.0;
            before = now;
            // A step's loss is the difference of two f32 running sums (≤ 8,200 after 60 steps,
            // so ≤ 8e-6 of rounding); a wrong weight or a different batch moves it by 1e-2 or more.
            assert!((got - w).abs() <= 2e-5 * w.abs().max(1.0), "{opt} step {}: descent {got}, PyTorch {w}", s + 1);
        }
    }
}
