//! Every class of bad input on the command line gets exit code 2 (usage) or 1 (runtime) and a
//! one-line message saying what was wrong and what to do; never a panic or a backtrace.
//! TESTING.md lists the same cases with the messages.

use std::process::Command;

/// (arguments, exit code, text the message must contain).
const CASES: &[(&[&str], i32, &str)] = &[
    (&["train", "--optimizer", "lbfgs"], 2, "unknown optimizer 'lbfgs': use one of sgd, adagrad"),
    (&["train", "--schedule", "linear:3"], 2, "unknown schedule 'linear'"),
    (&["train", "--schedule", "step:5"], 2, "missing a value"),
    (&["train", "--dataset", "imagenet"], 2, "unknown dataset 'imagenet': use one of fashion-mnist"),
    (&["train", "--loss", "mse"], 2, "--loss: the image datasets train with cross-entropy"),
    (&["train", "--dataset", "npy:/no/such/folder"], 2, "npy:/no/such/folder: no such directory"),
    (&["train", "--dataset", "npy:tests/fixtures/npy/sine", "--resume", "x"], 2, "--resume is not available with"),
    (
        &["train", "--dataset", "npy:tests/fixtures/npy/sine"],
        2,
        "is not a class index (a non-negative integer); for float32 regression targets, use --loss mse, l1 or huber",
    ),
    (&["train", "--dataset", "npy:tests/fixtures/npy/blobs", "--loss", "mse"], 2, "float32 ('<f4') is read"),
    (
        &["bench", "epoch", "--device", "cpu", "--dataset", "npy:tests/fixtures/npy/sine"],
        2,
        "only `descent train` trains on",
    ),
    // Enumerated flags are clap value enums: clap names the flag, the value and the choices.
    (&["train", "--device", "tpu"], 2, "invalid value 'tpu' for '--device <DEVICE>'"),
    (&["train", "--device", "tpu"], 2, "[possible values: auto, cpu, gpu]"),
    (&["parity", "--device", "auto"], 2, "[possible values: gpu, cpu, both]"),
    (&["descend", "--function", "cube"], 2, "unknown function 'cube'"),
    (&["train", "--lr", "0"], 2, "invalid lr: 0 (must be a finite number > 0)"),
    (&["train", "--lr=-0.1"], 2, "invalid lr: -0.1"),
    (&["train", "--lr", "nan"], 2, "--lr: NaN is not a finite number"),
    (&["train", "--lr", "inf"], 2, "--lr: inf is not a finite number"),
    (&["train", "--optimizer", "adam", "--betas", "0.9,1.0"], 2, "invalid beta parameter at index 1"),
    (&["train", "--optimizer", "adam", "--betas", "0.9"], 2, "expected two numbers"),
    (&["train", "--optimizer", "adam", "--eps", "0"], 2, "invalid eps: 0"),
    (&["train", "--momentum=-1"], 2, "invalid momentum: -1"),
    (&["train", "--dampening", "2"], 2, "invalid dampening: 2 (must be in [0, 1])"),
    (&["train", "--nesterov"], 2, "nesterov momentum requires a momentum > 0 and zero dampening"),
    (&["train", "--nesterov", "--momentum", "0.9", "--dampening", "0.5"], 2, "nesterov momentum requires"),
    (&["train", "--weight-decay=-1"], 2, "invalid weight-decay: -1"),
    (&["train", "--optimizer", "rmsprop", "--alpha", "1.5"], 2, "invalid alpha: 1.5"),
    (&["train", "--optimizer", "sgd", "--betas", "0.9,0.99"], 2, "'sgd' takes no 'betas'"),
    (&["train", "--optimizer", "nadam", "--rho", "0.9"], 2, "--rho: 'nadam' takes no 'rho'"),
    (&["train", "--optimizer", "muon", "--ns-steps", "100"], 2, "invalid ns-steps: 100 (must be under 100"),
    (
        &["train", "--optimizer", "muon", "--adjust-lr-fn", "bogus"],
        2,
        "--adjust-lr-fn: expected one of \"original\", \"match_rms_adamw\"",
    ),
    (
        &["train", "--optimizer", "muon", "--ns-dtype", "float16"],
        2,
        "--ns-dtype: expected \"float32\" or \"bfloat16\", got \"float16\"",
    ),
    (&["train", "--optimizer", "adam", "--ns-dtype", "bfloat16"], 2, "--ns-dtype: 'adam' takes no 'ns_dtype'"),
    (&["train", "--optimizer", "adafactor", "--d", "0.5"], 2, "invalid d: 0.5 (the clipping threshold must be >= 1"),
    (&["train", "--optimizer", "adafactor", "--optim-bits", "8"], 2, "--optim-bits 8: 'adafactor' has no 8-bit form"),
    (&["train", "--optimizer", "adam", "--maximize", "--eps", "none,1e-3"], 2, "--eps: expected a number"),
    (&["train", "--optimizer", "adadelta", "--rho", "1.5"], 2, "invalid rho: 1.5 (must be in [0, 1])"),
    (
        &["train", "--optimizer", "lion", "--betas", "0.9,1.5"],
        2,
        "invalid beta parameter at index 1: 1.5 (must be in [0, 1])",
    ),
    (&["train", "--optimizer", "nadam", "--momentum-decay=-1"], 2, "invalid momentum-decay: -1"),
    (&["train", "--optimizer", "adam", "--optim-bits", "7"], 2, "invalid optim_bits 7: use 32 (f32 state), 16"),
    (&["train", "--optimizer", "adam", "--optim-bits", "eight"], 2, "--optim-bits: 'eight' is not valid"),
    (&["train", "--optimizer", "adam", "--optim-bits", "32,8"], 2, "this command takes one width"),
    (&["train", "--optimizer", "nadam", "--optim-bits", "8"], 2, "'nadam' has no 8-bit form"),
    (&["train", "--optimizer", "sgd", "--optim-bits", "8"], 2, "SGD without momentum keeps no state"),
    (&["train", "--optimizer", "adam", "--amsgrad", "--optim-bits", "8"], 2, "amsgrad has no 8-bit form"),
    (&["bench", "optim", "--optimizer", "radam", "--optim-bits", "8"], 2, "'radam' has no 8-bit form"),
    (&["bench", "optim", "--optim-bits", "4"], 2, "invalid optim_bits 4"),
    (&["compare", "--case", "fashion-mnist", "--optim-bits", "12"], 2, "invalid optim_bits 12"),
    (&["compare", "--case", "fashion-mnist", "--optimizers", "sgd", "--optim-bits", "8"], 2, "none of the runs"),
    (&["train", "--batch-size", "0"], 2, "--batch-size must be at least 1"),
    (&["train", "--epochs", "0"], 2, "--epochs must be at least 1"),
    (&["train", "--hidden", "0"], 2, "--hidden needs one or more sizes > 0"),
    (&["train", "--hidden", ","], 2, "--hidden needs one or more sizes > 0"),
    (&["train", "--activation", "gelu"], 2, "invalid value 'gelu' for '--activation <ACTIVATION>'"),
    (&["train", "--activation", "gelu"], 2, "[possible values: identity, relu, sigmoid, tanh, leaky_relu]"),
    (&["train", "--shuffle", "random"], 2, "invalid value 'random' for '--shuffle <SHUFFLE>'"),
    (&["train", "--shuffle", "random"], 2, "[possible values: randperm, dataloader]"),
    (&["compare", "--case", "fashion-mnist", "--shuffle", "random"], 2, "[possible values: randperm, dataloader]"),
    (&["train", "--data-dir", "/nonexistent/descent"], 1, "--data-dir /nonexistent/descent: no such directory"),
    (&["train", "--dataset", "mnist", "--data-dir", "/"], 1, "expected train-images-idx3-ubyte"),
    (&["replay", "--spec", "/nonexistent/spec.json"], 2, "cannot read --spec"),
    (&["train", "--resume", "/nonexistent/c.safetensors"], 2, "cannot read /nonexistent/c.safetensors"),
    (&["bench", "optim", "--params", "0"], 2, "--params: '0' must be a whole number"),
    // Larger than the machine holds: refused before allocating (24 GiB here, the CI machine's size).
    (&["train", "--hidden", "100000,100000", "--device", "cpu"], 2, "over the memory available"),
    (&["train", "--hidden", "100000,100000", "--device", "cpu"], 2, "reduce --hidden"),
    (&["train", "--hidden", "100000,100000", "--device", "gpu"], 2, "over the largest buffer"),
    (&["bench", "optim", "--params", "4e9", "--device", "cpu"], 2, "use a smaller --params"),
    (&["descend", "--function", "square", "--plot", "out.svg"], 2, "plots are PNG files"),
    // The library's messages name settings by key; the CLI names them by flag.
    (&["descend", "--function", "cube"], 2, "(descent descend --list)"),
    (&["bench", "matmul", "--shapes", "xx:1x1x1"], 2, "--shapes xx:1x1x1: the form must be nn, nt or tn"),
    (&["compare", "--case", "fashion-mnist", "--optimizers", "bogus"], 2, "--optimizers: 'bogus' is not in"),
    (&["train", "--dataset", "folder:"], 2, "--dataset folder:PATH needs the folder"),
    (&["train", "--dataset", "cifar10", "--data-dir", "/"], 1, "pass --data-dir DIR holding"),
    // Sizes past the host's memory are refused before parity allocates anything.
    (&["parity", "--device", "cpu", "--lengths", "40000000000"], 2, "parity at length 40000000000 needs"),
    (&["parity", "--device", "cpu", "--lengths", "40000000000"], 2, "use smaller --lengths"),
    (&["parity", "--device", "cpu", "--shapes", "100000x100000x100000"], 2, "parity at matmul 100000x100000x100000"),
];

