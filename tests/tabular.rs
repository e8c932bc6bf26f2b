//! f32 datasets (`data::tabular`): `.npy` files made by `tests/fixtures/make_npy_fixture.py`
//! load with their shapes and dtypes checked; batches gathered on the device by a seeded
//! `randperm` equal the host's rows bit for bit; a regression (MSE) and a classification
//! (cross-entropy) trained from them reach their targets on both devices; bad inputs are
//! errors that name what is wrong.

#[macro_use]
mod common;

use descent::autograd::Tape;
use descent::backend::{Act, Axis, Device};
use descent::data::tabular::{from_npy, F32Dataset, Targets};
use descent::nn::Mlp;
use descent::optim::{OptimConfig, Optimizer, Schedule};
use descent::tensor::Tensor;
use descent::torch_rng::TorchGenerator;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/npy").join(name)
}

/// Train `sizes` on `data` for `epochs` with Adam, batches of 32 gathered on the device; the
/// mean loss of the last epoch.
fn train(dev: &mut Device, data: &F32Dataset, sizes: &[usize], epochs: usize, lr: f64) -> (Mlp, f32) {
    let model = Mlp::new(dev, sizes, Act::Tanh, &mut TorchGenerator::new(0)).unwrap();
    let mut opt =
        Optimizer::new(dev, &model.arena, OptimConfig::defaults("adam").unwrap(), Schedule::Constant).unwrap();
    opt.set_lr(lr).unwrap();
    let on_device = data.upload(dev).unwrap();
    let mut shuffle = TorchGenerator::new(1);
    let mut last = 0.0;
    for _ in 0..epochs {
        let order = on_device.upload_order(dev, &shuffle.randperm(data.rows as u32)).unwrap();
        let (mut total, mut batches) = (0.0, 0);
        for start in (0..data.rows).step_by(32) {
            let count = 32.min(data.rows - start);
            let (x, y) = on_device.batch(dev, order, start, count).unwrap();
            let mut tape = Tape::new(dev);
            let input = tape.input_owned(Tensor::new(x, &[count, data.cols]).unwrap());
            let out = model.forward(&mut tape, input).unwrap();
            let loss = match data.targets {
                Targets::Classes { .. } => {
                    tape.adopt(y);
                    tape.softmax_ce(out, y, None).unwrap()
                }
                Targets::Values { width, .. } => {
                    let target = tape.input_owned(Tensor::new(y, &[count, width]).unwrap());
                    tape.mse(out, target).unwrap()
                }
            };
            tape.backward(loss).unwrap();
            total += tape.read(loss).unwrap()[0];
            batches += 1;
            drop(tape);
            opt.step(dev, &model.arena).unwrap();
        }
        dev.free_bytes(order);
        last = total / batches as f32;
    }
    on_device.release(dev);
    (model, last)
}

fn regression_reaches_its_target(dev: &mut Device) {
    let data = from_npy(&fixture("regression_x.npy"), &fixture("regression_y.npy"), None).unwrap();
    assert_eq!((data.rows, data.cols, data.targets.width()), (256, 3, 1));
    let (_, mse) = train(dev, &data, &[3, 32, 32, 1], 150, 0.01);
    assert!(mse < 0.01, "train MSE {mse} on {}", dev.describe());
}
test_device!(npy_regression, regression_reaches_its_target);

fn classification_reaches_its_target(dev: &mut Device) {
    let data = from_npy(&fixture("blobs_x.npy"), &fixture("blobs_y.npy"), Some(3)).unwrap();
    assert_eq!((data.rows, data.cols), (300, 4));
    let (model, _) = train(dev, &data, &[4, 16, 3], 30, 0.01);
    let xv = dev.upload(&data.features).unwrap();
    let mut tape = Tape::new(dev);
    let x = tape.input_owned(Tensor::new(xv, &[data.rows, data.cols]).unwrap());
    let logits = model.forward_no_grad(&mut tape, x).unwrap();
    let pred = tape.argmax_axis(logits, Axis::Cols).unwrap();
    let pred = tape.read(pred).unwrap();
    let Targets::Classes { labels, .. } = &data.targets else { panic!("classes") };
    let acc = pred.iter().zip(labels).filter(|(p, l)| p == l).count() as f64 / data.rows as f64;
    drop(tape);
    assert!(acc > 0.95, "train accuracy {acc} on {}", dev.describe());
}
test_device!(npy_classification, classification_reaches_its_target);

fn batches_are_the_rows(dev: &mut Device) {
    let data = from_npy(&fixture("regression_x.npy"), &fixture("regression_y.npy"), None).unwrap();
    let on_device = data.upload(dev).unwrap();
    let perm = TorchGenerator::new(3).randperm(data.rows as u32);
    let order = on_device.upload_order(dev, &perm).unwrap();
    let (x, y) = on_device.batch(dev, order, 250, 6).unwrap();
    let (gx, gy) = (dev.read(x).unwrap(), dev.read(y).unwrap());
    let Targets::Values { values, .. } = &data.targets else { panic!("values") };
    for (k, &row) in perm[250..].iter().enumerate() {
        let r = row as usize;
        assert_eq!(&gx[k * 3..k * 3 + 3], &data.features[r * 3..r * 3 + 3], "row {k}");
        assert_eq!(gy[k].to_bits(), values[r].to_bits());
    }
    let e = on_device.upload_order(dev, &[0, 256]).unwrap_err().to_string();
    assert!(e.contains("position 1 of the order is row 256, past the dataset's 256 rows"), "{e}");
}
test_device!(batches_gathered_on_the_device, batches_are_the_rows);

#[test]
fn bad_inputs_are_errors() {
    let e = format!("{:#}", from_npy(&fixture("features_f64.npy"), &fixture("regression_y.npy"), None).unwrap_err());
    assert!(e.contains("features_f64.npy: dtype <f8, but float32 ('<f4') is read"), "{e}");
    let e = format!("{:#}", from_npy(&fixture("blobs_x.npy"), &fixture("regression_y.npy"), None).unwrap_err());
    assert!(e.contains("blobs_x.npy has 300 rows") && e.contains("regression_y.npy has 256"), "{e}");
    let e = format!("{:#}", from_npy(&fixture("blobs_x.npy"), &fixture("blobs_y.npy"), Some(2)).unwrap_err());
    assert!(e.contains("row") && e.contains("2 classes"), "{e}");
    let e = format!("{:#}", from_npy(&fixture("missing.npy"), &fixture("blobs_y.npy"), Some(3)).unwrap_err());
    assert!(e.contains("cannot read") && e.contains("missing.npy"), "{e}");
    let e = F32Dataset::regression(vec![1.0, f32::NAN], 1, vec![0.0, 1.0], 1).unwrap_err().to_string();
    assert!(e.contains("feature 0 of row 1 is NaN"), "{e}");
    let e = F32Dataset::regression(vec![1.0; 6], 4, vec![0.0], 1).unwrap_err().to_string();
    assert!(e.contains("6 feature values are not whole rows of 4"), "{e}");
    let e = F32Dataset::classification(vec![1.0; 4], 2, vec![0.0], 2).unwrap_err().to_string();
    assert!(e.contains("2 rows of features but 1 target values"), "{e}");
}
