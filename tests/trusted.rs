//! The matmul compiled without wgpu's runtime checks (`ShaderChecks::Trusted`) gives the same
//! bits as the checked one, on lavapipe, for every form and fused epilogue at odd shapes (tile
//! edges, k below and past the tile depth, vec4 and scalar loads), and both agree with the f64
//! reference; and the host's proof that lets it run unchecked (every view holds what the
//! product addresses) refuses views that are too small.

#[macro_use]
mod common;

use descent::backend::gpu::ShaderChecks;
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

#[test]
fn trusted_and_checked_matmuls_give_the_same_bits() {
    let mut checked = common::gpu();
    checked.set_shader_checks(ShaderChecks::Checked).unwrap();
    let mut trusted = common::gpu();
    trusted.set_shader_checks(ShaderChecks::Trusted).unwrap();
    assert!(checked.describe().contains("[checked matmul]") && !trusted.describe().contains("checked"));
    let mut rng = Rng::new(22);
    let mut cases = 0;
    for (m, k, n) in SHAPES {
        let a = rng.uniform_vec(m * k, -1.0, 1.0);
        let b = rng.uniform_vec(k * n, -1.0, 1.0);
        let y = rng.uniform_vec(m * n, -1.0, 1.0);
        let bias = rng.uniform_vec(n, -1.0, 1.0);
        for form in Form::ALL {
            // The forms read A (or B) transposed: the product of the same sizes from other data.
            let epilogues: &[&str] =
                if form == Form::TN { &["none", "colsum"] } else { &["none", "bias+relu", "*tanh'"] };
            for &epilogue in epilogues {
                for offset in [0, 1] {
                    let c = Case { form, d: Dims { m, k, n }, a: &a, b: &b, y: &y, bias: &bias, epilogue, offset };
                    let (want_out, want_cs) = run(&mut checked, &c);
                    let (got_out, got_cs) = run(&mut trusted, &c);
                    let what = format!("{form:?} {m}x{k}x{n} {epilogue} offset {offset}");
                    assert!(
                        want_out.iter().all(|v| !v.is_nan()),
                        "{what}: the checked kernel left an element unwritten"
                    );
                    for (i, (g, w)) in got_out.iter().zip(&want_out).enumerate() {
                        assert_eq!(g.to_bits(), w.to_bits(), "{what}: element {i}: trusted {g}, checked {w}");
                    }
                    assert_eq!(
                        got_cs.map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
                        want_cs.clone().map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
                        "{what}: column sums"
                    );
                    let (_, _, ok) = r::compare(&got_out, &reference(&c), 1e-3, 1e-4);
                    assert!(ok, "{what}: against the f64 reference");
                    if let Some(cs) = want_cs {
                        let want: Vec<f64> = (0..m).map(|i| (0..k).map(|p| a[p * m + i] as f64).sum()).collect();
                        assert!(r::compare(&cs, &want, 1e-3, 1e-4).2, "{what}: column sums against the reference");
                    }
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, SHAPES.len() * (3 + 3 + 2) * 2);
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
