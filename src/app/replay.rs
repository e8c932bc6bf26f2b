//! `descent replay`: run an optimizer on a given problem and report its trajectory, so users
//! can check our optimizers against any other framework. The JSON schema is a public
//! interface:
//!
//! input `{"optimizer": {"name": …, <PyTorch-named hyperparameters>}, "schedule": null | {…},
//! "init": [p…]` and either `"grads": [[g…] per step]` or `"quadratic": [a…], "steps": T}`
//! (f = Σ aᵢpᵢ², gradient 2aᵢpᵢ from the current parameters), and optionally `"shape": [d…]`
//! (default `[len(init)]`): the parameters as one tensor of that shape, row-major, each row of
//! `grads` a flattened gradient (Adafactor factors the last two dimensions);
//! output `{"params": [[p…] after each step], "lr": [lr used at each step], "state": {name:
//! [final values], "step": T}}`. `"optim_bits": 16 | 8` in the optimizer object keeps the
//! state in bfloat16 or blockwise 8 bits; `state` then holds its values as f32 (dequantized),
//! plus `exp_avg_absmax` / `exp_avg_sq_absmax` at 8 bits when the buffer is quantized (4,096
//! values or more). For `schedulefree_adamw`, `params` holds y (what it steps) and the output
//! adds `"eval_params": [x…]`: the parameters after the switch to eval mode at the end.
//!
//! A replay holds its whole output in memory, so a spec is refused (before anything runs) past
//! [`MAX_STEPS`] steps, past [`MAX_OUTPUT_VALUES`] parameter values in `params`, or when that
//! output would not fit in the host's available memory.

use crate::backend::{BinaryOp, Device};
use crate::optim::{Mode, OptimConfig, Optimizer, Schedule};
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

/// The most steps one replay runs.
pub const MAX_STEPS: usize = 1_000_000;
/// The most values `params` may hold (steps × parameters). At the bound the JSON is 225 MB and
/// the process peaks at 475 MB (measured: 10 parameters, 10⁶ steps of SGD on the CPU).
pub const MAX_OUTPUT_VALUES: usize = 10_000_000;
/// An upper bound on the host bytes one output value costs while the JSON is built: the f32,
/// its `serde_json::Value` (32 bytes) and its text; the measurement above gives about 47.
const BYTES_PER_OUTPUT_VALUE: u64 = 64;

/// Refuse a replay whose output is past the bounds above or the host's available memory.
fn check_output(steps: usize, n: usize, path: &str) -> Result<()> {
    if steps > MAX_STEPS {
        bail!("{path}: {steps} steps, over replay's bound of {MAX_STEPS} (its output holds every step's parameters); use fewer steps");
    }
    let values = steps.saturating_mul(n);
    if values > MAX_OUTPUT_VALUES {
        bail!("{path}: {steps} steps of {n} parameters give {values} output values, over replay's bound of {MAX_OUTPUT_VALUES}; use fewer steps or parameters");
    }
    let bytes = values as u64 * BYTES_PER_OUTPUT_VALUE;
    if let Some(free) = crate::backend::host::host_available_bytes().filter(|&free| bytes > free) {
        bail!("{path}: the output of {values} values needs about {} MB, over the host's {} MB available; use fewer steps or parameters", bytes >> 20, free >> 20);
    }
    Ok(())
}

/// The gradients of a replay: a fixed sequence, or those of a quadratic.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    Grads(Vec<Vec<f32>>),
    Quadratic { a: Vec<f32>, steps: usize },
}

#[derive(Clone, Debug)]
pub struct ReplaySpec {
    pub optimizer: OptimConfig,
    pub schedule: Schedule,
    pub init: Vec<f32>,
    /// The parameters' shape (its product is `init`'s length).
    pub shape: Vec<usize>,
    pub problem: Problem,
}

fn numbers(v: &Value, path: &str) -> Result<Vec<f32>> {
    let arr = v.as_array().with_context(|| format!("{path}: expected an array of numbers"))?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| {
            let f = x.as_f64().with_context(|| format!("{path}[{i}]: expected a number, got {x}"))?;
            if !f.is_finite() {
                bail!("{path}[{i}]: {f} is not finite");
            }
            Ok(f as f32)
        })
        .collect()
}

