//! descent in the browser: the engine's WGSL kernels on the visitor's GPU through WebGPU, and
//! the lecture's demos on the CPU backend (single-threaded in wasm). The page's JavaScript
//! (`web/www/`) is another client of the library, as the `descent` command is: each export
//! takes and returns JSON strings in the command's own schemas, and an error rejects with the
//! library's message.
//!
//! GPU work awaits every readback ([`Device::read_async`]); the CPU backend's reads are ready
//! at once, so the demos call the library's ordinary functions.

use anyhow::{bail, ensure, Context, Result};
use descent::app::bench::{self, OptimReport, Variant};
use descent::app::descend::{descend as walk, ewa as ewa_series};
use descent::app::functions::{Function, FUNCTIONS};
use descent::app::parity::{self, ParityConfig};
use descent::app::train::{ShuffleOrder, TrainConfig, Trainer};
use descent::backend::gpu::GpuBackend;
use descent::backend::{Act, Device};
use descent::data::{idx_dataset_from_bytes, IDX_FILES};
use descent::optim::{OptimBits, OptimConfig, Schedule};
use serde::Deserialize;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

fn js(e: anyhow::Error) -> JsError {
    JsError::new(&format!("{e:#}"))
}

/// The lecture's functions: name, formula, variables, default start and lr, drawing window
/// and minima.
#[wasm_bindgen]
pub fn functions() -> String {
    let list: Vec<Value> = FUNCTIONS
        .iter()
        .map(|f| {
            json!({
                "name": f.name, "formula": f.formula, "dims": f.dims, "start": f.start, "lr": f.lr,
                "window": f.window, "minima": f.minima,
            })
        })
        .collect();
    Value::Array(list).to_string()
}

/// `function` at every point of `xs` × `ys` (row-major: one row per y), for contour maps; a
/// 1-D function ignores `ys` and gives one row.
#[wasm_bindgen]
pub fn grid(function: &str, xs: Vec<f32>, ys: Vec<f32>) -> Result<Vec<f32>, JsError> {
    let f = Function::find(function).map_err(js)?;
    let mut dev = Device::cpu();
    let coords = if f.dims == 1 {
        vec![xs]
    } else {
        let (mut cx, mut cy) = (Vec::new(), Vec::new());
        for &y in &ys {
            for &x in &xs {
                cx.push(x);
                cy.push(y);
            }
        }
        vec![cx, cy]
    };
    f.eval_many(&mut dev, &coords).map_err(js)
}

/// One walk of the playground: an optimizer (its JSON form, as replay files write it) with an
/// optional schedule.
#[derive(Deserialize)]
struct Run {
    label: String,
    optimizer: Value,
    #[serde(default)]
    schedule: Option<String>,
}

#[derive(Deserialize)]
struct Walks {
    function: String,
    start: Vec<f32>,
    steps: usize,
    runs: Vec<Run>,
}

/// The playground's walks, the computation of `descent descend`: `{function, start, steps,
/// runs: [{label, optimizer: {name, lr, …}, schedule?}]}` → `[{label, iterates: [{t, x, f,
/// grad, lr}]}]`.
#[wasm_bindgen]
pub fn descend(spec: &str) -> Result<String, JsError> {
    let w: Walks = serde_json::from_str(spec).context("the playground's request").map_err(js)?;
    let f = Function::find(&w.function).map_err(js)?;
    let mut dev = Device::cpu();
    let mut out = Vec::new();
    for (i, r) in w.runs.iter().enumerate() {
        let config = OptimConfig::from_json(&r.optimizer, &format!("runs[{i}].optimizer")).map_err(js)?;
        config.validate().map_err(js)?;
        let schedule = match &r.schedule {
            Some(s) => Schedule::parse(s).map_err(js)?,
            None => Schedule::Constant,
        };
        let iterates = walk(&mut dev, &f, &w.start, &config, &schedule, w.steps).map_err(js)?;
        let iterates: Vec<Value> = iterates
            .into_iter()
            .map(|it| json!({"t": it.t, "x": it.x, "f": it.f, "grad": it.grad, "lr": it.lr}))
            .collect();
        out.push(json!({"label": r.label, "iterates": iterates}));
    }
    Ok(Value::Array(out).to_string())
}

/// The lecture's EWA series (`descent ewa`'s default).
#[wasm_bindgen]
pub fn lecture_series() -> Vec<f64> {
    descent::app::descend::LECTURE_SERIES.split(',').filter_map(|s| s.parse().ok()).collect()
}

