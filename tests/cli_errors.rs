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
    (&["train", "--optimizer", "adam", "--optim-bits", "7"], 2, "invalid optim_bits 7: use 32 (f32 state), 16"),
    (&["train", "--optimizer", "adam", "--optim-bits", "eight"], 2, "--optim-bits: 'eight' is not valid"),
    (&["train", "--optimizer", "adam", "--optim-bits", "32,8"], 2, "this command takes one width"),
    (&["train", "--optimizer", "sgd", "--momentum", "0.9", "--optim-bits", "8"], 2, "'sgd' has no 8-bit form"),
    (&["train", "--optimizer", "adam", "--amsgrad", "--optim-bits", "8"], 2, "amsgrad has no 8-bit form"),
    (&["bench", "optim", "--optimizer", "sgd", "--optim-bits", "8"], 2, "'sgd' has no 8-bit form"),
    (&["bench", "optim", "--optim-bits", "4"], 2, "invalid optim_bits 4"),
    (&["compare", "--case", "fashion-mnist", "--optim-bits", "12"], 2, "invalid optim_bits 12"),
    (&["compare", "--case", "fashion-mnist", "--optimizers", "sgd", "--optim-bits", "8"], 2, "none of the runs"),
    (&["train", "--batch-size", "0"], 2, "--batch-size must be at least 1"),
    (&["train", "--epochs", "0"], 2, "--epochs must be at least 1"),
    (&["train", "--hidden", "0"], 2, "--hidden needs one or more sizes > 0"),
    (&["train", "--hidden", ","], 2, "--hidden needs one or more sizes > 0"),
    (&["train", "--activation", "gelu"], 2, "invalid value 'gelu' for '--activation <ACTIVATION>'"),
    (&["train", "--activation", "gelu"], 2, "[possible values: relu, sigmoid, tanh, identity]"),
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