impl ReplaySpec {
    /// Parse and check a spec; every error names the JSON path of the problem.
    pub fn parse(text: &str) -> Result<ReplaySpec> {
        let v: Value = serde_json::from_str(text).map_err(|e| anyhow::anyhow!("invalid JSON: {e}"))?;
        let obj = v.as_object().context("$: expected a JSON object")?;
        for key in obj.keys() {
            if !["optimizer", "schedule", "init", "shape", "grads", "quadratic", "steps"].contains(&key.as_str()) {
                bail!(
                    "$.{key}: unknown key (expected optimizer, schedule, init, shape, and grads or quadratic + steps)"
                );
            }
        }
        let optimizer = OptimConfig::from_json(obj.get("optimizer").context("$.optimizer: missing")?, "$.optimizer")?;
        let schedule = Schedule::from_json(obj.get("schedule").unwrap_or(&Value::Null), "$.schedule")?;
        let init = numbers(obj.get("init").context("$.init: missing")?, "$.init")?;
        if init.is_empty() {
            bail!("$.init: needs at least one parameter");
        }
        let shape = match obj.get("shape") {
            None => vec![init.len()],
            Some(v) => {
                let dims = v.as_array().context("$.shape: expected an array of dimensions, e.g. [3, 4]")?;
                let mut shape = Vec::new();
                for (i, d) in dims.iter().enumerate() {
                    let d = d
                        .as_u64()
                        .filter(|&d| d > 0)
                        .with_context(|| format!("$.shape[{i}]: expected a whole number >= 1, got {d}"))?;
                    shape.push(usize::try_from(d).unwrap_or(usize::MAX));
                }
                let product = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
                if shape.is_empty() || product != Some(init.len()) {
                    bail!(
                        "$.shape: {shape:?} holds {} values but init has {}",
                        product.map_or("too many".to_string(), |p| p.to_string()),
                        init.len()
                    );
                }
                shape
            }
        };
        optimizer.check_shape(&shape).context("$.shape")?;
        let problem = match (obj.get("grads"), obj.get("quadratic")) {
            (Some(_), Some(_)) => bail!("$: give either \"grads\" or \"quadratic\", not both"),
            (None, None) => bail!("$: missing \"grads\" (a gradient per step) or \"quadratic\" + \"steps\""),
            (Some(g), None) => {
                if obj.contains_key("steps") {
                    bail!(
                        "$.steps: only used with \"quadratic\" (with \"grads\" the step count is the number of rows)"
                    );
                }
                let rows = g.as_array().context("$.grads: expected an array of gradient rows")?;
                let mut out = Vec::new();
                for (i, row) in rows.iter().enumerate() {
                    let r = numbers(row, &format!("$.grads[{i}]"))?;
                    if r.len() != init.len() {
                        bail!("$.grads[{i}]: has {} values but init has {}", r.len(), init.len());
                    }
                    out.push(r);
                }
                if out.is_empty() {
                    bail!("$.grads: needs at least one row");
                }
                check_output(out.len(), init.len(), "$.grads")?;
                Problem::Grads(out)
            }
            (None, Some(q)) => {
                let a = numbers(q, "$.quadratic")?;
                if a.len() != init.len() {
                    bail!("$.quadratic: has {} coefficients but init has {}", a.len(), init.len());
                }
                let steps = obj.get("steps").context("$.steps: missing (needed with \"quadratic\")")?;
                let steps = steps
                    .as_u64()
                    .filter(|&s| s > 0)
                    .with_context(|| format!("$.steps: expected a whole number >= 1, got {steps}"))?;
                let steps = usize::try_from(steps).unwrap_or(usize::MAX);
                check_output(steps, init.len(), "$.steps")?;
                Problem::Quadratic { a, steps }
            }
        };
        Ok(ReplaySpec { optimizer, schedule, init, shape, problem })
    }

    pub fn steps(&self) -> usize {
        match &self.problem {
            Problem::Grads(g) => g.len(),
            Problem::Quadratic { steps, .. } => *steps,
        }
    }
}

/// What a replay produced.
#[derive(Clone, Debug)]
pub struct Trajectory {
    pub params: Vec<Vec<f32>>,
    pub lr: Vec<f64>,
    pub state: Vec<(&'static str, Vec<f32>)>,
    pub steps: u64,
    /// Schedule-Free: the parameters in eval mode (x) after the last step.
    pub eval_params: Option<Vec<f32>>,
}

impl Trajectory {
    pub fn to_json(&self) -> Value {
        let mut state = Map::new();
        for (name, v) in &self.state {
            state.insert((*name).into(), json!(v));
        }
        state.insert("step".into(), json!(self.steps));
        let mut out = json!({"params": self.params, "lr": self.lr, "state": state});
        if let Some(x) = &self.eval_params {
            out["eval_params"] = json!(x);
        }
        out
    }
}

/// Run the spec through the device's fused optimizer kernel, one launch per step.
pub fn run(dev: &mut Device, spec: &ReplaySpec) -> Result<Trajectory> {
    let n = spec.init.len();
    let params = dev.upload(&spec.init)?;
    let grads = dev.alloc(n)?;
    let two_a = match &spec.problem {
        Problem::Quadratic { a, .. } => Some(dev.upload(&a.iter().map(|x| 2.0 * x).collect::<Vec<_>>())?),
        Problem::Grads(_) => None,
    };
    let mut opt = Optimizer::for_shape(dev, spec.optimizer.clone(), spec.schedule.clone(), &spec.shape)?;
    let mut out = Trajectory { params: Vec::new(), lr: Vec::new(), state: Vec::new(), steps: 0, eval_params: None };
    for t in 0..spec.steps() {
        match (&spec.problem, two_a) {
            (Problem::Grads(rows), _) => dev.write(grads, &rows[t])?,
            (_, Some(a2)) => dev.binary(BinaryOp::Mul, a2, params, grads),
            _ => unreachable!("a quadratic has its coefficients uploaded"),
        }
        out.lr.push(opt.lr_at(opt.step));
        opt.step_views(dev, params, grads)?;
        out.params.push(dev.read(params)?);
    }
    out.state = opt.read_state(dev)?;
    out.steps = opt.step;
    if let OptimConfig::SchedulefreeAdamw(_) = spec.optimizer {
        opt.switch(dev, params, grads, Mode::Eval)?;
        out.eval_params = Some(dev.read(params)?);
    }
    Ok(out)
}