#[test]
fn every_bad_input_gets_a_clear_error() {
    for (args, code, says) in CASES {
        let out = Command::new(env!("CARGO_BIN_EXE_descent")).args(*args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: expected '{says}' in: {err}");
        assert!(!err.contains("panicked") && !err.contains("stack backtrace"), "{args:?}: {err}");
        assert!(err.starts_with("error:"), "{args:?}: {err}");
    }
}

/// No message names the library's API (`Device::cpu`, `data_dir`, `batch_size`) where the
/// command line has a flag for the same setting.
#[test]
fn messages_name_flags_not_the_api() {
    let api = descent::message::Setting::ALL.map(|s| s.api_name());
    for (args, _, _) in CASES {
        let out = Command::new(env!("CARGO_BIN_EXE_descent")).args(*args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        for name in ["Device::", "DeviceChoice::", "data_dir", "batch_size", "FUNCTIONS", "blockwise_lengths"] {
            assert!(api.iter().any(|a| a.contains(name)), "{name} is no longer an API name: update this test");
            assert!(!err.contains(name), "{args:?} names the API's {name}: {err}");
        }
    }
}

/// A first run on a machine without a display (no XDG_RUNTIME_DIR) prints nothing that looks
/// like an error: the GPU probe's driver layers stay quiet.
#[test]
fn a_first_run_prints_no_error_lines() {
    let subset = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/fashion-mnist-subset");
    let out = Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(["train", "--epochs", "1", "--data-dir", subset])
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("NODEVICE_SELECT")
        .output()
        .expect("run descent");
    let all = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("epoch   1/1"), "{all}");
    let bad: Vec<&str> = all.lines().filter(|l| l.to_lowercase().contains("error")).collect();
    assert!(bad.is_empty(), "lines mentioning an error on a quiet first run: {bad:?}");
}

/// Runs descent with `args`; returns the exit code and stderr, after checking that it did not
/// panic and that the message is one `error:` line.
fn run_descent(args: &[&str], setup: impl FnOnce(&mut Command)) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_descent"));
    cmd.args(args);
    setup(&mut cmd);
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked") && !err.contains("stack backtrace"), "{args:?}: {err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("error:")).count(), 1, "{args:?}: {err}");
    (out.status.code(), err)
}

