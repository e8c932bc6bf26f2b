//! Gradient checks: the autograd's gradients against central finite differences of the f64
//! reference, for every op, for composed graphs (cross-entropy below the root, penalties,
//! values and parameters used twice, broadcasting, per-axis reductions, MSE, unreached
//! parameters) and for whole MLPs; and the lecture's chain-rule example. Every check runs on
//! both backends (`test_device!`), with gradient buffers poisoned with NaN beforehand.

#[macro_use]
mod common;

use descent::autograd::{Tape, Var};
use descent::backend::{Act, Axis, BinaryOp, Device, DropoutMask, Form, Layout, UnaryOp, IGNORE_INDEX};
use descent::nn::Mlp;
use descent::reference as r;
use descent::rng::Rng;
use descent::tensor::{Tensor, View};
use descent::torch_rng::TorchGenerator;

/// Tolerance of an f32 autograd gradient against an f64 finite difference.
fn assert_grad(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: gradient length");
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

/// A gradient buffer full of NaN, so an element backward fails to write fails the check.
fn poisoned(dev: &mut Device, n: usize) -> View {
    let g = dev.alloc(n).unwrap();
    dev.fill(g, f32::NAN);
    g
}

type Build<'a> = &'a dyn Fn(&mut Tape, &[Var]) -> Var;
type Reference<'a> = &'a dyn Fn(&[Vec<f32>]) -> Vec<f64>;

/// Register `inputs` as parameters, build the graph, and check the gradient of every input.
/// A one-element result is the root itself; a larger one is reduced to Σ (y ⊙ w) with random
/// weights w, so every output element's gradient matters.
fn check(dev: &mut Device, name: &str, inputs: Vec<(Vec<f32>, Vec<usize>)>, build: Build, reference: Reference) {
    let data: Vec<Vec<f32>> = inputs.iter().map(|i| i.0.clone()).collect();
    let out_len = reference(&data).len();
    let weights = if out_len == 1 { vec![1.0] } else { Rng::new(9).uniform_vec(out_len, -1.0, 1.0) };
    let mut grads = Vec::new();
    let mut values = Vec::new();
    for (d, _) in &inputs {
        values.push(dev.upload(d).unwrap());
        grads.push(poisoned(dev, d.len()));
    }
    {
        let mut tape = Tape::new(dev);
        let mut vars = Vec::new();
        for (k, (_, shape)) in inputs.iter().enumerate() {
            vars.push(tape.param(Tensor::new(values[k], shape).unwrap(), grads[k]).unwrap());
        }
        let y = build(&mut tape, &vars);
        let got: Vec<f64> = tape.read(y).unwrap().iter().map(|&v| v as f64).collect();
        let want = reference(&data);
        let (_, _, ok) = r::compare(&got.iter().map(|&v| v as f32).collect::<Vec<_>>(), &want, 1e-5, 1e-4);
        assert!(ok, "{name}: forward value {got:?} vs reference {want:?}");
        let root = if out_len == 1 {
            y
        } else {
            let shape = tape.shape(y).unwrap().to_vec();
            let w = tape.constant(&weights, &shape).unwrap();
            let yw = tape.mul(y, w).unwrap();
            tape.sum(yw).unwrap()
        };
        tape.backward(root).unwrap();
    }
    for (k, (d, _)) in inputs.iter().enumerate() {
        let got = dev.read(grads[k]).unwrap();
        let f = |x: &[f32]| {
            let mut all = data.clone();
            all[k] = x.to_vec();
            reference(&all).iter().zip(&weights).map(|(a, &b)| a * b as f64).sum()
        };
        assert_grad(&got, &numeric_grad(d, &f), &format!("{name} input {k} on {}", dev.describe()));
    }
    for v in values.into_iter().chain(grads) {
        dev.release(v);
    }
}

fn rand(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    Rng::new(seed).uniform_vec(n, lo, hi)
}

fn matmul_forms(dev: &mut Device) {
    let (m, k, n) = (3, 4, 5);
    for form in Form::ALL {
        let (ash, bsh) = match form {
            Form::NN => (vec![m, k], vec![k, n]),
            Form::NT => (vec![m, k], vec![n, k]),
            Form::TN => (vec![k, m], vec![k, n]),
        };
        check(
            dev,
            form.name(),
            vec![(rand(m * k, 1, -1.0, 1.0), ash), (rand(k * n, 2, -1.0, 1.0), bsh)],
            &|t, v| t.matmul(form, v[0], v[1]).unwrap(),
            &|x| r::matmul(form, m, k, n, &x[0], &x[1]),
        );
    }
}
test_device!(matmul_forms_grad, matmul_forms);

fn linear_layer_with_each_activation(dev: &mut Device) {
    let (m, k, n) = (4, 3, 5);
    for act in Act::ALL {
        check(
            dev,
            &format!("linear+{}", act.name()),
            vec![
                (rand(m * k, 3, -1.0, 1.0), vec![m, k]),
                (rand(n * k, 4, -1.0, 1.0), vec![n, k]),
                (rand(n, 5, -0.5, 0.5), vec![n]),
            ],
            &|t, v| t.linear(v[0], v[1], Some(v[2]), act).unwrap(),
            &|x| {
                let z = r::matmul(Form::NT, m, k, n, &x[0], &x[1]);
                z.iter().enumerate().map(|(i, &z)| r::act(act, z + x[2][i % n] as f64)).collect()
            },
        );
    }
}
test_device!(linear_layer_grad, linear_layer_with_each_activation);

fn bias_act_and_activations(dev: &mut Device) {
    for act in Act::ALL {
        check(
            dev,
            &format!("bias_act {}", act.name()),
            vec![(rand(12, 6, -2.0, 2.0), vec![3, 4]), (rand(4, 7, -1.0, 1.0), vec![4])],
            &|t, v| t.bias_act(v[0], Some(v[1]), act).unwrap(),
            &|x| r::bias_act(&x[0], Some(&x[1]), 4, act),
        );
    }
}
test_device!(bias_act_grad, bias_act_and_activations);

fn elementwise_and_scalar_ops(dev: &mut Device) {
    for op in BinaryOp::ALL {
        check(
            dev,
            &format!("{op:?}"),
            vec![(rand(7, 8, -1.0, 1.0), vec![7]), (rand(7, 9, 0.5, 1.5), vec![7])],
            &|t, v| t.binary(op, v[0], v[1]).unwrap(),
            &|x| r::binary(op, &x[0], &x[1]),
        );
    }
    // Every op of the table (inputs in [0.5, 2], where each is defined and smooth).
    for op in UnaryOp::ALL {
        check(
            dev,
            &format!("{op:?}"),
            vec![(rand(3, 10, 0.5, 2.0), vec![3])],
            &|t, v| t.unary(op, v[0]).unwrap(),
            &|x| r::unary(op, &x[0]),
        );
    }
    check(dev, "mean", vec![(rand(6, 11, -1.0, 1.0), vec![6])], &|t, v| t.mean(v[0]).unwrap(), &|x| {
        vec![x[0].iter().map(|&v| v as f64).sum::<f64>() / 6.0]
    });
}
test_device!(elementwise_grad, elementwise_and_scalar_ops);

/// Every op with a row, a vector, a column or a scalar broadcast over a matrix, and a row
/// against a column (an outer combination): both operands' gradients.
fn broadcasting(dev: &mut Device) {
    let (m, n) = (3, 5);
    let cases: [(Vec<usize>, Layout, Vec<usize>, Layout); 6] = [
        (vec![m, n], Layout::Full, vec![1, n], Layout::Row),
        (vec![m, n], Layout::Full, vec![n], Layout::Row),
        (vec![m, 1], Layout::Col, vec![m, n], Layout::Full),
        (vec![m, 1], Layout::Col, vec![1, n], Layout::Row),
        (vec![m, n], Layout::Full, vec![1], Layout::Scalar),
        (vec![1, 1], Layout::Scalar, vec![m, n], Layout::Full),
    ];
    for (sa, la, sb, lb) in cases {
        for op in BinaryOp::ALL {
            let a = rand(sa.iter().product(), 20, -1.0, 1.0);
            // Divisors away from zero.
            let b: Vec<f32> = rand(sb.iter().product(), 21, 0.5, 1.5);
            check(
                dev,
                &format!("{op:?} {sa:?} with {sb:?}"),
                vec![(a, sa.clone()), (b, sb.clone())],
                &|t, v| t.binary(op, v[0], v[1]).unwrap(),
                &|x| r::binary_bcast(op, &x[0], la, &x[1], lb, m * n, n),
            );
        }
    }
}
test_device!(broadcasting_grad, broadcasting);

fn per_axis_reductions(dev: &mut Device) {
    let (m, n) = (4, 3);
    for axis in [Axis::Rows, Axis::Cols] {
        for mean in [false, true] {
            let count = if axis == Axis::Rows { m } else { n };
            let scale = if mean { 1.0 / count as f64 } else { 1.0 };
            check(
                dev,
                &format!("{} over axis {}", if mean { "mean" } else { "sum" }, axis.dim()),
                vec![(rand(m * n, 22, -1.0, 1.0), vec![m, n])],
                &|t, v| if mean { t.mean_axis(v[0], axis).unwrap() } else { t.sum_axis(v[0], axis).unwrap() },
                &|x| r::sum_axis(&x[0], n, axis, scale),
            );
        }
    }
    // Centering: x − mean over rows, a reduction broadcast back over its input.
    check(
        dev,
        "x - mean(x, axis 0)",
        vec![(rand(m * n, 23, -1.0, 1.0), vec![m, n])],
        &|t, v| {
            let mu = t.mean_axis(v[0], Axis::Rows).unwrap();
            let c = t.sub(v[0], mu).unwrap();
            t.mul(c, c).unwrap()
        },
        &|x| {
            let mu = r::sum_axis(&x[0], n, Axis::Rows, 1.0 / m as f64);
            x[0].iter().enumerate().map(|(i, &v)| (v as f64 - mu[i % n]).powi(2)).collect()
        },
    );
}
test_device!(per_axis_reduction_grad, per_axis_reductions);

const LABELS: [f32; 5] = [0.0, 3.0, 1.0, 2.0, 3.0];

fn softmax_cross_entropy_at_the_root(dev: &mut Device) {
    let (rows, cols) = (5, 4);
    let labels = dev.upload(&LABELS).unwrap();
    check(
        dev,
        "softmax_ce",
        vec![(rand(rows * cols, 12, -3.0, 3.0), vec![rows, cols])],
        &|t, v| t.softmax_ce(v[0], labels, None).unwrap(),
        &|x| vec![r::softmax_ce(&x[0], &LABELS, cols, IGNORE_INDEX).0],
    );
}
test_device!(softmax_ce_root_grad, softmax_cross_entropy_at_the_root);

/// Cross-entropy below the root: scaled, plus a term, times another value, and summed with a
/// penalty on the logits' own weights.
fn cross_entropy_inside_a_graph(dev: &mut Device) {
    let (rows, cols) = (5, 4);
    let labels = dev.upload(&LABELS).unwrap();
    let z = rand(rows * cols, 12, -3.0, 3.0);
    let ce = |x: &[f32]| r::softmax_ce(x, &LABELS, cols, IGNORE_INDEX).0;
    check(
        dev,
        "0.5·ce",
        vec![(z.clone(), vec![rows, cols])],
        &|t, v| {
            let l = t.softmax_ce(v[0], labels, None).unwrap();
            t.scale(l, 0.5).unwrap()
        },
        &|x| vec![0.5 * ce(&x[0])],
    );
    check(
        dev,
        "ce · s + ce (two uses of one loss)",
        vec![(z.clone(), vec![rows, cols]), (vec![-1.75], vec![1])],
        &|t, v| {
            let l = t.softmax_ce(v[0], labels, None).unwrap();
            let ls = t.mul(l, v[1]).unwrap();
            t.add(ls, l).unwrap()
        },
        &|x| vec![ce(&x[0]) * x[1][0] as f64 + ce(&x[0])],
    );
    // logits = x·Wᵀ; loss = ce + λ·Σ W²: W reaches the root along two paths.
    let (k, lambda) = (3, 1e-1f32);
    let x = rand(rows * k, 30, -1.0, 1.0);
    let xv = dev.upload(&x).unwrap();
    check(
        dev,
        "ce(x·Wᵀ) + λ·ΣW²",
        vec![(rand(cols * k, 31, -1.0, 1.0), vec![cols, k])],
        &|t, v| {
            let xin = t.input(Tensor::new(xv, &[rows, k]).unwrap());
            let logits = t.linear(xin, v[0], None, Act::Identity).unwrap();
            let l = t.softmax_ce(logits, labels, None).unwrap();
            let w2 = t.mul(v[0], v[0]).unwrap();
            let pen = t.sum(w2).unwrap();
            let pen = t.scale(pen, lambda).unwrap();
            t.add(l, pen).unwrap()
        },
        &|p| {
            let logits: Vec<f32> = r::matmul(Form::NT, rows, k, cols, &x, &p[0]).iter().map(|&v| v as f32).collect();
            let pen: f64 = p[0].iter().map(|&w| (w as f64).powi(2)).sum();
            vec![ce(&logits) + lambda as f64 * pen]
        },
    );
}
test_device!(cross_entropy_inside_a_graph_grad, cross_entropy_inside_a_graph);

/// An intermediate value (an activation's output) used twice, and one input used by two ops.
fn shared_values(dev: &mut Device) {
    let (m, k, n) = (3, 4, 2);
    check(
        dev,
        "h = tanh(x·W); Σ h⊙h + Σ h·Vᵀ",
        vec![(rand(m * k, 40, -1.0, 1.0), vec![m, k]), (rand(k * n, 41, -1.0, 1.0), vec![k, n])],
        &|t, v| {
            let h = t.matmul(Form::NN, v[0], v[1]).unwrap();
            let h = t.act(h, Act::Tanh).unwrap();
            let hh = t.mul(h, h).unwrap();
            let s1 = t.sum(hh).unwrap();
            let g = t.matmul(Form::NT, h, h).unwrap();
            let s2 = t.sum(g).unwrap();
            t.add(s1, s2).unwrap()
        },
        &|x| {
            let h: Vec<f64> = r::matmul(Form::NN, m, k, n, &x[0], &x[1]).iter().map(|v| v.tanh()).collect();
            let hf: Vec<f32> = h.iter().map(|&v| v as f32).collect();
            let s2: f64 = r::matmul(Form::NT, m, n, m, &hf, &hf).iter().sum();
            vec![h.iter().map(|v| v * v).sum::<f64>() + s2]
        },
    );
    check(
        dev,
        "x⊙x + sin(x)",
        vec![(rand(5, 42, -1.0, 1.0), vec![5])],
        &|t, v| {
            let a = t.mul(v[0], v[0]).unwrap();
            let b = t.unary(UnaryOp::Sin, v[0]).unwrap();
            t.add(a, b).unwrap()
        },
        &|x| x[0].iter().map(|&v| (v as f64).powi(2) + (v as f64).sin()).collect(),
    );
}
test_device!(shared_values_grad, shared_values);

/// Σw² + Σw² with w registered twice: one parameter, gradient 4w (not 2w).
fn parameter_registered_twice(dev: &mut Device) {
    let w = [0.5f32, -1.0, 2.0];
    let (wv, g) = (dev.upload(&w).unwrap(), poisoned(dev, 3));
    {
        let mut tape = Tape::new(dev);
        let a = tape.param(Tensor::new(wv, &[3]).unwrap(), g).unwrap();
        let b = tape.param(Tensor::new(wv, &[3]).unwrap(), g).unwrap();
        assert_eq!(a, b, "the same tensor and gradient view is one parameter");
        let sa = tape.mul(a, a).unwrap();
        let sa = tape.sum(sa).unwrap();
        let sb = tape.mul(b, b).unwrap();
        let sb = tape.sum(sb).unwrap();
        let root = tape.add(sa, sb).unwrap();
        tape.backward(root).unwrap();
        // Overlapping registrations are refused, not silently wrong.
        let err = tape.param(Tensor::new(wv.slice(1, 2), &[2]).unwrap(), g.slice(1, 2)).unwrap_err();
        assert!(err.to_string().contains("overlaps"), "{err}");
    }
    assert_eq!(dev.read(g).unwrap(), vec![2.0, -4.0, 8.0]);
}
test_device!(parameter_registered_twice_grad, parameter_registered_twice);

/// Linear regression: mean((x·wᵀ + b − y)²) against PyTorch's MSELoss formula.
fn mse_regression(dev: &mut Device) {
    let (m, k) = (6, 3);
    let x = rand(m * k, 50, -1.0, 1.0);
    let y = rand(m, 51, -2.0, 2.0);
    let (xv, yv) = (dev.upload(&x).unwrap(), dev.upload(&y).unwrap());
    check(
        dev,
        "mse(x·wᵀ + b, y)",
        vec![(rand(k, 52, -1.0, 1.0), vec![1, k]), (vec![0.3], vec![1])],
        &|t, v| {
            let xin = t.input(Tensor::new(xv, &[m, k]).unwrap());
            let yin = t.input(Tensor::new(yv, &[m, 1]).unwrap());
            let pred = t.linear(xin, v[0], Some(v[1]), Act::Identity).unwrap();
            t.mse(pred, yin).unwrap()
        },
        &|p| {
            let pred = r::matmul(Form::NT, m, k, 1, &x, &p[0]);
            let se: f64 = pred.iter().zip(&y).map(|(pr, &t)| (pr + p[1][0] as f64 - t as f64).powi(2)).sum();
            vec![se / m as f64]
        },
    );
}
test_device!(mse_regression_grad, mse_regression);

/// A parameter the root does not reach gets zeros (its buffer was poisoned), and an
/// intermediate value the root does not reach has no gradient.
fn unreached_parameter(dev: &mut Device) {
    let (av, ag) = (dev.upload(&[1.0, 2.0]).unwrap(), poisoned(dev, 2));
    let (bv, bg) = (dev.upload(&[3.0, 4.0]).unwrap(), poisoned(dev, 2));
    {
        let mut tape = Tape::new(dev);
        let a = tape.param(Tensor::new(av, &[2]).unwrap(), ag).unwrap();
        let b = tape.param(Tensor::new(bv, &[2]).unwrap(), bg).unwrap();
        let unused = tape.mul(b, b).unwrap();
        let root = tape.sum(a).unwrap();
        tape.backward(root).unwrap();
        assert_eq!(tape.grad(unused).unwrap(), None);
    }
    assert_eq!(dev.read(ag).unwrap(), vec![1.0, 1.0]);
    assert_eq!(dev.read(bg).unwrap(), vec![0.0, 0.0]);
}
test_device!(unreached_parameter_grad, unreached_parameter);

/// A 1-element parameter as the root of `backward`: d(p)/d(p) = 1 lands in its gradient buffer
/// (poisoned first), and a parameter used beside it still gets its own gradient.
fn parameter_as_the_root(dev: &mut Device) {
    let (pv, pg) = (dev.upload(&[3.0]).unwrap(), dev.upload(&[777.0]).unwrap());
    let (qv, qg) = (dev.upload(&[2.0]).unwrap(), poisoned(dev, 1));
    {
        let mut tape = Tape::new(dev);
        let p = tape.param(Tensor::new(pv, &[1]).unwrap(), pg).unwrap();
        let q = tape.param(Tensor::new(qv, &[1]).unwrap(), qg).unwrap();
        let _unused = tape.mul(p, q).unwrap();
        tape.backward(p).unwrap();
        assert_eq!(tape.read_grad(p).unwrap(), Some(vec![1.0]));
    }
    assert_eq!(dev.read(pg).unwrap(), vec![1.0], "the root's own gradient");
    assert_eq!(dev.read(qg).unwrap(), vec![0.0], "a parameter the root does not depend on");
}
test_device!(parameter_as_root_grad, parameter_as_the_root);

/// Gradient accumulation: `zero_grad`, then `backward_accumulate` over two micro-batches of a
/// whole MLP (each loss a mean over its rows, scaled by ½) gives the full batch's mean-loss
/// gradient; a parameter root and a cross-entropy root over a parameter add their share too.
fn accumulating_micro_batches(dev: &mut Device) {
    let mlp = Mlp::new(dev, &[6, 5, 3], Act::Tanh, &mut TorchGenerator::new(8)).unwrap();
    let x = rand(4 * 6, 17, -1.0, 1.0);
    let labels = [2.0f32, 0.0, 1.0, 1.0];
    let grads_of = |dev: &mut Device, rows: std::ops::Range<usize>, scale: f32, accumulate: bool| {
        let n = rows.len();
        let xv = dev.upload(&x[rows.start * 6..rows.end * 6]).unwrap();
        let lv = dev.upload_labels(&labels[rows], 3).unwrap();
        let mut tape = Tape::new(dev);
        let xin = tape.input(Tensor::new(xv, &[n, 6]).unwrap());
        let logits = mlp.forward(&mut tape, xin).unwrap();
        let loss = tape.softmax_ce(logits, lv, None).unwrap();
        let loss = tape.scale(loss, scale).unwrap();
        if accumulate {
            tape.backward_accumulate(loss).unwrap();
        } else {
            tape.backward(loss).unwrap();
        }
    };
    grads_of(dev, 0..4, 1.0, false);
    let full = dev.read(mlp.arena.grads).unwrap();
    dev.fill(mlp.arena.grads, f32::NAN);
    mlp.arena.zero_grad(dev);
    grads_of(dev, 0..2, 0.5, true);
    let half = dev.read(mlp.arena.grads).unwrap();
    grads_of(dev, 2..4, 0.5, true);
    let both = dev.read(mlp.arena.grads).unwrap();
    assert!(half.iter().zip(&full).any(|(h, f)| (h - f).abs() > 1e-3), "one micro-batch is not the whole");
    assert!(
        r::compare(&both, &full.iter().map(|&v| v as f64).collect::<Vec<_>>(), 1e-6, 1e-5).2,
        "accumulated = full batch"
    );

    // Roots that are parameters, or cross-entropy straight on a parameter, add as well.
    let (pv, pg) = (dev.upload(&[3.0]).unwrap(), dev.upload(&[0.25]).unwrap());
    let (zv, zg) = (dev.upload(&[1.0, 2.0, 0.5]).unwrap(), dev.upload(&[1.0, 1.0, 1.0]).unwrap());
    let lv = dev.upload_labels(&[1.0], 3).unwrap();
    {
        let mut tape = Tape::new(dev);
        let p = tape.param(Tensor::new(pv, &[1]).unwrap(), pg).unwrap();
        tape.backward_accumulate(p).unwrap();
        let z = tape.param(Tensor::new(zv, &[1, 3]).unwrap(), zg).unwrap();
        let loss = tape.softmax_ce(z, lv, None).unwrap();
        tape.backward_accumulate(loss).unwrap();
    }
    assert_eq!(dev.read(pg).unwrap(), vec![1.25]);
    let want = r::softmax_ce(&[1.0, 2.0, 0.5], &[1.0], 3, IGNORE_INDEX).1;
    let got = dev.read(zg).unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!(r::close(*g as f64, w + 1.0, 1e-6, 1e-5), "{got:?} vs 1 + {want:?}");
    }
}
test_device!(gradient_accumulation, accumulating_micro_batches);

