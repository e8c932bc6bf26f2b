//! Batched products (`Device::matmul_batched`, `Device::gram_batched`): on lavapipe one
//! dispatch runs every member, and each member gets exactly the bits of its own product, with
//! the tiled and the large-tile kernel, checked and trusted, at odd shapes and offsets, outputs
//! poisoned; on both devices, views too small for the batch are refused. Batched norms
//! (`inv_norm_batched`, `scale_by_batched`) give each member its own bits too. And Muon, which runs
//! Newton–Schulz over same-shaped matrices as one batch: the same bits as each matrix stepped
//! alone, in fewer launches.

#[macro_use]
mod common;

use descent::backend::gpu::{MatmulKernels, ShaderChecks};
use descent::backend::{Device, Dims, Epilogue, Form, View};
use descent::optim::{Muon, OptimConfig, Optimizer, Schedule};
use descent::reference as r;
use descent::rng::Rng;

/// Odd shapes: one element, k below and past a k-step, tile edges, and vec4-eligible sizes.
const SHAPES: [(usize, usize, usize); 5] = [(1, 1, 1), (3, 5, 7), (63, 65, 129), (8, 20, 12), (130, 7, 65)];

/// `data` uploaded at element `offset` of a fresh buffer (1 forces the scalar loads).
fn at(dev: &mut Device, data: &[f32], offset: usize) -> View {
    let mut padded = vec![7.0; offset];
    padded.extend_from_slice(data);
    dev.upload(&padded).unwrap().slice(offset, data.len())
}