/// A replay whose output cannot be held is refused at once, naming the JSON path and the bound.
#[test]
fn replay_refuses_an_output_past_its_bounds() {
    let d = std::env::temp_dir().join(format!("descent-cli-errors-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let cases = [
        (
            r#""init":[1.0],"quadratic":[1.0],"steps":1000000000000000"#,
            "$.steps: 1000000000000000 steps, over replay's bound of 1000000",
        ),
        (
            r#""init":[1,2,3,4,5,6,7,8,9,10,11],"quadratic":[1,1,1,1,1,1,1,1,1,1,1],"steps":1000000"#,
            "give 11000000 output values, over replay's bound of 10000000",
        ),
    ];
    for (i, (problem, says)) in cases.iter().enumerate() {
        let spec = d.join(format!("spec{i}.json"));
        std::fs::write(&spec, format!(r#"{{"optimizer":{{"name":"sgd","lr":0.1}},{problem}}}"#)).unwrap();
        let started = std::time::Instant::now();
        let (code, err) = run_descent(&["replay", "--spec", &spec.to_string_lossy()], |_| {});
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains(says), "expected '{says}' in: {err}");
        assert!(started.elapsed().as_secs() < 30, "refused only after {:?}", started.elapsed());
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// A checkpoint that cannot be written (here: past the file-size limit, as on a full disk) is
/// a runtime error (exit 1) that leaves the previous checkpoint as it was and no temporary file.
#[test]
#[cfg(unix)]
fn a_failed_checkpoint_write_leaves_no_temporary_file() {
    let subset = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/fashion-mnist-subset");
    let d = std::env::temp_dir().join(format!("descent-cli-errors-ck-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let ck = d.join("c.safetensors").to_string_lossy().into_owned();
    let train =
        ["train", "--data-dir", subset, "--device", "cpu", "--hidden", "8", "--epochs", "1", "--checkpoint", &ck];
    let out = Command::new(env!("CARGO_BIN_EXE_descent")).args(train).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = std::fs::read(&ck).unwrap();
    // The checkpoint is 26 KB; the limit is 4 KiB (8 blocks of 512 bytes). With SIGXFSZ ignored
    // the write fails with EFBIG, as a write to a full disk fails with ENOSPC.
    let exe = env!("CARGO_BIN_EXE_descent");
    let script = "ulimit -f 8; trap '' XFSZ; exec \"$0\" \"$@\"";
    let mut args = vec!["-c", script, exe];
    args.extend(train);
    let (code, err) = {
        let out = Command::new("sh").args(&args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("was not written (any previous version is unchanged)"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read(&ck).unwrap(), before, "the previous checkpoint changed");
    let left: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, [std::ffi::OsString::from("c.safetensors")], "files left behind");
    let _ = std::fs::remove_dir_all(&d);
}
