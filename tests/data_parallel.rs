//! Data-parallel steps on the CPU backend: gradients summed over row slices equal the per-op
//! path's for graphs whose loss adds up over rows (means, sums, penalties, sums over axis 0,
//! products over the batch), graphs that mix rows fall back with the op named, a step that
//! writes what it did not declare is refused, and training gives the same bits on 1, 2 and 3
//! threads on either path.

use anyhow::Result;
use descent::app::train::{ShuffleOrder, TrainConfig, Trainer};
use descent::autograd::data_parallel::{DataParallel, RowSlice, StepPath, StepRun};
use descent::autograd::{Tape, Var};
use descent::backend::{Act, Axis, Device, Form, IGNORE_INDEX};
use descent::optim::{OptimConfig, Schedule};
use descent::reference::{ABS_TOL, REL_TOL};
use descent::rng::Rng;
use descent::tensor::{Tensor, View};

const ROWS: usize = 37;
const IN: usize = 6;
const HID: usize = 5;
const CLASSES: usize = 3;

fn rand(n: usize, seed: u64) -> Vec<f32> {
    Rng::new(seed).uniform_vec(n, -1.0, 1.0)
}

/// A small problem on the main device: data on the host, parameters and their gradient
/// buffers (poisoned) on the device.
struct Problem {
    x: Vec<f32>,
    target: Vec<f32>,
    labels: Vec<f32>,
    w1: View,
    b1: View,
    w2: View,
    grads: [View; 3],
}

impl Problem {
    fn new(dev: &mut Device, ignore_some: bool) -> Problem {
        let labels = (0..ROWS)
            .map(|r| if ignore_some && r % 5 == 2 { IGNORE_INDEX as f32 } else { (r * 7 % CLASSES) as f32 })
            .collect();
        let grads = [HID * IN, HID, CLASSES * HID].map(|n| dev.upload(&vec![777.0; n]).unwrap());
        Problem {
            x: rand(ROWS * IN, 1),
            target: rand(ROWS * CLASSES, 2),
            labels,
            w1: dev.upload(&rand(HID * IN, 3)).unwrap(),
            b1: dev.upload(&rand(HID, 4)).unwrap(),
            w2: dev.upload(&rand(CLASSES * HID, 5)).unwrap(),
            grads,
        }
    }

    /// The slice's inputs and the two layers: (x, hidden, logits, w2).
    fn forward(&self, tape: &mut Tape, s: RowSlice) -> Result<(Var, Var, Var, Var)> {
        let x = tape.constant(&self.x[s.start * IN..(s.start + s.rows) * IN], &[s.rows, IN])?;
        let w1 = tape.param(Tensor::new(self.w1, &[HID, IN])?, self.grads[0])?;
        let b1 = tape.param(Tensor::new(self.b1, &[HID])?, self.grads[1])?;
        let w2 = tape.param(Tensor::new(self.w2, &[CLASSES, HID])?, self.grads[2])?;
        let h = tape.linear(x, w1, Some(b1), Act::Tanh)?;
        let logits = tape.linear(h, w2, None, Act::Identity)?;
        Ok((x, h, logits, w2))
    }

    fn target(&self, tape: &mut Tape, s: RowSlice) -> Result<Var> {
        tape.constant(&self.target[s.start * CLASSES..(s.start + s.rows) * CLASSES], &[s.rows, CLASSES])
    }

    fn labels(&self, tape: &mut Tape, s: RowSlice) -> Result<View> {
        let y = tape.device().upload(&self.labels[s.start..s.start + s.rows])?;
        tape.adopt(y);
        Ok(y)
    }

    fn read_grads(&self, dev: &mut Device) -> Vec<Vec<f32>> {
        self.grads.iter().map(|&g| dev.read(g).unwrap()).collect()
    }

    fn poison(&self, dev: &mut Device) {
        for g in self.grads {
            dev.fill(g, 777.0);
        }
    }
}

type Build = fn(&Problem, &mut Tape, RowSlice) -> Result<Var>;

/// The step on `path` with slices of 8 rows (37 rows: four of 8 and one of 5).
fn run(dev: &mut Device, p: &Problem, path: StepPath, build: Build) -> (StepRun, Vec<Vec<f32>>) {
    p.poison(dev);
    let mut dp = DataParallel::new(path, 8, &p.grads, &[]).unwrap();
    let run = dp.backward(dev, ROWS, |tape, s| build(p, tape, s)).unwrap();
    (run, p.read_grads(dev))
}

