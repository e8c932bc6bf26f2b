//! The GPU matmul's kernels on lavapipe: split-K (forced on every product it can split) is
//! right, deterministic and the same bits in both compile modes; the large-tile kernel (forced)
//! is right and the same bits in both modes; and the matmul compiled without wgpu's runtime checks (`ShaderChecks::Trusted`) gives the same
//! bits as the checked one, on lavapipe, for every form and fused epilogue at odd shapes (tile
//! edges, k below and past the tile depth, vec4 and scalar loads), and both agree with the f64
//! reference; and the host's proof that lets it run unchecked (every view holds what the
//! product addresses) refuses views that are too small.

#[macro_use]
mod common;

use descent::backend::gpu::{MatmulKernels, MatmulPlan, ShaderChecks};
use descent::backend::{Act, Device, Dims, Epilogue, Form, View};
use descent::reference as r;
use descent::rng::Rng;

/// The shapes issue 22 names, plus the MLP's backward products.
const SHAPES: [(usize, usize, usize); 8] = [
    (1, 1, 1),
    (1, 4099, 1),
    (63, 65, 129),
    (64, 784, 128),
    (130, 7, 4097),
    (2049, 33, 65),
    (64, 128, 10),
    (128, 64, 784),
];

/// One product on `dev`: the operands at element offset `offset` of their buffers (1 forces
/// the scalar loads; 0 allows vec4 ones where the sizes do), the output poisoned with NaN.
struct Case<'a> {
    form: Form,
    d: Dims,
    a: &'a [f32],
    b: &'a [f32],
    y: &'a [f32],
    bias: &'a [f32],
    epilogue: &'a str,
    offset: usize,
}

fn run(dev: &mut Device, c: &Case) -> (Vec<f32>, Option<Vec<f32>>) {
    let Dims { m, n, .. } = c.d;
    let at = |dev: &mut Device, data: &[f32]| -> View {
        let mut padded = vec![7.0; c.offset];
        padded.extend_from_slice(data);
        let v = dev.upload(&padded).unwrap();
        v.slice(c.offset, data.len())
    };
    let (a, b) = (at(dev, c.a), at(dev, c.b));
    let out = dev.upload(&vec![f32::NAN; m * n]).unwrap();
    let mut epi = Epilogue::default();
    let mut colsum = None;
    match c.epilogue {
        "bias+relu" => {
            epi.bias = Some(at(dev, c.bias));
            epi.act = Some(Act::Relu);
        }
        "*tanh'" => epi.act_grad = Some((Act::Tanh, at(dev, c.y))),
        "colsum" => {
            let cs = dev.upload(&vec![f32::NAN; m]).unwrap();
            epi.a_colsum = Some(cs);
            colsum = Some(cs);
        }
        _ => {}
    }
    dev.matmul(c.form, c.d, a, b, out, &epi);
    let got = dev.read(out).unwrap();
    (got, colsum.map(|cs| dev.read(cs).unwrap()))
}

fn reference(c: &Case) -> Vec<f64> {
    let Dims { m, k, n } = c.d;
    let mut z = r::matmul(c.form, m, k, n, c.a, c.b);
    match c.epilogue {
        "bias+relu" => z.iter_mut().enumerate().for_each(|(i, v)| *v = (*v + c.bias[i % n] as f64).max(0.0)),
        "*tanh'" => z.iter_mut().zip(c.y).for_each(|(v, &y)| *v *= 1.0 - (y as f64) * (y as f64)),
        _ => {}
    }
    z
}

/// Calls `f` with every case: each shape, form, fused epilogue and operand offset (the forms
/// read A or B transposed: the product of the same sizes from other data).
fn each_case(mut f: impl FnMut(&Case)) -> usize {
    let mut rng = Rng::new(22);
    let mut cases = 0;
    for (m, k, n) in SHAPES {
        let a = rng.uniform_vec(m * k, -1.0, 1.0);
        let b = rng.uniform_vec(k * n, -1.0, 1.0);
        let y = rng.uniform_vec(m * n, -1.0, 1.0);
        let bias = rng.uniform_vec(n, -1.0, 1.0);
        for form in Form::ALL {
            let epilogues: &[&str] =
                if form == Form::TN { &["none", "colsum"] } else { &["none", "bias+relu", "*tanh'"] };
            for &epilogue in epilogues {
                for offset in [0, 1] {
                    f(&Case { form, d: Dims { m, k, n }, a: &a, b: &b, y: &y, bias: &bias, epilogue, offset });
                    cases += 1;
                }
            }
        }
    }
    cases
}

fn what(c: &Case) -> String {
    let Dims { m, k, n } = c.d;
    format!("{:?} {m}x{k}x{n} {} offset {}", c.form, c.epilogue, c.offset)
}