/// The batch's output, with one poisoned element past its end that must stay untouched.
fn poisoned(dev: &mut Device, len: usize) -> View {
    dev.upload(&vec![f32::NAN; len + 1]).unwrap().slice(0, len)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Every member of a batched product against the same product run alone on the same device,
/// and against the f64 reference; one dispatch per batch.
fn batched_members_match_single_products(dev: &mut Device, label: &str) {
    let mut rng = Rng::new(24);
    for (m, k, n) in SHAPES {
        for form in Form::ALL {
            for (batch, offset) in [(1, 0), (3, 0), (3, 1), (4, 0)] {
                let what = format!("{label}: {form:?} {m}x{k}x{n} batch {batch} offset {offset}");
                let d = Dims { m, k, n };
                let a = rng.uniform_vec(batch * m * k, -1.0, 1.0);
                let b = rng.uniform_vec(batch * k * n, -1.0, 1.0);
                let (av, bv) = (at(dev, &a, offset), at(dev, &b, offset));
                let out = poisoned(dev, batch * m * n);
                let before = dev.counters().dispatches;
                dev.matmul_batched(form, d, batch, av, bv, out);
                let got = dev.read(View { len: batch * m * n + 1, ..out }).unwrap();
                if dev.is_gpu() {
                    assert_eq!(dev.counters().dispatches - before, 1, "{what}: one dispatch");
                }
                assert!(got[batch * m * n].is_nan(), "{what}: wrote past the batch");
                for i in 0..batch {
                    let (ai, bi) = (&a[i * m * k..(i + 1) * m * k], &b[i * k * n..(i + 1) * k * n]);
                    let single = poisoned(dev, m * n);
                    dev.matmul(
                        form,
                        d,
                        av.slice(i * m * k, m * k),
                        bv.slice(i * k * n, k * n),
                        single,
                        &Epilogue::default(),
                    );
                    let want = dev.read(single).unwrap();
                    let member = &got[i * m * n..(i + 1) * m * n];
                    assert_eq!(bits(member), bits(&want), "{what}: member {i} against its own product");
                    assert!(member.iter().all(|v| !v.is_nan()), "{what}: member {i} left unwritten");
                    let (_, _, ok) = r::compare(member, &r::matmul(form, m, k, n, ai, bi), 1e-3, 1e-4);
                    assert!(ok, "{what}: member {i} against the f64 reference");
                }
            }
        }
    }
}

/// The same for Gram products, both forms.
fn batched_grams_match_single_grams(dev: &mut Device, label: &str) {
    let mut rng = Rng::new(25);
    for (side, k) in [(1, 1), (3, 5), (5, 3), (65, 17), (8, 8)] {
        for form in [Form::NT, Form::TN] {
            let batch = 3;
            let what = format!("{label}: gram {form:?} {side}x{k} batch {batch}");
            let x = rng.uniform_vec(batch * side * k, -1.0, 1.0);
            let xv = at(dev, &x, 0);
            let out = poisoned(dev, batch * side * side);
            let before = dev.counters().dispatches;
            dev.gram_batched(form, side, k, batch, xv, out);
            let got = dev.read(View { len: batch * side * side + 1, ..out }).unwrap();
            if dev.is_gpu() {
                assert_eq!(dev.counters().dispatches - before, 1, "{what}: one dispatch");
            }
            assert!(got[batch * side * side].is_nan(), "{what}: wrote past the batch");
            for i in 0..batch {
                let single = poisoned(dev, side * side);
                dev.gram(form, side, k, xv.slice(i * side * k, side * k), single);
                let want = dev.read(single).unwrap();
                assert_eq!(bits(&got[i * side * side..(i + 1) * side * side]), bits(&want), "{what}: member {i}");
                let xi = &x[i * side * k..(i + 1) * side * k];
                let want64 = r::matmul(form, side, k, side, xi, xi);
                assert!(r::compare(&want, &want64, 1e-3, 1e-4).2, "{what}: member {i} against the f64 reference");
            }
        }
    }
}

#[test]
fn batched_products_on_the_cpu_are_each_members_product() {
    let mut dev = Device::cpu();
    batched_members_match_single_products(&mut dev, "cpu");
    batched_grams_match_single_grams(&mut dev, "cpu");
}

#[test]
fn batched_products_on_the_gpu_are_each_members_product_in_one_dispatch() {
    for kernels in [MatmulKernels::Tiled, MatmulKernels::Large] {
        for checks in [ShaderChecks::Checked, ShaderChecks::Trusted] {
            let mut dev = common::gpu();
            dev.set_matmul_kernels(kernels).unwrap();
            dev.set_shader_checks(checks).unwrap();
            let label = format!("{kernels:?} {checks:?}");
            batched_members_match_single_products(&mut dev, &label);
            batched_grams_match_single_grams(&mut dev, &label);
        }
    }
}

/// Split-K, forced, still runs a batch as one pass of the one-pass kernel.
#[test]
fn a_batch_is_never_split() {
    let mut dev = common::gpu();
    dev.set_matmul_kernels(MatmulKernels::SplitK).unwrap();
    let (batch, d) = (2, Dims { m: 9, k: 100, n: 11 });
    let mut rng = Rng::new(3);
    let a = rng.uniform_vec(batch * d.m * d.k, -1.0, 1.0);
    let b = rng.uniform_vec(batch * d.k * d.n, -1.0, 1.0);
    let (av, bv, out) = (at(&mut dev, &a, 0), at(&mut dev, &b, 0), poisoned(&mut dev, batch * d.m * d.n));
    let before = dev.counters().dispatches;
    dev.matmul_batched(Form::NN, d, batch, av, bv, out);
    let got = dev.read(out).unwrap();
    assert_eq!(dev.counters().dispatches - before, 1);
    for i in 0..batch {
        let want =
            r::matmul(Form::NN, d.m, d.k, d.n, &a[i * d.m * d.k..][..d.m * d.k], &b[i * d.k * d.n..][..d.k * d.n]);
        assert!(r::compare(&got[i * d.m * d.n..][..d.m * d.n], &want, 1e-3, 1e-4).2, "member {i}");
    }
}

/// The proof trusted kernels rely on, for batches: views that cannot hold every member are
/// refused before anything runs, naming the view.
fn views_too_small_for_the_batch_are_refused(dev: &mut Device) {
    let (a, b) = (dev.upload(&[1.0; 12]).unwrap(), dev.upload(&[1.0; 12]).unwrap());
    let out = dev.upload(&[f32::NAN; 8]).unwrap();
    let d = Dims { m: 2, k: 3, n: 2 };
    dev.matmul_batched(Form::NN, d, 2, a, b.slice(0, 11), out);
    let e = dev.clear_fault().unwrap();
    assert!(e.contains("B holds 11 values, fewer than the 2×3×2"), "{e}");
    dev.matmul_batched(Form::NN, d, 2, a, b, out.slice(0, 7));
    assert!(dev.clear_fault().unwrap().contains("the output holds 7 values"));
    dev.matmul_batched(Form::NN, d, usize::MAX, a, b, out);
    assert!(dev.clear_fault().unwrap().contains("A holds 12 values"));
    dev.gram_batched(Form::NT, 2, 3, 3, a, out);
    assert!(dev.clear_fault().unwrap().contains("A holds 12 values, fewer than the 3×2×3"));
    dev.gram_batched(Form::NN, 2, 3, 2, a, out);
    assert!(dev.clear_fault().unwrap().contains("NT (X·Xᵀ) or TN"));
    assert!(dev.read(out).unwrap().iter().all(|v| v.is_nan()), "a refused batch wrote its output");
    dev.matmul_batched(Form::NN, d, 2, a, b, out);
    assert_eq!(dev.read(out).unwrap(), vec![3.0; 8]);
}
test_device!(batched_extents, views_too_small_for_the_batch_are_refused);

/// Batched norms and scaling: every member's inverse norm and scaled values are the bits
/// `inv_norm` and `scale_by` give it alone, at lengths below one workgroup, past one, and past
/// 256 workgroups of partials (the partials buffer grows for the batch); the scalars' neighbours
/// and the views' bad lengths are checked.
fn batched_norms_match_single_norms(dev: &mut Device) {
    let mut rng = Rng::new(26);
    for len in [1, 7, 1023, 70_000] {
        let members = 3;
        let x = rng.uniform_vec(members * len, -1.0, 1.0);
        let (xv, yv) = (at(dev, &x, 1), at(dev, &x, 0));
        let norms = poisoned(dev, members);
        let before = dev.counters().dispatches;
        dev.inv_norm_batched(xv, members, norms, 1e-7);
        dev.scale_by_batched(yv, members, norms);
        if dev.is_gpu() {
            assert_eq!(dev.counters().dispatches - before, 3, "len {len}: two passes and the scaling");
        }
        let got_norms = dev.read(View { len: members + 1, ..norms }).unwrap();
        assert!(got_norms[members].is_nan(), "len {len}: wrote past the norms");
        let scaled = dev.read(yv).unwrap();
        for i in 0..members {
            let (xi, yi) = (xv.slice(i * len, len), at(dev, &x[i * len..(i + 1) * len], 0));
            let one = poisoned(dev, 1);
            dev.inv_norm(xi, one, 1e-7);
            dev.scale_by(yi, one);
            let want = dev.read(one).unwrap()[0];
            assert_eq!(got_norms[i].to_bits(), want.to_bits(), "len {len}: member {i}'s norm");
            let want64 = 1.0 / x[i * len..(i + 1) * len].iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            assert!((want as f64 - want64).abs() <= 1e-5 * want64, "len {len}: member {i} against f64");
            assert_eq!(bits(&scaled[i * len..(i + 1) * len]), bits(&dev.read(yi).unwrap()), "len {len}: member {i}");
        }
    }
    let (x, out) = (dev.upload(&[1.0; 6]).unwrap(), dev.upload(&[f32::NAN; 3]).unwrap());
    dev.inv_norm_batched(x, 4, out, 1e-7);
    assert!(dev.clear_fault().unwrap().contains("6 elements are not 4 members"));
    dev.scale_by_batched(x, 3, out.slice(0, 2));
    assert!(dev.clear_fault().unwrap().contains("2 per-member values for 3 members"));
    dev.inv_norm_batched(x, 0, out, 1e-7);
    assert!(dev.clear_fault().is_some());
    assert!(dev.read(out).unwrap().iter().all(|v| v.is_nan()), "a refused batch wrote");
}
test_device!(batched_norms, batched_norms_match_single_norms);

/// Muon over `shapes` (every matrix to Muon) for three steps from fixed data: the parameters
/// after, and the launches the last step took.
fn muon_steps(dev: &mut Device, shapes: &[Vec<usize>], p0: &[f32], grads: &[Vec<f32>]) -> (Vec<f32>, u64) {
    let (tensors, n) = descent::nn::arena_layout(shapes);
    let cfg = OptimConfig::Muon(Muon { aux_first_last: false, weight_decay: 0.1, ..Muon::default() });
    let mut opt = Optimizer::for_shapes(dev, cfg, Schedule::Constant, n, &tensors).unwrap();
    let (pv, gv) = (dev.upload(&p0[..n]).unwrap(), dev.alloc(n).unwrap());
    let mut launches = 0;
    for g in grads {
        dev.write(gv, &g[..n]).unwrap();
        let before = dev.counters().dispatches;
        opt.step_views(dev, pv, gv).unwrap();
        launches = dev.counters().dispatches - before;
    }
    (dev.read(pv).unwrap(), launches)
}

/// Three same-shaped matrices step as one Newton–Schulz batch: each gets the bits it gets
/// stepped alone, and a step takes the iteration's launches once.
fn muon_batches_same_shaped_matrices(dev: &mut Device) {
    let (rows, cols, count) = (6, 10, 3);
    let shapes = vec![vec![rows, cols]; count];
    let (tensors, n) = descent::nn::arena_layout(&shapes);
    let mut rng = Rng::new(5);
    let p0 = rng.uniform_vec(n, -1.0, 1.0);
    let grads: Vec<Vec<f32>> = (0..3).map(|_| rng.uniform_vec(n, -1.0, 1.0)).collect();
    let (together, launches) = muon_steps(dev, &shapes, &p0, &grads);
    for (at, _) in &tensors {
        let len = rows * cols;
        let own_grads: Vec<Vec<f32>> = grads.iter().map(|g| g[*at..at + len].to_vec()).collect();
        let (alone, _) = muon_steps(dev, &[vec![rows, cols]], &p0[*at..at + len], &own_grads);
        assert_eq!(bits(&together[*at..at + len]), bits(&alone), "the matrix at {at}");
    }
    if dev.is_gpu() {
        // Per matrix: the momentum and the update; per batch: the norms (two passes), their
        // scaling, and five launches for each of the 5 Newton–Schulz steps.
        assert_eq!(launches, 2 * count as u64 + 3 + 5 * 5);
    }
}
test_device!(muon_batches, muon_batches_same_shaped_matrices);