fn assert_close(got: &[Vec<f32>], want: &[Vec<f32>], what: &str) {
    for (t, (g, w)) in got.iter().zip(want).enumerate() {
        for (i, (&a, &b)) in g.iter().zip(w).enumerate() {
            let tol = ABS_TOL + REL_TOL * 10.0 * (b.abs() as f64);
            assert!(((a - b) as f64).abs() <= tol, "{what}: tensor {t} element {i}: slices {a}, per op {b}");
        }
    }
}

fn cross_entropy(p: &Problem, tape: &mut Tape, s: RowSlice) -> Result<Var> {
    let (_, _, logits, _) = p.forward(tape, s)?;
    let y = p.labels(tape, s)?;
    tape.softmax_ce(logits, y, None)
}

fn mse_plus_penalty(p: &Problem, tape: &mut Tape, s: RowSlice) -> Result<Var> {
    let (_, _, logits, w2) = p.forward(tape, s)?;
    let t = p.target(tape, s)?;
    let mse = tape.mse(logits, t)?;
    let sq = tape.mul(w2, w2)?;
    let l2 = tape.sum(sq)?;
    let l2 = tape.scale(l2, 0.01)?;
    tape.add(mse, l2)
}

fn sum_over_the_batch(p: &Problem, tape: &mut Tape, s: RowSlice) -> Result<Var> {
    let (_, _, logits, _) = p.forward(tape, s)?;
    let t = p.target(tape, s)?;
    let d = tape.sub(logits, t)?;
    let sq = tape.mul(d, d)?;
    let total = tape.sum(sq)?;
    tape.scale(total, 1.0 / s.batch_rows as f32)
}

fn means_over_axis_0(p: &Problem, tape: &mut Tape, s: RowSlice) -> Result<Var> {
    let (_, h, logits, _) = p.forward(tape, s)?;
    let col_means = tape.mean_axis(h, Axis::Rows)?;
    let a = tape.sum(col_means)?;
    let e = tape.unary(descent::backend::UnaryOp::Exp, logits)?;
    let b = tape.mean(e)?;
    let ab = tape.sub(b, a)?;
    tape.add_scalar(ab, 3.0)
}

fn sums_over_axis_0_and_a_batch_product(p: &Problem, tape: &mut Tape, s: RowSlice) -> Result<Var> {
    let (x, h, _, _) = p.forward(tape, s)?;
    let col_sums = tape.sum_axis(h, Axis::Rows)?;
    let a = tape.sum(col_sums)?;
    // xᵀ·h sums a product over the batch's rows: linear in rows, so slices add up.
    let xh = tape.matmul(Form::TN, x, h)?;
    let w = tape.constant(&rand(IN * HID, 9), &[IN, HID])?;
    let weighted = tape.mul(xh, w)?;
    let b = tape.sum(weighted)?;
    tape.add(a, b)
}

fn log_softmax_likelihood(p: &Problem, tape: &mut Tape, s: RowSlice) -> Result<Var> {
    let (_, _, logits, _) = p.forward(tape, s)?;
    let l = tape.log_softmax(logits)?;
    let hot: Vec<f32> =
        (0..s.rows * CLASSES).map(|i| ((s.start + i / CLASSES) * 7 % CLASSES == i % CLASSES) as u8 as f32).collect();
    let y = tape.constant(&hot, &[s.rows, CLASSES])?;
    let picked = tape.mul(l, y)?;
    let total = tape.sum(picked)?;
    tape.scale(total, -1.0 / s.batch_rows as f32)
}

#[test]
fn slices_give_the_per_op_gradients_when_the_loss_adds_up() {
    let mut dev = Device::cpu();
    let cases: [(&str, Build, bool); 7] = [
        ("cross-entropy", cross_entropy, false),
        ("cross-entropy with ignored rows", cross_entropy, true),
        ("mse + L2 penalty", mse_plus_penalty, false),
        ("a sum over the batch", sum_over_the_batch, false),
        ("means over axis 0", means_over_axis_0, false),
        ("sums over axis 0 and xᵀ·h", sums_over_axis_0_and_a_batch_product, false),
        ("a likelihood through log_softmax (a row maximum inside)", log_softmax_likelihood, false),
    ];
    for (what, build, ignore) in cases {
        let p = Problem::new(&mut dev, ignore);
        let (per_op_run, per_op) = run(&mut dev, &p, StepPath::PerOp, build);
        assert!(matches!(per_op_run, StepRun::PerOp { .. }), "{what}");
        let (slices_run, slices) = run(&mut dev, &p, StepPath::DataParallel, build);
        assert_eq!(slices_run, StepRun::DataParallel { slices: 5 }, "{what}");
        assert!(per_op.iter().flatten().any(|&g| g != 0.0), "{what}: all-zero gradients test nothing");
        assert_close(&slices, &per_op, what);
    }
}