fn assert_same_bits(what: &str, got: &(Vec<f32>, Option<Vec<f32>>), want: &(Vec<f32>, Option<Vec<f32>>)) {
    for (i, (g, w)) in got.0.iter().zip(&want.0).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{what}: element {i}: {g} against {w}");
    }
    assert_eq!(
        got.1.as_ref().map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
        want.1.as_ref().map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
        "{what}: column sums"
    );
}

/// The output (every element written) and column sums agree with the f64 reference.
fn assert_matches_reference(what: &str, c: &Case, got: &(Vec<f32>, Option<Vec<f32>>)) {
    let Dims { m, k, .. } = c.d;
    assert!(got.0.iter().all(|v| !v.is_nan()), "{what}: an element was left unwritten");
    let (_, _, ok) = r::compare(&got.0, &reference(c), 1e-3, 1e-4);
    assert!(ok, "{what}: against the f64 reference");
    if let Some(cs) = &got.1 {
        let want: Vec<f64> = (0..m).map(|i| (0..k).map(|p| c.a[p * m + i] as f64).sum()).collect();
        assert!(r::compare(cs, &want, 1e-3, 1e-4).2, "{what}: column sums against the reference");
    }
}

/// Two lavapipe devices running `kernels`: one compiled with wgpu's checks, one trusted.
fn checked_and_trusted(kernels: MatmulKernels) -> (Device, Device) {
    let mut checked = common::gpu();
    checked.set_shader_checks(ShaderChecks::Checked).unwrap();
    checked.set_matmul_kernels(kernels).unwrap();
    let mut trusted = common::gpu();
    trusted.set_shader_checks(ShaderChecks::Trusted).unwrap();
    trusted.set_matmul_kernels(kernels).unwrap();
    (checked, trusted)
}

#[test]
fn trusted_and_checked_matmuls_give_the_same_bits() {
    // The tiled kernel on every product (the rule would give 130×7×4097 the large tiles, which
    // the test below covers).
    let (mut checked, mut trusted) = checked_and_trusted(MatmulKernels::Tiled);
    assert!(checked.describe().contains("[checked matmul]") && !trusted.describe().contains("checked"));
    assert!(SHAPES.iter().all(|&(m, k, n)| trusted.matmul_plan(Dims { m, k, n }) == Some(MatmulPlan::Tiled)));
    let cases = each_case(|c| {
        let what = what(c);
        let want = run(&mut checked, c);
        let got = run(&mut trusted, c);
        assert_same_bits(&what, &got, &want);
        assert_matches_reference(&what, c, &got);
    });
    assert_eq!(cases, SHAPES.len() * (3 + 3 + 2) * 2);
}

/// Split-K, forced on every product it can split: right against the reference, the same bits
/// run after run, and the same bits trusted and checked.
#[test]
fn split_k_matmuls_are_right_deterministic_and_the_same_bits_in_both_modes() {
    let (mut checked, mut trusted) = checked_and_trusted(MatmulKernels::SplitK);
    assert!(trusted.describe().contains("[split-k matmul]"), "{}", trusted.describe());
    let mut split = 0;
    each_case(|c| {
        let what = what(c);
        let plan = trusted.matmul_plan(c.d).unwrap();
        let before = trusted.counters().dispatches;
        let got = run(&mut trusted, c);
        let passes = trusted.counters().dispatches - before;
        if let MatmulPlan::SplitK { .. } = plan {
            split += 1;
            // The partial sums, then their sum (a separate column-sum pass only where the
            // output and the sums overlap, which these cases never do).
            assert_eq!(passes, 2, "{what}: {plan}");
        } else {
            assert_eq!(passes, 1, "{what}: {plan}");
        }
        assert_matches_reference(&what, c, &got);
        assert_same_bits(&format!("{what} ({plan}), run again"), &run(&mut trusted, c), &got);
        assert_same_bits(&format!("{what} ({plan}), checked"), &run(&mut checked, c), &got);
    });
    // Every shape but the two whose k fits one k-step (1×1×1, 130×7×4097) splits.
    assert_eq!(split, (SHAPES.len() - 2) * (3 + 3 + 2) * 2);
}

/// The large-tile kernel, forced on every product: right against the reference, and the same
/// bits trusted and checked.
#[test]
fn large_tile_matmuls_are_right_and_the_same_bits_in_both_modes() {
    let (mut checked, mut trusted) = checked_and_trusted(MatmulKernels::Large);
    assert!(trusted.describe().contains("[large-tile matmul]"), "{}", trusted.describe());
    let cases = each_case(|c| {
        let what = what(c);
        assert_eq!(trusted.matmul_plan(c.d), Some(MatmulPlan::Large), "{what}");
        let got = run(&mut trusted, c);
        assert_matches_reference(&what, c, &got);
        assert_same_bits(&format!("{what} (large), checked"), &run(&mut checked, c), &got);
    });
    assert_eq!(cases, SHAPES.len() * (3 + 3 + 2) * 2);
}

