//! Gradient checks: the autograd's gradients against central finite differences of the f64
//! reference, for every op and for a whole MLP; and the lecture's chain-rule example.

use descent::autograd::{Tape, Var};
use descent::backend::{Act, BinaryOp, Device, Form, UnaryOp};
use descent::reference as r;
use descent::rng::Rng;
use descent::tensor::Tensor;

/// Tolerance of an f32 autograd gradient against an f64 finite difference.
fn assert_grad(got: &[f32], want: &[f64], what: &str) {
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(r::close(g as f64, w, 2e-4, 2e-3), "{what}: d/dx[{i}] autograd {g} vs finite difference {w}");
    }
}

/// Central differences of `f` (f64) at `x`.
fn numeric_grad(x: &[f32], f: &dyn Fn(&[f32]) -> f64) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let h = 1e-3f32 * (1.0 + x[i].abs());
            let (mut a, mut b) = (x.to_vec(), x.to_vec());
            a[i] += h;
            b[i] -= h;
            // h is what the f32 inputs actually moved by.
            let step = (a[i] as f64 - b[i] as f64) / 2.0;
            (f(&a) - f(&b)) / (2.0 * step)
        })
        .collect()
}

/// Build loss = Σ (op(inputs) ⊙ weights) on the tape and check the gradient of every input.
fn check(
    name: &str,
    inputs: Vec<(Vec<f32>, Vec<usize>)>,
    build: &dyn Fn(&mut Tape, &mut Device, &[Var]) -> Var,
    reference: &dyn Fn(&[Vec<f32>]) -> Vec<f64>,
) {
    let mut dev = Device::cpu();
    let mut rng = Rng::new(9);
    let out_len = reference(&inputs.iter().map(|i| i.0.clone()).collect::<Vec<_>>()).len();
    let weights = rng.uniform_vec(out_len, -1.0, 1.0);
    let mut tape = Tape::new();
    let mut vars = Vec::new();
    let mut grads = Vec::new();
    for (data, shape) in &inputs {
        let v = dev.upload(data).unwrap();
        let g = dev.alloc(data.len()).unwrap();
        grads.push(g);
        vars.push(tape.param(Tensor::new(v, shape), g));
    }
    let y = build(&mut tape, &mut dev, &vars);
    let shape = tape.value(y).shape.clone();
    let w = tape.constant(&mut dev, &weights, &shape).unwrap();
    let yw = tape.mul(&mut dev, y, w).unwrap();
    let loss = tape.sum(&mut dev, yw).unwrap();
    tape.backward(&mut dev, loss).unwrap();
    for (k, (data, _)) in inputs.iter().enumerate() {
        let got = dev.read(grads[k]).unwrap();
        let f = |x: &[f32]| {
            let mut all: Vec<Vec<f32>> = inputs.iter().map(|i| i.0.clone()).collect();
            all[k] = x.to_vec();
            reference(&all).iter().zip(&weights).map(|(a, &b)| a * b as f64).sum()
        };
        assert_grad(&got, &numeric_grad(data, &f), &format!("{name} input {k}"));
    }
}

fn rand(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    Rng::new(seed).uniform_vec(n, lo, hi)
}

#[test]
fn matmul_forms() {
    let (m, k, n) = (3, 4, 5);
    for form in Form::ALL {
        let (ash, bsh) = match form {
            Form::NN => (vec![m, k], vec![k, n]),
            Form::NT => (vec![m, k], vec![n, k]),
            Form::TN => (vec![k, m], vec![k, n]),
        };
        check(
            form.name(),
            vec![(rand(m * k, 1, -1.0, 1.0), ash), (rand(k * n, 2, -1.0, 1.0), bsh)],
            &|t, d, v| t.matmul(d, form, v[0], v[1]).unwrap(),
            &|x| r::matmul(form, m, k, n, &x[0], &x[1]),
        );
    }
}

#[test]
fn linear_layer_with_each_activation() {
    let (m, k, n) = (4, 3, 5);
    for act in Act::ALL {
        check(
            &format!("linear+{}", act.name()),
            vec![
                (rand(m * k, 3, -1.0, 1.0), vec![m, k]),
                (rand(n * k, 4, -1.0, 1.0), vec![n, k]),
                (rand(n, 5, -0.5, 0.5), vec![n]),
            ],
            &|t, d, v| t.linear(d, v[0], v[1], Some(v[2]), act).unwrap(),
            &|x| {
                let z = r::matmul(Form::NT, m, k, n, &x[0], &x[1]);
                z.iter().enumerate().map(|(i, &z)| r::act(act, z + x[2][i % n] as f64)).collect()
            },
        );
    }
}

#[test]
fn bias_act_and_activations() {
    for act in Act::ALL {
        check(
            &format!("bias_act {}", act.name()),
            vec![(rand(12, 6, -2.0, 2.0), vec![3, 4]), (rand(4, 7, -1.0, 1.0), vec![4])],
            &|t, d, v| t.bias_act(d, v[0], Some(v[1]), act).unwrap(),
            &|x| {
                let z: Vec<f32> = x[0].clone();
                r::bias_act(&z, Some(&x[1]), 4, act)
            },
        );
    }
}