fn squared_mean(p: &Problem, tape: &mut Tape, s: RowSlice) -> Result<Var> {
    let (_, h, _, _) = p.forward(tape, s)?;
    let m = tape.mean(h)?;
    tape.pow(m, 2.0)
}

fn centred_over_the_batch(p: &Problem, tape: &mut Tape, s: RowSlice) -> Result<Var> {
    let (_, h, _, _) = p.forward(tape, s)?;
    let mean = tape.mean_axis(h, Axis::Rows)?;
    let c = tape.sub(h, mean)?;
    let sq = tape.mul(c, c)?;
    tape.mean(sq)
}

fn a_constant_added_to_a_sum(p: &Problem, tape: &mut Tape, s: RowSlice) -> Result<Var> {
    let (_, h, _, _) = p.forward(tape, s)?;
    let total = tape.sum(h)?;
    tape.add_scalar(total, 1.0)
}

fn scaled_by_the_batch_maximum(p: &Problem, tape: &mut Tape, s: RowSlice) -> Result<Var> {
    let (x, h, _, _) = p.forward(tape, s)?;
    let top = tape.max_axis(x, Axis::Rows)?;
    let top = tape.sum(top)?;
    let m = tape.mean(h)?;
    tape.mul(m, top)
}

fn dropout_of_the_hidden_layer(p: &Problem, tape: &mut Tape, s: RowSlice) -> Result<Var> {
    let (_, h, _, _) = p.forward(tape, s)?;
    let d = tape.dropout(h, descent::backend::DropoutMask::new(0.5, 1, 2)?)?;
    tape.mean(d)
}

#[test]
fn losses_that_mix_rows_fall_back_to_the_per_op_path_and_say_why() {
    let mut dev = Device::cpu();
    let p = Problem::new(&mut dev, false);
    let cases: [(&str, Build, &str); 5] = [
        ("the square of a mean", squared_mean, "is a nonlinear function of a sum over rows"),
        ("centring over the batch", centred_over_the_batch, "combines a sum over rows with row-wise values"),
        ("a constant added to a sum", a_constant_added_to_a_sum, "each slice would add it again"),
        ("a maximum over the batch", scaled_by_the_batch_maximum, "takes a maximum across the batch's rows"),
        ("dropout", dropout_of_the_hidden_layer, "draws a dropout mask by element index over the whole batch"),
    ];
    for (what, build, why) in cases {
        let (_, per_op) = run(&mut dev, &p, StepPath::PerOp, build);
        let (r, got) = run(&mut dev, &p, StepPath::DataParallel, build);
        match r {
            StepRun::PerOp { why: said } => {
                assert!(said.contains(why) && said.contains("op "), "{what}: {said}")
            }
            other => panic!("{what}: ran as {other:?}"),
        }
        assert_eq!(got, per_op, "{what}: the fallback is the per-op step itself");
    }
}

#[test]
fn a_step_that_writes_an_undeclared_buffer_is_refused() {
    let mut dev = Device::cpu();
    let p = Problem::new(&mut dev, false);
    let other = dev.upload(&[1.0, 2.0]).unwrap();
    let mut dp = DataParallel::new(StepPath::DataParallel, 8, &p.grads, &[]).unwrap();
    let err = dp
        .backward(&mut dev, ROWS, |tape, s| {
            tape.device().fill(other, 5.0);
            cross_entropy(&p, tape, s)
        })
        .unwrap_err();
    assert!(format!("{err:#}").contains("neither gradients nor accumulators"), "{err:#}");
    assert_eq!(dev.read(other).unwrap(), vec![1.0, 2.0], "the device's own buffer is untouched");
    // The loans are back: the device's buffers are writable again.
    dev.fill(p.w1, 0.5);
    assert_eq!(dev.read(p.w1).unwrap()[0], 0.5);
}

#[test]
fn slices_cover_the_batch_with_no_small_remainder() {
    let dp = DataParallel::new(StepPath::DataParallel, 32, &[], &[]).unwrap();
    let rows = |b: usize| dp.slices(b).iter().map(|s| s.rows).collect::<Vec<_>>();
    assert_eq!(rows(64), vec![32, 32]);
    assert_eq!(rows(100), vec![32, 32, 36]);
    assert_eq!(rows(112), vec![32, 32, 32, 16]);
    for b in [64, 65, 95, 96, 97, 1000] {
        let s = dp.slices(b);
        assert_eq!(s.iter().map(|s| s.rows).sum::<usize>(), b);
        assert!(s.windows(2).all(|w| w[0].start + w[0].rows == w[1].start));
        assert!(s.iter().all(|s| s.rows >= 16 && s.batch_rows == b));
    }
    assert!(DataParallel::new(StepPath::DataParallel, 3, &[], &[]).is_err());
}