/// The split kernel's column sums when they share the output's buffer (a gradient arena:
/// disjoint ranges of one buffer), and when the two overlap (a separate pass sums them).
#[test]
fn split_k_column_sums_in_the_outputs_buffer() {
    let mut dev = common::gpu();
    dev.set_matmul_kernels(MatmulKernels::SplitK).unwrap();
    let (m, k, n) = (33, 200, 70);
    let mut rng = Rng::new(7);
    let a = rng.uniform_vec(k * m, -1.0, 1.0);
    let b = rng.uniform_vec(k * n, -1.0, 1.0);
    let (av, bv) = (dev.upload(&a).unwrap(), dev.upload(&b).unwrap());
    let want = r::matmul(Form::TN, m, k, n, &a, &b);
    let want_cs: Vec<f64> = (0..m).map(|i| (0..k).map(|p| a[p * m + i] as f64).sum()).collect();
    for (out_at, cs_at) in [(0, m * n + 100), (200, 0), (0, m * n - 5)] {
        let arena = dev.upload(&vec![f32::NAN; m * n + 400]).unwrap();
        let (out, cs) = (arena.slice(out_at, m * n), arena.slice(cs_at, m));
        if cs_at + m > out_at && out_at + m * n > cs_at {
            // Overlapping: the product is written first, then its column sums over it.
            dev.matmul(
                Form::TN,
                Dims { m, k, n },
                av,
                bv,
                out,
                &Epilogue { a_colsum: Some(cs), ..Epilogue::default() },
            );
            let got_cs = dev.read(cs).unwrap();
            assert!(r::compare(&got_cs, &want_cs, 1e-3, 1e-4).2, "overlapping column sums");
            continue;
        }
        dev.matmul(Form::TN, Dims { m, k, n }, av, bv, out, &Epilogue { a_colsum: Some(cs), ..Epilogue::default() });
        let (got, got_cs) = (dev.read(out).unwrap(), dev.read(cs).unwrap());
        assert!(r::compare(&got, &want, 1e-3, 1e-4).2, "out at {out_at}, sums at {cs_at}");
        assert!(r::compare(&got_cs, &want_cs, 1e-3, 1e-4).2, "sums at {cs_at}, out at {out_at}");
    }
}

#[test]
fn the_cpu_has_no_gpu_matmul_kernels_to_choose() {
    let mut cpu = Device::cpu();
    assert!(cpu.set_matmul_kernels(MatmulKernels::SplitK).unwrap_err().to_string().contains("CPU backend"));
    assert_eq!(cpu.matmul_plan(Dims { m: 64, k: 784, n: 128 }), None);
}

/// The proof trusted kernels rely on: a matmul whose views are smaller than its sizes address
/// does not run (on either device, in either mode), and the device says which view.
fn views_too_small_for_the_product_are_refused(dev: &mut Device) {
    let (a, b) = (dev.upload(&[1.0; 6]).unwrap(), dev.upload(&[1.0; 6]).unwrap());
    let out = dev.upload(&[f32::NAN; 4]).unwrap();
    let d = Dims { m: 2, k: 3, n: 2 };
    dev.matmul(Form::NN, d, a, b.slice(0, 5), out, &Epilogue::default());
    let e = format!("{:#}", dev.read(out).unwrap_err());
    assert!(e.contains("B holds 5 values, fewer than the 3×2"), "{e}");
    dev.clear_fault();
    let short_bias = Epilogue { bias: Some(a.slice(0, 1)), ..Epilogue::default() };
    dev.matmul(Form::NN, d, a, b, out, &short_bias);
    assert!(dev.clear_fault().unwrap().contains("the bias holds 1 values"));
    dev.gram(Form::NT, 2, 4, a, out);
    assert!(dev.clear_fault().unwrap().contains("A holds 6 values, fewer than the 2×4"));
    dev.gram(Form::NN, 2, 3, a, out);
    assert!(dev.clear_fault().unwrap().contains("NT (X·Xᵀ) or TN"));
    assert!(dev.read(out).unwrap().iter().all(|v| v.is_nan()), "a refused product wrote its output");
    dev.matmul(Form::NN, d, a, b, out, &Epilogue::default());
    assert_eq!(dev.read(out).unwrap(), vec![3.0; 4]);
}
test_device!(matmul_extents, views_too_small_for_the_product_are_refused);

#[test]
fn the_cpu_has_no_shader_checks_to_set() {
    let e = Device::cpu().set_shader_checks(ShaderChecks::Trusted).unwrap_err().to_string();
    assert!(e.contains("CPU backend runs no shaders"), "{e}");
}
