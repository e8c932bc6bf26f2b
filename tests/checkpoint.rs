//! Checkpoints: bit-exact resume on the CPU (at an epoch boundary and from the middle of an
//! epoch), crash safety under SIGKILL while checkpoints are being written, a header PyTorch's
//! safetensors reader accepts, and `descent export`.

mod common;

use descent::app::checkpoint;
use descent::rng::Rng;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SUBSET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/fashion-mnist-subset");

fn train(args: &[&str]) {
    let mut all =
        vec!["train", "--data-dir", SUBSET, "--device", "cpu", "--optimizer", "adam", "--schedule", "cosine:200:10"];
    all.extend_from_slice(args);
    let out = Command::new(env!("CARGO_BIN_EXE_descent")).args(&all).output().unwrap();
    assert!(out.status.success(), "{all:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Train on the subset on the CPU with `optimizer_args` then `args`, asserting success.
fn train_with(optimizer_args: &[&str], args: &[&str]) {
    let mut all = vec!["train", "--data-dir", SUBSET, "--device", "cpu"];
    all.extend_from_slice(optimizer_args);
    all.extend_from_slice(args);
    let out = Command::new(env!("CARGO_BIN_EXE_descent")).args(&all).output().unwrap();
    assert!(out.status.success(), "{all:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A resume from `half` (`epochs` − 1) to `epochs` gives the same file as a straight run.
fn resume_is_bit_exact(
    d: &Path,
    run: impl Fn(&[&str]),
    epochs: &str,
    half: &str,
    width: &[&str],
) -> std::path::PathBuf {
    let (full, mid, resumed) = (d.join("full.safetensors"), d.join("half.safetensors"), d.join("resumed.safetensors"));
    run(&[width, &["--epochs", epochs, "--checkpoint", &s(&full)]].concat());
    run(&[width, &["--epochs", half, "--checkpoint", &s(&mid)]].concat());
    run(&["--epochs", epochs, "--resume", &s(&mid), "--checkpoint", &s(&resumed)]);
    assert_eq!(std::fs::read(&full).unwrap(), std::fs::read(&resumed).unwrap(), "{width:?}");
    full
}

#[test]
fn resume_after_two_epochs_is_bit_identical_to_four_straight() {
    let d = common::temp_dir("resume");
    for shuffle in ["randperm", "dataloader"] {
        let (full, half, resumed) =
            (d.join("full.safetensors"), d.join("half.safetensors"), d.join("resumed.safetensors"));
        train(&["--shuffle", shuffle, "--epochs", "4", "--checkpoint", &s(&full)]);
        train(&["--shuffle", shuffle, "--epochs", "2", "--checkpoint", &s(&half)]);
        // The order comes from the checkpoint, whatever --shuffle says now.
        train(&["--epochs", "4", "--resume", &s(&half), "--checkpoint", &s(&resumed)]);
        let (a, ma) = checkpoint::read(&full).unwrap();
        let (b, mb) = checkpoint::read(&resumed).unwrap();
        assert_eq!((ma["epoch"].as_str(), ma["shuffle"].as_str()), ("4", shuffle));
        assert_eq!(ma, mb, "{shuffle}: metadata (RNG, step, position) differ");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.name, y.name);
            let same = x.data.iter().zip(&y.data).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "{shuffle}: {} differs after resuming", x.name);
        }
        assert_eq!(std::fs::read(&full).unwrap(), std::fs::read(&resumed).unwrap());
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// A checkpoint records the gradient clipping (`grad_clip`), and a resume without the flag
/// continues with it: the same file as a straight run, for a norm and a value bound that
/// change the run. Asking a resume for other clipping is an error (exit 2), as another width is.
#[test]
fn a_resume_keeps_the_checkpoints_gradient_clipping() {
    let d = common::temp_dir("clip");
    for clip in [["--clip-grad-norm", "0.05"], ["--clip-grad-value", "0.001"]] {
        let full = resume_is_bit_exact(&d, train, "2", "1", &clip);
        let (_, meta) = checkpoint::read(&full).unwrap();
        let kind = clip[0].trim_start_matches("--clip-grad-");
        assert_eq!(meta["grad_clip"], format!("{kind}:{}", clip[1]));
        // Clipping changes the run: the same two epochs unclipped differ.
        let plain = d.join("plain.safetensors");
        train(&["--epochs", "2", "--checkpoint", &s(&plain)]);
        assert_ne!(std::fs::read(&full).unwrap(), std::fs::read(&plain).unwrap(), "{clip:?} changes nothing");
    }
    let mid = d.join("half.safetensors");
    let out = Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(["train", "--data-dir", SUBSET, "--device", "cpu", "--epochs", "2", "--resume", &s(&mid)])
        .args(["--clip-grad-norm", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--clip-grad-norm: ")
            && err.contains("was made with --clip-grad-value 0.001; a resume continues with the checkpoint's clipping"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// A shuffle position that no run of this model could have reached is refused.
#[test]
fn an_impossible_shuffle_position_is_an_error() {
    let d = common::temp_dir("position");
    let (ck, bad) = (d.join("c.safetensors"), d.join("bad.safetensors"));
    train(&["--epochs", "1", "--checkpoint", &s(&ck)]);
    let (tensors, mut meta) = checkpoint::read(&ck).unwrap();
    meta.insert("rng_draws".into(), "1234".into());
    std::fs::write(&bad, checkpoint::encode(&tensors, &meta).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(["train", "--data-dir", SUBSET, "--epochs", "2", "--resume", &s(&bad)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("'rng_draws' (1234) is not a position of this model's randperm shuffle"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn header_is_what_pytorch_reads_and_export_keeps_the_weights() {
    let d = common::temp_dir("header");
    let (ck, out) = (d.join("c.safetensors"), d.join("model.safetensors"));
    train(&["--epochs", "1", "--checkpoint", &s(&ck)]);
    let bytes = std::fs::read(&ck).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let want = [
        ("0.weight", vec![128, 784]),
        ("0.bias", vec![128]),
        ("2.weight", vec![128, 128]),
        ("2.bias", vec![128]),
        ("4.weight", vec![10, 128]),
        ("4.bias", vec![10]),
    ];
    let mut spans = Vec::new();
    for (name, shape) in &want {
        let t = &header[*name];
        assert_eq!(t["dtype"], "F32", "{name}");
        assert_eq!(t["shape"], serde_json::json!(shape), "{name}");
        let o = t["data_offsets"].as_array().unwrap();
        spans.push((o[0].as_u64().unwrap(), o[1].as_u64().unwrap()));
        for slot in ["exp_avg", "exp_avg_sq"] {
            assert_eq!(header[format!("optimizer.{slot}.{name}")]["shape"], serde_json::json!(shape));
        }
    }
    spans.sort();
    assert_eq!(spans[0].0, 0, "the model's tensors come first");
    let meta = header["__metadata__"].as_object().unwrap();
    assert!(meta.values().all(|v| v.is_string()), "safetensors metadata must be strings");
    assert_eq!(meta["format"], "descent-checkpoint-2");
    let status = Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(["export", "--checkpoint", &s(&ck), "--out", &s(&out)])
        .status()
        .unwrap();
    assert!(status.success());
    let (w, m) = checkpoint::read(&out).unwrap();
    // The weights alone, in the order the safetensors crate stores them: by name.
    let mut names: Vec<&str> = want.iter().map(|w| w.0).collect();
    names.sort();
    assert_eq!(w.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), names);
    assert_eq!(m["format"], "pt");
    let _ = std::fs::remove_dir_all(&d);
}

/// Kill a training process with SIGKILL at random moments while it checkpoints every step;
/// the checkpoint must always load. Then resume from the last one (usually mid-epoch) and
/// compare with an uninterrupted run to the same epoch: bit-identical.
#[test]
#[cfg(unix)]
fn sigkill_while_checkpointing_never_leaves_a_torn_file() {
    let d = common::temp_dir("kill");
    let ck = d.join("c.safetensors");
    let mut rng = Rng::new(2026);
    let mut loaded = 0;
    for round in 0..10 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_descent"))
            .args([
                "train",
                "--data-dir",
                SUBSET,
                "--device",
                "cpu",
                "--optimizer",
                "adam",
                "--schedule",
                "cosine:200:10",
            ])
            .args(["--epochs", "50", "--checkpoint", &s(&ck), "--checkpoint-every", "1"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + rng.below(600) as u64));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if ck.exists() {
            let r = checkpoint::read(&ck);
            assert!(r.is_ok(), "round {round}: the checkpoint does not load: {:#}", r.unwrap_err());
            loaded += 1;
        }
    }
    assert!(loaded >= 5, "only {loaded} of 10 runs got as far as a checkpoint");
    // The last checkpoint belongs to the last run; finish its epoch both ways.
    let (_, meta) = checkpoint::read(&ck).unwrap();
    let epochs = (meta["epoch"].parse::<usize>().unwrap() + 1).to_string();
    let (resumed, straight) = (d.join("resumed.safetensors"), d.join("straight.safetensors"));
    train(&["--epochs", &epochs, "--resume", &s(&ck), "--checkpoint", &s(&resumed)]);
    train(&["--epochs", &epochs, "--checkpoint", &s(&straight)]);
    assert_eq!(
        std::fs::read(&straight).unwrap(),
        std::fs::read(&resumed).unwrap(),
        "resuming from step {} of epoch {} is not bit-identical",
        meta["step_in_epoch"],
        meta["epoch"]
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Checkpoints of format 1 (made before `--seed` followed PyTorch's generator) store a
/// xoshiro256** state; they still resume, shuffling with that generator, and stay format 1.
#[test]
fn format_1_checkpoints_still_resume() {
    let d = common::temp_dir("format1");
    let (ck, old, resumed) = (d.join("c.safetensors"), d.join("old.safetensors"), d.join("resumed.safetensors"));
    train(&["--epochs", "1", "--checkpoint", &s(&ck)]);
    let (tensors, mut meta) = checkpoint::read(&ck).unwrap();
    // The default randperm order takes rows - 1 draws per epoch from its own generator.
    assert_eq!((meta["epoch_rng_draws"].as_str(), meta["rng_draws"].as_str()), ("0", "1999"));
    assert_eq!(meta["shuffle"], "randperm");
    let mut rng = Rng::new(7);
    let join = |r: &Rng| r.state.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
    meta.remove("rng_draws");
    meta.remove("epoch_rng_draws");
    meta.insert("format".into(), "descent-checkpoint-1".into());
    meta.insert("rng".into(), join(&rng));
    meta.insert("epoch_rng".into(), join(&rng));
    std::fs::write(&old, checkpoint::encode(&tensors, &meta).unwrap()).unwrap();
    train(&["--epochs", "2", "--resume", &s(&old), "--checkpoint", &s(&resumed)]);
    let (_, after) = checkpoint::read(&resumed).unwrap();
    assert_eq!(after["format"], "descent-checkpoint-1");
    assert_eq!(after["epoch_rng"], join(&rng));
    let mut order: Vec<u32> = (0..2000).collect();
    rng.shuffle(&mut order);
    assert_eq!(after["rng"], join(&rng), "epoch 2 did not shuffle with the checkpoint's xoshiro state");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn resume_errors_are_clear() {
    let d = common::temp_dir("errors");
    let bad = d.join("bad.safetensors");
    std::fs::write(&bad, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}").unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_descent")).args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(&["train", "--data-dir", SUBSET, "--resume", &s(&bad)]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.safetensors") && err.contains("not valid JSON"), "{err}");
    let (code, err) = run(&["train", "--data-dir", SUBSET, "--resume", &s(&d.join("missing.safetensors"))]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot read"), "{err}");
    let (code, err) = run(&["train", "--checkpoint-every", "5"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--checkpoint"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

/// Training that goes non-finite stops with a message naming the step and tensor, and the last
/// checkpoint written before it stays intact and finite.
#[test]
fn non_finite_training_keeps_the_last_good_checkpoint() {
    let d = common::temp_dir("nan");
    let ck = d.join("c.safetensors");
    let out = Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(["train", "--data-dir", SUBSET, "--device", "cpu", "--optimizer", "sgd", "--lr", "1e9"])
        .args(["--checkpoint", &s(&ck), "--checkpoint-every", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("non-finite gradient") && err.contains("step 3 of 32") && err.contains("last checkpoint is kept"),
        "{err}"
    );
    let (tensors, meta) = checkpoint::read(&ck).unwrap();
    assert_eq!(meta["optimizer_step"], "2", "the checkpoint after the last good step");
    assert!(tensors.iter().all(|t| t.data.iter().all(|v| v.is_finite())));
    let _ = std::fs::remove_dir_all(&d);
}

/// A checkpoint written before the safetensors crate replaced the hand-written reader and
/// writer (adam, 784-8-10, one epoch of the subset, `tests/fixtures/checkpoint-format2.safetensors`)
/// still resumes, and bit-exactly: resumed to two epochs it equals two straight epochs today.
#[test]
fn a_checkpoint_from_before_the_safetensors_crate_resumes_bit_exactly() {
    let d = common::temp_dir("fixture");
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/checkpoint-format2.safetensors");
    let (one, full, resumed) = (d.join("one.safetensors"), d.join("full.safetensors"), d.join("resumed.safetensors"));
    // Today's first epoch computes the same numbers the fixture holds.
    train(&["--hidden", "8", "--epochs", "1", "--checkpoint", &s(&one)]);
    let (old, old_meta) = checkpoint::read(Path::new(fixture)).unwrap();
    let (new, new_meta) = checkpoint::read(&one).unwrap();
    assert_eq!(old_meta, new_meta);
    let mut old_sorted = old.clone();
    old_sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut new_sorted = new.clone();
    new_sorted.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(old_sorted.len(), 12, "4 parameter tensors, each with exp_avg and exp_avg_sq");
    for (a, b) in old_sorted.iter().zip(&new_sorted) {
        assert_eq!((&a.name, &a.shape), (&b.name, &b.shape));
        assert!(a.data.iter().zip(&b.data).all(|(x, y)| x.to_bits() == y.to_bits()), "{} differs", a.name);
    }
    // Resuming the old file gives the same file as two straight epochs.
    train(&["--hidden", "8", "--epochs", "2", "--checkpoint", &s(&full)]);
    train(&["--epochs", "2", "--resume", fixture, "--checkpoint", &s(&resumed)]);
    assert_eq!(std::fs::read(&full).unwrap(), std::fs::read(&resumed).unwrap());
    let _ = std::fs::remove_dir_all(&d);
}

/// Schedule-Free AdamW: a resume is bit-exact (its host scalars are recomputed from the step
/// count), the checkpoint says its parameters are y (train mode), and `export` writes x, the
/// parameters it evaluates with: y + (1 − 1/β1)·(z − y). At 32 and 16 bits.
#[test]
fn schedule_free_resumes_bit_exactly_and_exports_x() {
    let d = common::temp_dir("schedulefree");
    let run = |args: &[&str]| {
        train_with(&["--optimizer", "schedulefree_adamw", "--warmup-steps", "20", "--hidden", "32"], args)
    };
    for bits in ["32", "16"] {
        let full = resume_is_bit_exact(&d, run, "3", "2", &["--optim-bits", bits]);
        let out = d.join("x.safetensors");
        let (tensors, meta) = checkpoint::read(&full).unwrap();
        assert_eq!(meta["optimizer_mode"], "train");
        let status = Command::new(env!("CARGO_BIN_EXE_descent"))
            .args(["export", "--checkpoint", &s(&full), "--out", &s(&out)])
            .status()
            .unwrap();
        assert!(status.success());
        let (weights, _) = checkpoint::read(&out).unwrap();
        assert_eq!(weights.len(), 4);
        for w in &weights {
            let y = tensors.iter().find(|t| t.name == w.name).unwrap();
            let z = tensors.iter().find(|t| t.name == format!("optimizer.z.{}", w.name)).unwrap();
            let mut moved = 0;
            // The switch's weight as the host computes it: in f64, handed to the f32 pass.
            let weight = (1.0 - 1.0 / 0.9f64) as f32;
            for i in 0..w.data.len() {
                let x = y.data[i] + weight * (z.data[i] - y.data[i]);
                assert_eq!(w.data[i].to_bits(), x.to_bits(), "{bits} bits: {}[{i}]", w.name);
                moved += (w.data[i] != y.data[i]) as usize;
            }
            assert!(moved > 0, "{}: x equals y everywhere", w.name);
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// Adafactor: its row and column statistics are checkpointed under PyTorch's state names and
/// shapes (`row_var` [rows, 1], `col_var` [1, cols], `variance` for biases), and a resume is
/// bit-exact.
#[test]
fn adafactor_checkpoints_its_factored_state() {
    let d = common::temp_dir("adafactor");
    let run = |args: &[&str]| {
        let mut all =
            vec!["train", "--data-dir", SUBSET, "--device", "cpu", "--optimizer", "adafactor", "--hidden", "32"];
        all.extend_from_slice(args);
        let out = Command::new(env!("CARGO_BIN_EXE_descent")).args(&all).output().unwrap();
        assert!(out.status.success(), "{all:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let (full, half, resumed) = (d.join("full.safetensors"), d.join("half.safetensors"), d.join("resumed.safetensors"));
    run(&["--epochs", "3", "--checkpoint", &s(&full)]);
    run(&["--epochs", "2", "--checkpoint", &s(&half)]);
    run(&["--epochs", "3", "--resume", &s(&half), "--checkpoint", &s(&resumed)]);
    assert_eq!(std::fs::read(&full).unwrap(), std::fs::read(&resumed).unwrap());
    let (tensors, _) = checkpoint::read(&full).unwrap();
    let shape = |name: &str| tensors.iter().find(|t| t.name == name).map(|t| t.shape.clone());
    assert_eq!(shape("optimizer.row_var.0.weight"), Some(vec![32, 1]));
    assert_eq!(shape("optimizer.col_var.0.weight"), Some(vec![1, 784]));
    assert_eq!(shape("optimizer.variance.0.bias"), Some(vec![32]));
    assert_eq!(shape("optimizer.row_var.2.weight"), Some(vec![10, 1]));
    let rows = tensors.iter().find(|t| t.name == "optimizer.row_var.0.weight").unwrap();
    assert!(rows.data.iter().all(|&x| x > 0.0), "the row statistics were written");
    let _ = std::fs::remove_dir_all(&d);
}

/// Muon: a tensor's checkpointed state is its own optimizer's (a matrix Muon steps keeps
/// `momentum_buffer`, every other tensor the auxiliary AdamW's `exp_avg` and `exp_avg_sq`), and
/// a resume is bit-exact, at 32 and 16 bits.
#[test]
fn muon_checkpoints_each_tensors_own_state() {
    let d = common::temp_dir("muon");
    let run = |args: &[&str]| {
        let mut all = vec![
            "train",
            "--data-dir",
            SUBSET,
            "--device",
            "cpu",
            "--optimizer",
            "muon",
            "--lr",
            "0.02",
            "--hidden",
            "32,32",
        ];
        all.extend_from_slice(args);
        let out = Command::new(env!("CARGO_BIN_EXE_descent")).args(&all).output().unwrap();
        assert!(out.status.success(), "{all:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    for bits in ["32", "16"] {
        let (full, half, resumed) =
            (d.join("full.safetensors"), d.join("half.safetensors"), d.join("resumed.safetensors"));
        run(&["--optim-bits", bits, "--epochs", "3", "--checkpoint", &s(&full)]);
        run(&["--optim-bits", bits, "--epochs", "2", "--checkpoint", &s(&half)]);
        run(&["--epochs", "3", "--resume", &s(&half), "--checkpoint", &s(&resumed)]);
        assert_eq!(std::fs::read(&full).unwrap(), std::fs::read(&resumed).unwrap(), "{bits} bits");
        let (tensors, _) = checkpoint::read(&full).unwrap();
        let mut names: Vec<&str> =
            tensors.iter().map(|t| t.name.as_str()).filter(|n| n.starts_with("optimizer.")).collect();
        names.sort();
        // 784-32-32-10: the middle matrix is Muon's; the first and last, and the biases, AdamW's.
        let want = [
            "optimizer.exp_avg.0.bias",
            "optimizer.exp_avg.0.weight",
            "optimizer.exp_avg.2.bias",
            "optimizer.exp_avg.4.bias",
            "optimizer.exp_avg.4.weight",
            "optimizer.exp_avg_sq.0.bias",
            "optimizer.exp_avg_sq.0.weight",
            "optimizer.exp_avg_sq.2.bias",
            "optimizer.exp_avg_sq.4.bias",
            "optimizer.exp_avg_sq.4.weight",
            "optimizer.momentum_buffer.2.weight",
        ];
        assert_eq!(names, want, "{bits} bits");
        let buf = tensors.iter().find(|t| t.name == "optimizer.momentum_buffer.2.weight").unwrap();
        assert_eq!(buf.shape, vec![32, 32]);
        assert!(buf.data.iter().any(|&x| x != 0.0), "the momentum buffer was written");
    }
    let _ = std::fs::remove_dir_all(&d);
}
