//! `descent replay`: run an optimizer on a given problem and report its trajectory, so users
//! can check our optimizers against any other framework. The JSON schema is a public
//! interface:
//!
//! input `{"optimizer": {"name": …, <PyTorch-named hyperparameters>}, "schedule": null | {…},
//! "init": [p…]` and either `"grads": [[g…] per step]` or `"quadratic": [a…], "steps": T}`
//! (f = Σ aᵢpᵢ², gradient 2aᵢpᵢ from the current parameters);
//! output `{"params": [[p…] after each step], "lr": [lr used at each step], "state": {name:
//! [final values], "step": T}}`. `"optim_bits": 16 | 8` in the optimizer object keeps the
//! state in bfloat16 or blockwise 8 bits; `state` then holds its values as f32 (dequantized),
//! plus `exp_avg_absmax` / `exp_avg_sq_absmax` at 8 bits when the buffer is quantized (4,096
//! values or more).

use crate::backend::{BinaryOp, Device};
use crate::optim::{OptimConfig, Optimizer, Schedule};
use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

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
            if !["optimizer", "schedule", "init", "grads", "quadratic", "steps"].contains(&key.as_str()) {
                bail!("$.{key}: unknown key (expected optimizer, schedule, init, and grads or quadratic + steps)");
            }
        }
        let optimizer = OptimConfig::from_json(obj.get("optimizer").context("$.optimizer: missing")?, "$.optimizer")?;
        let schedule = Schedule::from_json(obj.get("schedule").unwrap_or(&Value::Null), "$.schedule")?;
        let init = numbers(obj.get("init").context("$.init: missing")?, "$.init")?;
        if init.is_empty() {
            bail!("$.init: needs at least one parameter");
        }
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
                Problem::Quadratic { a, steps: steps as usize }
            }
        };
        Ok(ReplaySpec { optimizer, schedule, init, problem })
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
}

impl Trajectory {
    pub fn to_json(&self) -> Value {
        let mut state = Map::new();
        for (name, v) in &self.state {
            state.insert((*name).into(), json!(v));
        }
        state.insert("step".into(), json!(self.steps));
        json!({"params": self.params, "lr": self.lr, "state": state})
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
    let mut opt = Optimizer::for_len(dev, spec.optimizer.clone(), spec.schedule.clone(), n)?;
    let mut out = Trajectory { params: Vec::new(), lr: Vec::new(), state: Vec::new(), steps: 0 };
    for t in 0..spec.steps() {
        match (&spec.problem, two_a) {
            (Problem::Grads(rows), _) => dev.write(grads, &rows[t])?,
            (_, Some(a2)) => dev.binary(BinaryOp::Mul, a2, params, grads),
            _ => unreachable!("a quadratic has its coefficients uploaded"),
        }
        out.lr.push(opt.lr_at(opt.step));
        opt.step_views(dev, params, grads);
        out.params.push(dev.read(params)?);
    }
    out.state = opt.read_state(dev)?;
    out.steps = opt.step;
    Ok(out)
}