/// A label that names no class (7 of 3 classes, −1, NaN, 1.5, +∞) is never read as some other
/// class: the loss and its row's gradient are NaN, the other rows' gradients are untouched by
/// it, and the host upload refuses it with the row, the label and the class count. Labels made
/// on the device (here by an op, where no upload could check them) give the same `Err` at the
/// first read that finds the NaN.
fn cross_entropy_refuses_labels_that_name_no_class(dev: &mut Device) {
    let z = [1.0, 2.0, 0.5, 0.1, -1.0, 3.0, 2.0, 0.0, -1.0];
    let names_the_row = |err: String, bad: f32| {
        assert!(err.contains("row 1") && err.contains("3 classes") && err.contains(&format!("{bad}")), "{err}");
    };
    for bad in [7.0, 3.0, -1.0, f32::NAN, 1.5, f32::INFINITY] {
        // labels = [0, 1, 2] + [0, bad − 1, 0], made on the device.
        let (base, shift) = (dev.upload(&[0.0, 1.0, 2.0]).unwrap(), dev.upload(&[0.0, bad - 1.0, 0.0]).unwrap());
        let labels = dev.alloc(3).unwrap();
        dev.binary(BinaryOp::Add, base, shift, labels);
        let (zv, zg) = (dev.upload(&z).unwrap(), poisoned(dev, 9));
        let (loss, grad) = {
            let mut tape = Tape::new(dev);
            let logits = tape.param(Tensor::new(zv, &[3, 3]).unwrap(), zg).unwrap();
            let loss = tape.softmax_ce(logits, labels, None).unwrap();
            tape.backward(loss).unwrap();
            names_the_row(format!("{:#}", tape.read(loss).unwrap_err()), bad);
            names_the_row(format!("{:#}", tape.read_grad(logits).unwrap_err()), bad);
            // The values themselves, through the read that does not explain them.
            let loss_view = tape.value(loss).view;
            let raw_loss = descent::backend::wait(tape.device().read_async(loss_view)).unwrap();
            (raw_loss[0], descent::backend::wait(tape.device().read_async(zg)).unwrap())
        };
        assert!(loss.is_nan(), "label {bad}: loss {loss}");
        assert!(grad[3..6].iter().all(|g| g.is_nan()), "label {bad}: its row's gradient {:?}", &grad[3..6]);
        assert!(grad[..3].iter().chain(&grad[6..]).all(|g| g.is_finite()), "label {bad}: the other rows {grad:?}");
        names_the_row(dev.upload_labels(&[0.0, bad, 2.0], 3).unwrap_err().to_string(), bad);
        for v in [base, shift, labels] {
            dev.release(v);
        }
        assert!(dev.read(zg).is_ok(), "labels released are no longer checked");
    }
    assert!(dev.upload_labels(&[0.0, 2.0, IGNORE_INDEX as f32], 3).is_ok());
    // A NaN from the logits, with good labels, is read as it is.
    let (labels, zv) = (dev.upload_labels(&[0.0, 1.0, 2.0], 3).unwrap(), dev.upload(&[f32::NAN; 9]).unwrap());
    let mut tape = Tape::new(dev);
    let logits = tape.input(Tensor::new(zv, &[3, 3]).unwrap());
    let loss = tape.softmax_ce(logits, labels, None).unwrap();
    assert!(tape.read(loss).unwrap()[0].is_nan());
}
test_device!(cross_entropy_bad_labels, cross_entropy_refuses_labels_that_name_no_class);