#[test]
fn elementwise_and_scalar_ops() {
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
        check(
            &format!("{op:?}"),
            vec![(rand(7, 8, -1.0, 1.0), vec![7]), (rand(7, 9, 0.5, 1.5), vec![7])],
            &|t, d, v| t.binary(d, op, v[0], v[1]).unwrap(),
            &|x| r::binary(op, &x[0], &x[1]),
        );
    }
    for op in [
        UnaryOp::Scale(-1.5),
        UnaryOp::AddScalar(2.0),
        UnaryOp::Pow(3.0),
        UnaryOp::Log,
        UnaryOp::Exp,
        UnaryOp::Sin,
        UnaryOp::Cos,
    ] {
        check(
            &format!("{op:?}"),
            vec![(rand(1, 10, 0.5, 2.0), vec![1])],
            &|t, d, v| t.unary(d, op, v[0]).unwrap(),
            &|x| r::unary(op, &x[0]),
        );
    }
    check("mean", vec![(rand(6, 11, -1.0, 1.0), vec![6])], &|t, d, v| t.mean(d, v[0]).unwrap(), &|x| {
        vec![x[0].iter().map(|&v| v as f64).sum::<f64>() / 6.0]
    });
}

#[test]
fn softmax_cross_entropy() {
    let mut dev = Device::cpu();
    let (rows, cols) = (5, 4);
    let z = rand(rows * cols, 12, -3.0, 3.0);
    let labels: Vec<f32> = vec![0.0, 3.0, 1.0, 2.0, 3.0];
    let mut tape = Tape::new();
    let zv = dev.upload(&z).unwrap();
    let g = dev.alloc(z.len()).unwrap();
    let lv = dev.upload(&labels).unwrap();
    let x = tape.param(Tensor::new(zv, &[rows, cols]), g);
    let loss = tape.softmax_ce(&mut dev, x, lv, None).unwrap();
    assert!(r::close(
        dev.read(tape.value(loss).view).unwrap()[0] as f64,
        r::softmax_ce(&z, &labels, cols).0,
        1e-6,
        1e-5
    ));
    tape.backward(&mut dev, loss).unwrap();
    let want = numeric_grad(&z, &|x| r::softmax_ce(x, &labels, cols).0);
    assert_grad(&dev.read(g).unwrap(), &want, "softmax_ce");
}

#[test]
fn whole_mlp_gradient() {
    use descent::nn::Mlp;
    let mut dev = Device::cpu();
    let mut rng = descent::torch_rng::TorchGenerator::new(4);
    let sizes = [6, 5, 4, 3];
    for act in [Act::Tanh, Act::Sigmoid, Act::Relu] {
        let mlp = Mlp::new(&mut dev, &sizes, act, &mut rng).unwrap();
        let x = rand(2 * 6, 13, -1.0, 1.0);
        let labels = vec![2.0f32, 0.0];
        let (xv, lv) = (dev.upload(&x).unwrap(), dev.upload(&labels).unwrap());
        let mut tape = Tape::new();
        let xin = tape.input(Tensor::new(xv, &[2, 6]));
        let logits = mlp.forward(&mut tape, &mut dev, xin).unwrap();
        let loss = tape.softmax_ce(&mut dev, logits, lv, None).unwrap();
        tape.backward(&mut dev, loss).unwrap();
        let params = dev.read(mlp.arena.params).unwrap();
        let grads = dev.read(mlp.arena.grads).unwrap();
        // The same network in f64 through the reference.
        let entries = mlp.arena.entries.clone();
        let forward = |p: &[f32]| {
            let mut h = x.clone();
            let mut rows_in = 6;
            for l in 0..3 {
                let (w, b) = (&entries[2 * l], &entries[2 * l + 1]);
                let out = w.shape[0];
                let wv = &p[w.offset..w.offset + w.len()];
                let bv = &p[b.offset..b.offset + b.len()];
                let z = r::matmul(Form::NT, 2, rows_in, out, &h, wv);
                let a = if l < 2 { act } else { Act::Identity };
                h = z.iter().enumerate().map(|(i, &z)| r::act(a, z + bv[i % out] as f64) as f32).collect();
                rows_in = out;
            }
            r::softmax_ce(&h, &labels, 3).0
        };
        // Check a sample of coordinates in every tensor (padding excluded).
        for e in &entries {
            for i in (0..e.len()).step_by(3) {
                let at = e.offset + i;
                let h = 1e-3f32;
                let (mut a, mut b) = (params.clone(), params.clone());
                a[at] += h;
                b[at] -= h;
                let num = (forward(&a) - forward(&b)) / ((a[at] - b[at]) as f64);
                assert!(
                    r::close(grads[at] as f64, num, 2e-4, 5e-3),
                    "{} {}[{i}] ({}): autograd {} vs numeric {num}",
                    act.name(),
                    e.name,
                    at,
                    grads[at]
                );
            }
        }
        tape.reset(&mut dev);
    }
}

#[test]
fn lecture_chain_rule_example() {
    // g(f(x)) with f = x² + 3x and g = u³ + u + 2: g'(f(3))·f'(3) = 8757.
    let mut dev = Device::cpu();
    let mut tape = Tape::new();
    let xv = dev.upload(&[3.0]).unwrap();
    let g = dev.alloc(1).unwrap();
    let x = tape.param(Tensor::new(xv, &[1]), g);
    let x2 = tape.pow(&mut dev, x, 2.0).unwrap();
    let x3 = tape.scale(&mut dev, x, 3.0).unwrap();
    let u = tape.add(&mut dev, x2, x3).unwrap();
    let u3 = tape.pow(&mut dev, u, 3.0).unwrap();
    let s = tape.add(&mut dev, u3, u).unwrap();
    let y = tape.add_scalar(&mut dev, s, 2.0).unwrap();
    assert_eq!(dev.read(tape.value(y).view).unwrap()[0], 5852.0);
    tape.backward(&mut dev, y).unwrap();
    assert_eq!(dev.read(g).unwrap()[0], 8757.0);
}