/// Exponentially weighted averages of `series` (the lecture's EWA demo).
#[wasm_bindgen]
pub fn ewa(series: Vec<f64>, rho: f64, bias_correction: bool) -> Vec<f64> {
    ewa_series(&series, rho, bias_correction)
}

/// The WebGPU device (opened once per page; opening compiles every kernel) or, with `gpu`
/// false, the CPU backend.
async fn device(gpu: bool) -> Result<Device> {
    if !gpu {
        return Ok(Device::cpu());
    }
    if let Some(d) = GPU.with(|g| g.borrow_mut().take()) {
        return Ok(d);
    }
    open_gpu().await
}

/// A new WebGPU device, named after what the page read from `GPUAdapter.info` (the browser
/// leaves wgpu's adapter name empty).
async fn open_gpu() -> Result<Device> {
    let mut g = GpuBackend::open_async(false, |_| {}).await?;
    ADAPTER_LABEL.with(|l| g.name_adapter(&l.borrow()));
    Ok(Device::from_backend(Box::new(g)))
}

/// Give the GPU device back for the next request.
fn keep(dev: Device) {
    if dev.is_gpu() {
        GPU.with(|g| *g.borrow_mut() = Some(dev));
    }
}

thread_local! {
    static GPU: RefCell<Option<Device>> = const { RefCell::new(None) };
    static ADAPTER_LABEL: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Open the WebGPU device and say what it is (the adapter, its backend); rejects with the
/// reason when the browser has no adapter. `label` names the adapter (vendor, architecture:
/// `GPUAdapter.info`) in every report.
#[wasm_bindgen]
pub async fn gpu_name(label: String) -> Result<String, JsError> {
    ADAPTER_LABEL.with(|l| *l.borrow_mut() = label);
    let dev = device(true).await.map_err(js)?;
    let name = dev.describe();
    keep(dev);
    Ok(name)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParityRequest {
    #[serde(default)]
    seed: u64,
    shapes: Option<Vec<(usize, usize, usize)>>,
    lengths: Option<Vec<usize>>,
    optim_steps: Option<u64>,
    blockwise_lengths: Option<Vec<usize>>,
}

/// `descent parity` on this browser's device: every kernel against the f64 reference on fresh
/// random inputs. Takes `{seed, shapes: [[m,k,n]], lengths, optim_steps, blockwise_lengths}`
/// (each optional: the command's defaults) and returns `descent parity --json`'s rows.
#[wasm_bindgen]
pub async fn parity(request: String, gpu: bool) -> Result<String, JsError> {
    let r: ParityRequest = serde_json::from_str(&request).context("the parity request").map_err(js)?;
    let d = ParityConfig::default();
    let cfg = ParityConfig {
        seed: r.seed,
        shapes: r.shapes.unwrap_or(d.shapes),
        lengths: r.lengths.unwrap_or(d.lengths),
        optim_steps: r.optim_steps.unwrap_or(d.optim_steps),
        blockwise_lengths: r.blockwise_lengths.unwrap_or(d.blockwise_lengths),
    };
    let mut dev = device(gpu).await.map_err(js)?;
    let rows = parity::run_async(&mut dev, &cfg).await;
    keep(dev);
    Ok(serde_json::to_string(&rows.map_err(js)?)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BenchRequest {
    optimizer: String,
    #[serde(default = "f32_state")]
    optim_bits: u32,
    params: usize,
    tensors: usize,
    repeats: usize,
    variants: Vec<String>,
}

fn f32_state() -> u32 {
    32
}

/// `descent bench optim` on this browser's device: the device's copy and streaming bandwidth,
/// then each variant of one optimizer step. Takes `{optimizer, optim_bits, params, tensors,
/// repeats, variants: ["fused_multi_tensor", …]}`; returns `bench optim --json`'s document.
#[wasm_bindgen]
pub async fn bench_optim(request: String, gpu: bool) -> Result<String, JsError> {
    let r: BenchRequest = serde_json::from_str(&request).context("the bench request").map_err(js)?;
    let bits = OptimBits::from_bits(r.optim_bits as u64).map_err(|e| js(anyhow::anyhow!(e)))?;
    let mut variants = Vec::new();
    for v in &r.variants {
        match Variant::ALL.into_iter().find(|x| x.name() == v) {
            Some(x) => variants.push(x),
            None => {
                return Err(js(anyhow::anyhow!(
                    "unknown variant '{v}': fused_multi_tensor, fused_per_tensor or unfused"
                )))
            }
        }
    }
    if r.repeats == 0 || r.tensors == 0 || r.params == 0 {
        return Err(js(anyhow::anyhow!("params, tensors and repeats must be at least 1")));
    }
    let mut dev = device(gpu).await.map_err(js)?;
    let report = measure(&mut dev, &r, bits, &variants).await;
    keep(dev);
    Ok(serde_json::to_string(&report.map_err(js)?)?)
}

async fn measure(dev: &mut Device, r: &BenchRequest, bits: OptimBits, variants: &[Variant]) -> Result<OptimReport> {
    let bw = bench::bandwidth_async(dev, r.params, r.repeats.min(10)).await?;
    let mut report = OptimReport::new(dev, &bw);
    for &v in variants {
        if !bench::variant_supports(v, bits) {
            continue;
        }
        report
            .results
            .push(bench::bench_optim_async(dev, &r.optimizer, bits, v, r.params, r.tensors, &bw, r.repeats).await?);
    }
    Ok(report)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainRequest {
    optimizer: Value,
    #[serde(default)]
    schedule: Option<String>,
    batch_size: usize,
    seed: u64,
    hidden: Vec<usize>,
    #[serde(default = "relu")]
    activation: String,
    #[serde(default = "randperm")]
    shuffle: String,
    /// The planned epochs (a schedule's horizon); the page runs them one call at a time.
    epochs: usize,
}

fn relu() -> String {
    "relu".into()
}

fn randperm() -> String {
    "randperm".into()
}

/// `descent train` in the page: the MLP on an IDX dataset the page downloaded, one epoch per
/// call to [`WebTrainer::epoch`], everything on one device with no readback inside an epoch.
#[wasm_bindgen]
pub struct WebTrainer {
    trainer: Rc<RefCell<Option<Trainer>>>,
    device: String,
}

#[wasm_bindgen]
impl WebTrainer {
    /// Build the model and optimizer from `{optimizer: {name, lr, …}, schedule?, batch_size,
    /// seed, hidden, activation?, shuffle?, epochs}` over the four IDX files (gzip or plain, in
    /// `train-images, train-labels, t10k-images, t10k-labels` order), on WebGPU when `gpu`.
    pub async fn start(request: String, files: Vec<js_sys::Uint8Array>, gpu: bool) -> Result<WebTrainer, JsError> {
        let (trainer, device) = build(&request, files, gpu).await.map_err(js)?;
        Ok(WebTrainer { trainer: Rc::new(RefCell::new(Some(trainer))), device })
    }

    /// What the model trains on ([`Device::describe`]).
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> String {
        self.device.clone()
    }

    /// Train one epoch and evaluate: resolves to `metrics.json`'s epoch row, `{epoch,
    /// train_loss, train_accuracy, test_loss, test_accuracy, seconds}`.
    pub fn epoch(&self) -> js_sys::Promise {
        let cell = self.trainer.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let Some(mut t) = cell.borrow_mut().take() else {
                return Err(JsError::new("an epoch is already running: await it first").into());
            };
            let m = t.run_epoch_async().await;
            *cell.borrow_mut() = Some(t);
            let m = m.map_err(js)?;
            Ok(JsValue::from_str(&serde_json::to_string(&m).map_err(|e| js(e.into()))?))
        })
    }
}

async fn build(request: &str, files: Vec<js_sys::Uint8Array>, gpu: bool) -> Result<(Trainer, String)> {
    let r: TrainRequest = serde_json::from_str(request).context("the training request")?;
    ensure!(files.len() == 4, "four IDX files are needed ({}), got {}", IDX_FILES.join(", "), files.len());
    let mut named = files.into_iter().zip(IDX_FILES).map(|(f, n)| (f.to_vec(), n.to_string()));
    let files = [(); 4].map(|_| named.next().expect("four files"));
    let data = idx_dataset_from_bytes("fashion-mnist", "the page's download", files)?;
    let config = TrainConfig {
        epochs: r.epochs,
        batch_size: r.batch_size,
        seed: r.seed,
        shuffle: ShuffleOrder::parse(&r.shuffle)?,
        hidden: r.hidden,
        act: Act::parse(&r.activation)?,
        optimizer: OptimConfig::from_json(&r.optimizer, "optimizer")?,
        schedule: match &r.schedule {
            Some(s) => Schedule::parse(s)?,
            None => Schedule::Constant,
        },
        eval_batch: 1000,
    };
    let dev = device(gpu).await?;
    let name = dev.describe();
    if gpu && !dev.is_gpu() {
        bail!("no WebGPU device");
    }
    Ok((Trainer::new(dev, &data, config)?, name))
}

/// One self-test check, as the page shows it and `web/selftest.py` reads it.
fn check(name: &str, pass: bool, detail: String) -> Value {
    json!({"name": name, "pass": pass, "detail": detail})
}

/// The playground's first steps against the lecture's numbers (../shared/SPEC.md's worked
/// examples, and the gradient-descent formula's closed form on x² + 10y²), through the same
/// [`descend`] the page draws.
#[wasm_bindgen]
pub fn selftest_playground() -> Result<String, JsError> {
    let gd = |lr: f64| json!({"name": "sgd", "lr": lr});
    // x² + 10y² from (-8, 2) with lr 0.09: x ← (1 − 2·lr)x, y ← (1 − 20·lr)y.
    let elongated: Vec<Vec<f64>> = (1..=3).map(|t| vec![-8.0 * 0.82f64.powi(t), 2.0 * (-0.8f64).powi(t)]).collect();
    let cases = [
        ("GD on x^2 + 10y^2 from (-8, 2), lr 0.09", "elongated", vec![-8.0, 2.0], 0.09, elongated),
        (
            "GD on x^2 + y^2 from (6, 9), lr 0.1 (the lecture: (4.8, 7.2), (3.84, 5.76), (3.072, 4.608))",
            "bowl",
            vec![6.0, 9.0],
            0.1,
            vec![vec![4.8, 7.2], vec![3.84, 5.76], vec![3.072, 4.608]],
        ),
        (
            "GD on x^2 from 70, lr 0.1 (the lecture: 56, 44.8, 35.84)",
            "square",
            vec![70.0],
            0.1,
            vec![vec![56.0], vec![44.8], vec![35.84]],
        ),
    ];
    let mut checks = Vec::new();
    for (name, function, start, lr, want) in cases {
        let spec = json!({"function": function, "start": start, "steps": want.len(),
                          "runs": [{"label": "gd", "optimizer": gd(lr)}]});
        let out: Value = serde_json::from_str(&descend(&spec.to_string())?)?;
        let mut worst = 0f64;
        let mut got_all = Vec::new();
        for (t, w) in want.iter().enumerate() {
            let got: Vec<f64> = serde_json::from_value(out[0]["iterates"][t + 1]["x"].clone())?;
            for (g, w) in got.iter().zip(w) {
                worst = worst.max((g - w).abs() / w.abs().max(1.0));
            }
            got_all.push(got);
        }
        let pass = worst <= descent::reference::REL_TOL;
        checks.push(check(name, pass, format!("got {got_all:?}, worst relative error {worst:.2e}")));
    }
    Ok(Value::Array(checks).to_string())
}

/// The page's training epochs against the native CPU run's (`metrics.json`'s epoch rows, as
/// two JSON arrays): the losses within
/// [`TRAIN_LOSS_REL_TOL`](descent::reference::TRAIN_LOSS_REL_TOL), the accuracies within
/// [`TRAIN_ACCURACY_TOL`](descent::reference::TRAIN_ACCURACY_TOL).
#[wasm_bindgen]
pub fn check_training(native: &str, web: &str) -> Result<String, JsError> {
    use descent::reference::{TRAIN_ACCURACY_TOL, TRAIN_LOSS_REL_TOL};
    let (native, web): (Vec<Value>, Vec<Value>) = (serde_json::from_str(native)?, serde_json::from_str(web)?);
    let mut checks = vec![check(
        "as many epochs as the native run",
        native.len() == web.len() && !web.is_empty(),
        format!("native {}, page {}", native.len(), web.len()),
    )];
    for (e, (n, w)) in native.iter().zip(&web).enumerate() {
        for key in ["train_loss", "test_loss", "train_accuracy", "test_accuracy"] {
            let name = format!("epoch {} {key} matches the native CPU run", e + 1);
            let (Some(a), Some(b)) = (n[key].as_f64(), w[key].as_f64()) else {
                checks.push(check(&name, false, format!("missing: native {:?}, page {:?}", n[key], w[key])));
                continue;
            };
            let loss = key.ends_with("loss");
            let (diff, tol) = if loss {
                ((a - b).abs() / a.abs().max(1.0), TRAIN_LOSS_REL_TOL)
            } else {
                ((a - b).abs(), TRAIN_ACCURACY_TOL)
            };
            let what = if loss { "relative difference" } else { "difference" };
            checks.push(check(
                &name,
                diff <= tol,
                format!("native {a:.6}, page {b:.6}: {what} {diff:.2e} (tolerance {tol:.0e})"),
            ));
        }
    }
    Ok(Value::Array(checks).to_string())
}