fn trainer(path: StepPath) -> Trainer {
    let data = descent::data::load_idx_dataset("fashion-mnist", Some(&descent::data::embedded_subset_dir())).unwrap();
    let config = TrainConfig {
        epochs: 1,
        batch_size: 64,
        seed: 3,
        shuffle: ShuffleOrder::Randperm,
        hidden: vec![128, 64],
        act: Act::Relu,
        optimizer: OptimConfig::defaults("adam").unwrap(),
        schedule: Schedule::Constant,
        eval_batch: 1000,
    };
    let mut t = Trainer::new(Device::cpu(), &data, config).unwrap();
    t.set_cpu_step(path, 16).unwrap();
    t
}

/// The loss and accuracy sums each slice adds go into the trainer's metrics once: an epoch's
/// figures match the per-op path's.
#[test]
fn an_epoch_in_slices_reports_the_per_op_paths_loss_and_accuracy() {
    let (mut a, mut b) = (trainer(StepPath::PerOp), trainer(StepPath::DataParallel));
    let (la, aa, _) = a.train_epoch(|_, _, _| {}, 0).unwrap();
    let (lb, ab, _) = b.train_epoch(|_, _, _| {}, 0).unwrap();
    assert!((la - lb).abs() < 1e-3 * la, "mean loss per op {la}, in slices {lb}");
    assert!((aa - ab).abs() < 0.01, "accuracy per op {aa}, in slices {ab}");
    assert!(la > 0.1 && aa > 0.3, "an epoch that learned nothing tests nothing ({la}, {aa})");
}

/// The trained weights after 30 steps (Adam, the embedded Fashion-MNIST subset, batch 64) on a
/// pool of `threads` threads.
fn trained_bits(path: StepPath, threads: usize) -> Vec<u32> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let mut t = trainer(path);
        let order = t.epoch_order().unwrap();
        for s in 0..30 {
            t.step(order, s * 64, 64).unwrap();
        }
        // Each path is the one asked for: four slices of 16, or per op.
        match (path, t.last_step_run()) {
            (StepPath::DataParallel, Some(StepRun::DataParallel { slices: 4 })) => {}
            (StepPath::Auto, Some(StepRun::PerOp { .. })) => {}
            (_, run) => panic!("{path:?} ran as {run:?}"),
        }
        // The weights and the optimizer's state, as a checkpoint holds them.
        let (tensors, _) = t.checkpoint_contents().unwrap();
        tensors.iter().flat_map(|n| n.data.iter().map(|v| v.to_bits())).collect()
    })
}

#[test]
fn training_gives_the_same_bits_on_1_2_and_3_threads() {
    for path in [StepPath::DataParallel, StepPath::Auto] {
        let one = trained_bits(path, 1);
        for threads in [2, 3] {
            assert!(trained_bits(path, threads) == one, "{path:?}: {threads} threads differ from 1");
        }
    }
}

/// A checkpoint taken in the middle of an epoch in row slices resumes, in row slices, to the
/// bits of the run that was never interrupted.
#[test]
fn a_mid_epoch_resume_in_slices_is_bit_exact() {
    let dir = std::env::temp_dir().join(format!("descent-dp-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (saved, kept) = (dir.join("every.safetensors"), dir.join("step40.safetensors"));
    let mut straight = trainer(StepPath::DataParallel);
    straight.set_checkpoint(Some(saved.clone()), 40);
    straight.run_epoch(|_, _, _| {}, 0).unwrap();
    // The checkpoint of optimizer step 40 (epoch 2, step 8 of 32) is copied before the epoch's
    // end overwrites it.
    let mut copied = false;
    straight
        .run_epoch(
            |step, _, _| {
                if step == 9 && !copied {
                    std::fs::copy(&saved, &kept).unwrap();
                    copied = true;
                }
            },
            1,
        )
        .unwrap();
    assert!(copied);
    let (tensors, meta) = descent::app::checkpoint::read(&kept).unwrap();
    assert_eq!((meta["optimizer_step"].as_str(), meta["step_in_epoch"].as_str()), ("40", "8"));
    let mut resumed = trainer(StepPath::DataParallel);
    resumed.restore(&tensors, &meta, "step 40").unwrap();
    resumed.run_epoch(|_, _, _| {}, 0).unwrap();
    assert_eq!(resumed.last_step_run(), straight.last_step_run());
    let (a, ma) = straight.checkpoint_contents().unwrap();
    let (b, mb) = resumed.checkpoint_contents().unwrap();
    assert_eq!(ma, mb);
    assert!(a.iter().zip(&b).all(|(x, y)| x.data.iter().zip(&y.data).all(|(p, q)| p.to_bits() == q.to_bits())));
    let _ = std::fs::remove_dir_all(&dir);
}