/// PyTorch's `ignore_index`: rows labelled −100 add nothing, the mean is over the others, and
/// with every row ignored the loss is NaN and the gradient zero. The figures are PyTorch
/// 2.15's `F.cross_entropy` in float64 on these logits.
fn cross_entropy_ignore_index_matches_pytorch(dev: &mut Device) {
    let z = [1.0, 2.0, 0.5, 0.1, -1.0, 3.0, 2.0, 0.0, -1.0];
    let torch_grad = [
        -0.3843880511889255,
        0.3142658596058812,
        0.07012219158304424,
        0.0,
        0.0,
        0.0,
        0.42189736724066973,
        0.05709759969229724,
        -0.47899496693296695,
    ];
    // (labels, PyTorch's loss and gradient, or None: every row ignored).
    type Case<'a> = (&'a [f32; 3], Option<(f64, &'a [f64])>);
    let cases: [Case; 2] = [(&[0.0, -100.0, 2.0], Some((2.317107401832115, &torch_grad))), (&[-100.0; 3], None)];
    for (y, want) in cases {
        let labels = dev.upload_labels(y, 3).unwrap();
        let (zv, zg) = (dev.upload(&z).unwrap(), poisoned(dev, 9));
        let (loss, grad) = {
            let mut tape = Tape::new(dev);
            let logits = tape.param(Tensor::new(zv, &[3, 3]).unwrap(), zg).unwrap();
            let loss = tape.softmax_ce(logits, labels, None).unwrap();
            tape.backward(loss).unwrap();
            (tape.read(loss).unwrap()[0], tape.read_grad(logits).unwrap().unwrap())
        };
        match want {
            Some((l, g)) => {
                assert!((loss as f64 - l).abs() < 1e-6, "{y:?}: loss {loss} vs PyTorch {l}");
                for (a, b) in grad.iter().zip(g) {
                    assert!((*a as f64 - b).abs() < 1e-6, "{y:?}: gradient {grad:?} vs PyTorch {g:?}");
                }
            }
            None => {
                assert!(loss.is_nan(), "every row ignored: PyTorch's loss is NaN, got {loss}");
                assert!(grad.iter().all(|&g| g == 0.0), "every row ignored: zero gradient, got {grad:?}");
            }
        }
    }
    // Another ignore_index: class 0's rows are left out.
    let labels = dev.upload(&[0.0, 1.0, 2.0]).unwrap();
    let zv = dev.upload(&z).unwrap();
    let mut tape = Tape::new(dev);
    let logits = tape.input(Tensor::new(zv, &[3, 3]).unwrap());
    let loss = tape.softmax_ce_ignoring(logits, labels, None, 0).unwrap();
    let want = r::softmax_ce(&z, &[-7.0, 1.0, 2.0], 3, -7).0;
    let got = tape.read(loss).unwrap()[0];
    assert!((got as f64 - want).abs() < 1e-6, "ignore_index 0: {got} vs {want}");
}
test_device!(cross_entropy_ignore_index, cross_entropy_ignore_index_matches_pytorch);

/// A `Var` is valid only on the tape that made it, until that tape is reset or dropped: a
/// `Var` of a dropped tape, or of this tape before a reset, is an `Err` (not the data of
/// whatever node now has its index), for reads, ops, gradients and `backward`.
fn a_var_of_another_tape_is_refused(dev: &mut Device) {
    let a = dev.upload(&[1.0, 2.0]).unwrap();
    let b = dev.upload(&[5.0, 7.0]).unwrap();
    let stale = {
        let mut tape = Tape::new(dev);
        tape.input(Tensor::new(a, &[2]).unwrap())
    };
    let mut tape = Tape::new(dev);
    let fresh = tape.input(Tensor::new(b, &[2]).unwrap()); // the same index as `stale`
    assert_eq!(stale.0, fresh.0);
    assert_eq!(tape.read(fresh).unwrap(), vec![5.0, 7.0]);
    let is_refused = |r: anyhow::Result<()>| {
        let e = r.unwrap_err().to_string();
        assert!(e.contains("another tape"), "{e}");
    };
    is_refused(tape.read(stale).map(|_| ()));
    is_refused(tape.add(stale, fresh).map(|_| ()));
    is_refused(tape.shape(stale).map(|_| ()));
    is_refused(tape.grad(stale).map(|_| ()));
    is_refused(tape.backward(stale));
    let s = tape.sum(fresh).unwrap();
    tape.reset();
    is_refused(tape.read(s).map(|_| ()));
    let again = tape.input(Tensor::new(b, &[2]).unwrap());
    assert_eq!(tape.read(again).unwrap(), vec![5.0, 7.0]);
}
test_device!(var_owner_checked, a_var_of_another_tape_is_refused);

/// A `View` belongs to the device that allocated it, and to that allocation: a view of another
/// device, one read after its tape released it, one past its buffer's end, and a buffer
/// released twice are all refused. A refused op does not run, and the device's next read is
/// an `Err` naming it until the fault is cleared.
fn a_view_of_another_device_or_a_released_buffer_is_refused(dev: &mut Device) {
    let expect_refused = |r: anyhow::Result<Vec<f32>>, what: &str| {
        let e = format!("{:#}", r.expect_err(what));
        assert!(e.contains(what), "wanted '{what}' in: {e}");
    };
    // Another device's view, with the same buffer id as one of this device's.
    let mine = dev.upload(&[1.0, 2.0]).unwrap();
    let mut other = Device::cpu();
    let theirs = (0..=mine.buf).map(|_| other.upload(&[9.0, 9.0]).unwrap()).find(|v| v.buf == mine.buf);
    let theirs = theirs.expect("the CPU device numbers its buffers from 0");
    expect_refused(dev.read(theirs), "belongs to the device that allocated it");
    dev.clear_fault().unwrap();
    expect_refused(other.read(mine), "belongs to the device that allocated it");
    other.clear_fault().unwrap();
    // A tape's value, read after the tape released it and another tape took its buffer.
    let a = dev.upload(&[1.0, 2.0, 3.0]).unwrap();
    let stale = {
        let mut tape = Tape::new(dev);
        let x = tape.input(Tensor::new(a, &[3]).unwrap());
        let y = tape.scale(x, 2.0).unwrap();
        assert_eq!(tape.read(y).unwrap(), vec![2.0, 4.0, 6.0]);
        tape.value(y).view
    };
    let reused = dev.alloc(3).unwrap();
    assert_eq!(reused.buf, stale.buf, "the pool hands the released buffer out again");
    dev.write(reused, &[7.0, 8.0, 9.0]).unwrap();
    expect_refused(dev.read(stale), "after the buffer was released");
    expect_refused(dev.read(reused), "Device::read was refused");
    assert!(dev.fault().is_some());
    dev.clear_fault().unwrap();
    assert_eq!(dev.read(reused).unwrap(), vec![7.0, 8.0, 9.0]);
    // An op given the stale view does not run: its output keeps its poison.
    let out = poisoned(dev, 3);
    dev.binary(BinaryOp::Add, stale, a, out);
    expect_refused(dev.read(out), "Device::binary was refused");
    assert!(dev.sync().is_err(), "the fault stays until cleared");
    dev.clear_fault().unwrap();
    assert!(dev.read(out).unwrap().iter().all(|v| v.is_nan()), "the refused op wrote its output");
    // A view past its buffer's end.
    let past = View { len: 4, ..a };
    expect_refused(dev.read(past), "which holds 3");
    dev.clear_fault().unwrap();
    // A buffer released twice is taken back once: two allocations never share it.
    let twice = dev.alloc(5).unwrap();
    dev.release(twice);
    dev.release(twice);
    assert!(dev.clear_fault().unwrap().contains("Device::release was refused"));
    let (p, q) = (dev.alloc(5).unwrap(), dev.alloc(5).unwrap());
    assert_ne!(p.buf, q.buf, "one buffer handed out twice");
    // A slice is not released.
    dev.release(p.slice(1, 2));
    assert!(dev.clear_fault().unwrap().contains("slice"));
    // An optimizer step updates the parameters in place from the gradients: the two may not
    // share a buffer.
    let sgd = descent::backend::OptimStep::ALL[0];
    let pg = dev.upload(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    dev.optim_step(&sgd, descent::backend::optim_kernel::Objective::Minimize, pg.slice(0, 2), pg.slice(2, 2), &[]);
    assert!(dev.clear_fault().unwrap().contains("share a buffer"));
    assert_eq!(dev.read(a).unwrap(), vec![1.0, 2.0, 3.0], "the device works after its faults");
}
test_device!(view_owner_checked, a_view_of_another_device_or_a_released_buffer_is_refused);

/// Byte buffers (datasets, row indices) are stamped as views are: one freed twice, read after it
/// was freed, of another device, or too short for the rows a gather reads is a fault, never a
/// panic or another buffer's bytes.
fn a_freed_or_foreign_byte_buffer_is_refused(dev: &mut Device) {
    let src = dev.upload(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap(); // 3 rows of 2
    let out = poisoned(dev, 4);
    let idx = dev.upload_bytes(&[2u32, 0].iter().flat_map(|i| i.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    dev.gather_rows(src, 2, idx, 0, out);
    assert_eq!(dev.read(out).unwrap(), vec![5.0, 6.0, 1.0, 2.0]);
    dev.gather_rows(src, 2, idx, 1, out); // rows 1..3 of a 2-index buffer
    assert!(dev.clear_fault().unwrap().contains("the row indices hold 8 bytes, fewer than the 12"));
    dev.free_bytes(idx);
    dev.gather_rows(src, 2, idx, 0, out);
    assert!(dev.clear_fault().unwrap().contains("was freed"));
    dev.free_bytes(idx);
    assert!(dev.clear_fault().unwrap().contains("Device::free_bytes was refused"));
    let mut other = Device::cpu();
    let theirs = other.upload_bytes(&[0u8; 8]).unwrap();
    dev.gather_rows(src, 2, theirs, 0, out);
    assert!(dev.clear_fault().unwrap().contains("belongs to device"));
    assert_eq!(dev.read(out).unwrap(), vec![5.0, 6.0, 1.0, 2.0], "refused gathers wrote nothing");
}
test_device!(byte_buffer_owner_checked, a_freed_or_foreign_byte_buffer_is_refused);

/// A frozen tensor has no gradient: after a step with it trainable (non-zero gradients), it is
/// frozen, and the next forward and backward leave zeros in its part of the gradient arena,
/// so a norm over the arena is the trainable tensors' norm.
fn frozen_tensor_gradient_is_zero(dev: &mut Device) {
    let mut rng = TorchGenerator::new(5);
    let mut mlp = Mlp::new(dev, &[6, 5, 3], Act::Tanh, &mut rng).unwrap();
    let x = rand(4 * 6, 70, -1.0, 1.0);
    let (xv, lv) = (dev.upload(&x).unwrap(), dev.upload(&[0.0, 1.0, 2.0, 1.0]).unwrap());
    let backward = |dev: &mut Device, mlp: &Mlp| {
        let mut tape = Tape::new(dev);
        let xin = tape.input(Tensor::new(xv, &[4, 6]).unwrap());
        let logits = mlp.forward(&mut tape, xin).unwrap();
        let loss = tape.softmax_ce(logits, lv, None).unwrap();
        tape.backward(loss).unwrap();
    };
    backward(dev, &mlp);
    let first = mlp.arena.ids().next().unwrap();
    assert!(mlp.arena.read_grad(dev, first).unwrap().iter().any(|&g| g != 0.0), "a trainable gradient");
    mlp.arena.set_frozen(first, true);
    backward(dev, &mlp);
    assert!(mlp.arena.read_grad(dev, first).unwrap().iter().all(|&g| g == 0.0), "the frozen tensor's gradient");
    let all = dev.read(mlp.arena.grads).unwrap();
    let norm = |v: &[f32]| v.iter().map(|&g| (g as f64).powi(2)).sum::<f64>().sqrt();
    let trainable: Vec<f32> = mlp.arena.ids().skip(1).flat_map(|id| mlp.arena.read_grad(dev, id).unwrap()).collect();
    assert_eq!(norm(&all), norm(&trainable), "the arena's norm is the trainable tensors' norm");
}
test_device!(frozen_grad_is_zero, frozen_tensor_gradient_is_zero);

/// An activation's output feeding one matmul has its gradient fused away: reading it is an
/// error unless it was retained, and then it is right.
fn fused_gradients_are_not_misread(dev: &mut Device) {
    let x = rand(6, 60, -1.0, 1.0);
    let (xv, xg) = (dev.upload(&x).unwrap(), poisoned(dev, 6));
    let w = rand(4, 61, -1.0, 1.0);
    let wv = dev.upload(&w).unwrap();
    for retain in [false, true] {
        let mut tape = Tape::new(dev);
        let xp = tape.param(Tensor::new(xv, &[3, 2]).unwrap(), xg).unwrap();
        let h = tape.act(xp, Act::Tanh).unwrap();
        if retain {
            tape.retain_grad(h).unwrap();
        }
        let win = tape.input(Tensor::new(wv, &[2, 2]).unwrap());
        let y = tape.matmul(Form::NN, h, win).unwrap();
        let root = tape.sum(y).unwrap();
        tape.backward(root).unwrap();
        if retain {
            // d(Σ h·W)/dh = row sums of W, on every row.
            let got = tape.read_grad(h).unwrap().unwrap();
            let want: Vec<f32> = (0..6).map(|i| w[(i % 2) * 2] + w[(i % 2) * 2 + 1]).collect();
            assert_grad(&got, &want.iter().map(|&v| v as f64).collect::<Vec<_>>(), "retained dh");
        } else {
            let err = tape.grad(h).unwrap_err();
            assert!(err.to_string().contains("retain_grad"), "{err}");
        }
    }
}
test_device!(fused_gradients_grad, fused_gradients_are_not_misread);

/// What the tape cannot do is an error.
fn errors_not_wrong_numbers(dev: &mut Device) {
    let v = dev.upload(&[1.0; 12]).unwrap();
    let mut tape = Tape::new(dev);
    let a = tape.input(Tensor::new(v, &[3, 4]).unwrap());
    let b = tape.input(Tensor::new(v.slice(0, 3), &[3]).unwrap());
    let err = tape.add(a, b).unwrap_err().to_string();
    assert!(err.contains("do not broadcast"), "{err}");
    let c = tape.input(Tensor::new(v, &[2, 3, 2]).unwrap());
    assert!(tape.add(a, c).is_err());
    let at = tape.reshape(a, &[4, 3]).unwrap();
    assert!(tape.mse(a, at).is_err());
    let err = tape.backward(a).unwrap_err().to_string();
    assert!(err.contains("1-element root") && err.contains("reduce it first"), "{err}");
    assert!(tape.param(Tensor::new(v, &[12]).unwrap(), v.slice(0, 3)).is_err());
}

/// A model fed the wrong width names the layer and the width it expects.
fn a_model_names_the_layer_a_wrong_width_reaches(dev: &mut Device) {
    let mlp = Mlp::new(dev, &[6, 5, 3], Act::Tanh, &mut TorchGenerator::new(0)).unwrap();
    let v = dev.upload(&[0.5; 14]).unwrap();
    let mut tape = Tape::new(dev);
    for shape in [&[2, 7][..], &[14], &[7, 2]] {
        let x = tape.input(Tensor::new(v, shape).unwrap());
        for err in [mlp.forward(&mut tape, x).unwrap_err(), mlp.forward_no_grad(&mut tape, x).unwrap_err()] {
            let err = format!("{err:#}");
            assert!(err.contains("layer 0 (Linear 6→5) expects inputs of shape [rows, 6]"), "{shape:?}: {err}");
        }
    }
}
test_device!(model_width_errors, a_model_names_the_layer_a_wrong_width_reaches);

test_device!(errors_grad, errors_not_wrong_numbers);

fn whole_mlp_gradient(dev: &mut Device) {
    let mut rng = TorchGenerator::new(4);
    let sizes = [6, 5, 4, 3];
    for act in [Act::Tanh, Act::Sigmoid, Act::Relu] {
        let mlp = Mlp::new(dev, &sizes, act, &mut rng).unwrap();
        let x = rand(2 * 6, 13, -1.0, 1.0);
        let labels = vec![2.0f32, 0.0];
        let (xv, lv) = (dev.upload(&x).unwrap(), dev.upload(&labels).unwrap());
        dev.fill(mlp.arena.grads, f32::NAN);
        {
            let mut tape = Tape::new(dev);
            let xin = tape.input(Tensor::new(xv, &[2, 6]).unwrap());
            let logits = mlp.forward(&mut tape, xin).unwrap();
            let loss = tape.softmax_ce(logits, lv, None).unwrap();
            tape.backward(loss).unwrap();
        }
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
                let z = r::matmul(Form::NT, 2, rows_in, out, &h, &p[w.range()]);
                let a = if l < 2 { act } else { Act::Identity };
                h = z.iter().enumerate().map(|(i, &z)| r::act(a, z + p[b.range()][i % out] as f64) as f32).collect();
                rows_in = out;
            }
            r::softmax_ce(&h, &labels, 3, IGNORE_INDEX).0
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
    }
}
test_device!(whole_mlp_grad, whole_mlp_gradient);

/// An L2 penalty on one layer's weight through its typed handle: the penalty's gradient adds
/// to the one the model's own use of the weight gives.
fn mlp_with_a_penalty_through_handles(dev: &mut Device) {
    let mut rng = TorchGenerator::new(5);
    let mlp = Mlp::new(dev, &[4, 3, 2], Act::Relu, &mut rng).unwrap();
    let x = rand(3 * 4, 70, -1.0, 1.0);
    let labels = [1.0f32, 0.0, 1.0];
    let (xv, lv) = (dev.upload(&x).unwrap(), dev.upload(&labels).unwrap());
    let lambda = 0.3f32;
    let w0 = mlp.layers()[0].weight;
    let run = |dev: &mut Device, penalty: bool| -> Vec<f32> {
        dev.fill(mlp.arena.grads, f32::NAN);
        let mut tape = Tape::new(dev);
        let xin = tape.input(Tensor::new(xv, &[3, 4]).unwrap());
        let logits = mlp.forward(&mut tape, xin).unwrap();
        let mut loss = tape.softmax_ce(logits, lv, None).unwrap();
        if penalty {
            let w = mlp.arena.var(&mut tape, w0).unwrap();
            let sq = tape.mul(w, w).unwrap();
            let s = tape.sum(sq).unwrap();
            let s = tape.scale(s, lambda).unwrap();
            loss = tape.add(loss, s).unwrap();
        }
        tape.backward(loss).unwrap();
        drop(tape);
        mlp.arena.read_grad(dev, w0).unwrap()
    };
    let plain = run(dev, false);
    let with = run(dev, true);
    let w = mlp.arena.read(dev, w0).unwrap();
    for i in 0..w.len() {
        let want = plain[i] as f64 + 2.0 * lambda as f64 * w[i] as f64;
        assert!(r::close(with[i] as f64, want, 1e-6, 1e-5), "dW[{i}]: {} vs {want}", with[i]);
    }
}
test_device!(mlp_penalty_grad, mlp_with_a_penalty_through_handles);

fn lecture_chain_rule_example(dev: &mut Device) {
    // g(f(x)) with f = x² + 3x and g = u³ + u + 2: g'(f(3))·f'(3) = 8757.
    let xv = dev.upload(&[3.0]).unwrap();
    let g = poisoned(dev, 1);
    let mut tape = Tape::new(dev);
    let x = tape.param(Tensor::new(xv, &[1]).unwrap(), g).unwrap();
    let x2 = tape.pow(x, 2.0).unwrap();
    let x3 = tape.scale(x, 3.0).unwrap();
    let u = tape.add(x2, x3).unwrap();
    let u3 = tape.pow(u, 3.0).unwrap();
    let s = tape.add(u3, u).unwrap();
    let y = tape.add_scalar(s, 2.0).unwrap();
    // Exact on the CPU; the GPU's pow is exp2(p·log2 x), within a few ulp.
    let rel = if tape.device().is_gpu() { 1e-6 } else { 0.0 };
    let value = tape.read(y).unwrap()[0] as f64;
    assert!(r::close(value, 5852.0, 0.0, rel), "g(f(3)) = {value}");
    tape.backward(y).unwrap();
    let grad = tape.device().read(g).unwrap()[0] as f64;
    assert!(r::close(grad, 8757.0, 0.0, rel), "d/dx g(f(3)) = {grad}");
}
test_device!(lecture_chain_rule, lecture_chain_rule_example);

/// log-softmax of each row in f64: `z − max − ln Σ exp(z − max)`.
fn log_softmax_ref(x: &[f32], cols: usize) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|row| {
            let m = row.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
            let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            row.iter().map(move |&v| v as f64 - lse)
        })
        .collect()
}

/// Softmax and log-softmax along rows, one row shifted by 60 (exp(60) would overflow an f32
/// sum without the shift), alone and as the negative log-likelihood that cross-entropy is.
fn softmax_and_log_softmax(dev: &mut Device) {
    let (m, n) = (4, 5);
    let mut x = rand(m * n, 31, -3.0, 3.0);
    x[n..2 * n].iter_mut().for_each(|v| *v += 60.0);
    check(dev, "log_softmax", vec![(x.clone(), vec![m, n])], &|t, v| t.log_softmax(v[0]).unwrap(), &|d| {
        log_softmax_ref(&d[0], n)
    });
    check(dev, "softmax", vec![(x.clone(), vec![m, n])], &|t, v| t.softmax(v[0]).unwrap(), &|d| {
        log_softmax_ref(&d[0], n).iter().map(|v| v.exp()).collect()
    });
    let labels = [3.0f32, 0.0, 4.0, 1.0];
    let one_hot: Vec<f32> = (0..m * n).map(|i| (labels[i / n] as usize == i % n) as u8 as f32).collect();
    check(
        dev,
        "-mean(one_hot ⊙ log_softmax) = cross-entropy",
        vec![(x, vec![m, n])],
        &|t, v| {
            let l = t.log_softmax(v[0]).unwrap();
            let y = t.constant(&one_hot, &[m, n]).unwrap();
            let picked = t.mul(l, y).unwrap();
            let total = t.sum(picked).unwrap();
            t.scale(total, -1.0 / m as f32).unwrap()
        },
        &|d| vec![r::softmax_ce(&d[0], &labels, n, IGNORE_INDEX).0],
    );
}
test_device!(softmax_grad, softmax_and_log_softmax);

/// Dropout inside a graph: tanh, then dropout (p 0.4, a fixed seed and offset), then a
/// matmul, against the reference's mask applied to the f64 values. With the mask fixed the
/// function is smooth in x, so central differences check the gradient (the same mask again).
fn dropout_in_a_graph(dev: &mut Device) {
    let (m, k, n) = (5, 7, 3);
    let mask = DropoutMask::new(0.4, 0xdead_beef_1234, 9).unwrap();
    let factors = r::dropout(&vec![1.0; m * k], 0.4f32 as f64, mask.seed, mask.offset);
    assert!(factors.contains(&0.0) && factors.iter().any(|&f| f > 1.0), "the mask drops and keeps");
    let x = rand(m * k, 41, -2.0, 2.0);
    let w = rand(k * n, 42, -1.0, 1.0);
    check(
        dev,
        "tanh → dropout → matmul",
        vec![(x, vec![m, k]), (w, vec![k, n])],
        &|t, v| {
            let h = t.act(v[0], Act::Tanh).unwrap();
            let d = t.dropout(h, mask).unwrap();
            t.matmul(Form::NN, d, v[1]).unwrap()
        },
        &|d| {
            let h: Vec<f64> = d[0].iter().zip(&factors).map(|(&x, f)| (x as f64).tanh() * f).collect();
            (0..m * n).map(|i| (0..k).map(|j| h[i / n * k + j] * d[1][j * n + i % n] as f64).sum()).collect()
        },
    );
}
test_device!(dropout_grad, dropout_in_a_graph);

/// The composed losses inside graphs, against central differences of plain f64 formulas: Huber
/// plus L1 of a linear map, BCE with logits of a linear map (targets in [0, 1] trained too),
/// and soft cross-entropy against a teacher's softmax (the gradient reaches the teacher).
fn composed_losses(dev: &mut Device) {
    let (m, k, n) = (4, 3, 2);
    let lin = |x: &[f32], w: &[f32]| -> Vec<f64> {
        (0..m * n).map(|i| (0..k).map(|j| x[i / n * k + j] as f64 * w[j * n + i % n] as f64).sum()).collect()
    };
    let (x, w) = (rand(m * k, 51, -1.5, 1.5), rand(k * n, 52, -1.5, 1.5));
    check(
        dev,
        "huber(x·w, y, 0.5) + ½·l1(x·w, y)",
        vec![(x.clone(), vec![m, k]), (w.clone(), vec![k, n]), (rand(m * n, 53, -1.0, 1.0), vec![m, n])],
        &|t, v| {
            let p = t.matmul(Form::NN, v[0], v[1]).unwrap();
            let h = t.huber(p, v[2], 0.5).unwrap();
            let l = t.l1(p, v[2]).unwrap();
            let l = t.scale(l, 0.5).unwrap();
            t.add(h, l).unwrap()
        },
        &|d| {
            let p = lin(&d[0], &d[1]);
            let mut total = 0.0;
            for (p, &y) in p.iter().zip(&d[2]) {
                let a = (p - y as f64).abs();
                total += if a < 0.5 { 0.5 * a * a } else { 0.5 * (a - 0.25) } + 0.5 * a;
            }
            vec![total / (m * n) as f64]
        },
    );
    check(
        dev,
        "bce_with_logits(x·w, t)",
        vec![(x, vec![m, k]), (w, vec![k, n]), (rand(m * n, 54, 0.0, 1.0), vec![m, n])],
        &|t, v| {
            let z = t.matmul(Form::NN, v[0], v[1]).unwrap();
            t.bce_with_logits(z, v[2]).unwrap()
        },
        &|d| {
            let z = lin(&d[0], &d[1]);
            let total: f64 =
                z.iter().zip(&d[2]).map(|(&z, &y)| z.max(0.0) - z * y as f64 + (-z.abs()).exp().ln_1p()).sum();
            vec![total / (m * n) as f64]
        },
    );
    let (rows, classes) = (3, 4);
    check(
        dev,
        "cross_entropy_soft(z, softmax(teacher))",
        vec![
            (rand(rows * classes, 55, -2.0, 2.0), vec![rows, classes]),
            (rand(rows * classes, 56, -2.0, 2.0), vec![rows, classes]),
        ],
        &|t, v| {
            let targets = t.softmax(v[1]).unwrap();
            t.cross_entropy_soft(v[0], targets).unwrap()
        },
        &|d| {
            let (logp, logq) = (log_softmax_ref(&d[0], classes), log_softmax_ref(&d[1], classes));
            vec![-logp.iter().zip(&logq).map(|(p, q)| q.exp() * p).sum::<f64>() / rows as f64]
        },
    );
}
test_device!(composed_losses_grad, composed_losses);

/// GELU (both forms) and SiLU over negative and positive inputs, after a linear map and
/// before a tanh, against central differences.
fn gelu_and_silu_in_a_graph(dev: &mut Device) {
    let (m, k, n) = (3, 4, 5);
    let (x, w) = (rand(m * k, 61, -2.0, 2.0), rand(k * n, 62, -1.5, 1.5));
    for op in [UnaryOp::Gelu, UnaryOp::GeluTanh, UnaryOp::Silu] {
        check(
            dev,
            &format!("tanh({op:?}(x·w))"),
            vec![(x.clone(), vec![m, k]), (w.clone(), vec![k, n])],
            &|t, v| {
                let z = t.matmul(Form::NN, v[0], v[1]).unwrap();
                let h = match op {
                    UnaryOp::Gelu => t.gelu(z),
                    UnaryOp::GeluTanh => t.gelu_tanh(z),
                    _ => t.silu(z),
                }
                .unwrap();
                t.act(h, Act::Tanh).unwrap()
            },
            &|d| {
                let z: Vec<f32> = (0..m * n)
                    .map(|i| {
                        (0..k).map(|j| d[0][i / n * k + j] as f64 * d[1][j * n + i % n] as f64).sum::<f64>() as f32
                    })
                    .collect();
                r::unary(op, &z).iter().map(|h| h.tanh()).collect()
            },
        );
    }
}
test_device!(gelu_silu_grad, gelu_and_silu_in_a_graph);

/// Maxima and arg-maxima along both axes (ties: the first wins), and `max_axis` refusing a
/// value that needs a gradient.
fn max_and_argmax(dev: &mut Device) {
    let (m, n) = (3, 4);
    let x = [1.0, 5.0, 5.0, -2.0, 7.0, 0.0, 7.0, 3.0, -1.0, -1.0, -4.0, -1.0f32];
    let xv = dev.upload(&x).unwrap();
    let grad = dev.alloc(x.len()).unwrap();
    let mut tape = Tape::new(dev);
    let input = tape.input(Tensor::new(xv, &[m, n]).unwrap());
    for axis in [Axis::Rows, Axis::Cols] {
        let mx = tape.max_axis(input, axis).unwrap();
        let am = tape.argmax_axis(input, axis).unwrap();
        let (got_max, got_arg) = (tape.read(mx).unwrap(), tape.read(am).unwrap());
        let want_max: Vec<f32> = r::max_axis(&x, n, axis, false).iter().map(|&v| v as f32).collect();
        let want_arg: Vec<f32> = r::max_axis(&x, n, axis, true).iter().map(|&v| v as f32).collect();
        assert_eq!((got_max, got_arg), (want_max, want_arg), "axis {}", axis.dim());
    }
    let rows_first = tape.argmax_axis(input, Axis::Cols).unwrap();
    assert_eq!(tape.read(rows_first).unwrap(), vec![1.0, 0.0, 0.0], "the first of equal maxima");
    let p = tape.param(Tensor::new(xv, &[m, n]).unwrap(), grad).unwrap();
    let err = tape.max_axis(p, Axis::Cols).unwrap_err().to_string();
    assert!(err.contains("no gradient"), "{err}");
    // arg-maxima carry no gradient: a loss built on them leaves the parameter's gradient zero.
    let am = tape.argmax_axis(p, Axis::Cols).unwrap();
    let s = tape.sum(am).unwrap();
    let pm = tape.mean(p).unwrap();
    let loss = tape.add(s, pm).unwrap();
    tape.backward(loss).unwrap();
    drop(tape);
    let g = dev.read(grad).unwrap();
    assert!(g.iter().all(|&v| v == 1.0 / 12.0), "{g:?}");
}
test_device!(max_argmax, max_and_argmax);

/// A tensor whose shape does not match its view is an `Err` that gives both counts, never a
/// panic (an overflowing shape included).
#[test]
fn a_tensor_of_the_wrong_shape_is_an_error() {
    let mut dev = Device::cpu();
    let v = dev.alloc(6).unwrap();
    assert_eq!(Tensor::new(v, &[2, 3]).unwrap().shape, vec![2, 3]);
    let err = Tensor::new(v, &[4, 2]).unwrap_err().to_string();
    assert!(err.contains("shape [4, 2] holds 8 values, but the view holds 6"), "{err}");
    let err = Tensor::new(v, &[usize::MAX, 2]).unwrap_err().to_string();
    assert!(err.contains("more than usize::MAX"), "{err}");
}
