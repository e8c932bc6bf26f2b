//! Learning-rate schedules. `lr(base, t)` is the rate used for step index `t` (0, 1, …): what
//! PyTorch's scheduler gives when `scheduler.step()` follows every `optimizer.step()`.

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// A learning-rate schedule, as a function of the 0-based step (PyTorch's schedulers,
/// stepped once per optimizer step).
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// The base learning rate throughout.
    Constant,
    /// StepLR: `base · gamma^floor(t / step_size)` (the lecture's "every p steps lr /= k" with
    /// gamma = 1/k).
    Step {
        /// Steps between decays.
        step_size: u64,
        /// Factor applied at each decay.
        gamma: f64,
    },
    /// ExponentialLR: `base · gamma^t`.
    Exponential {
        /// Factor applied every step.
        gamma: f64,
    },
    /// The lecture's (and Keras') form `base · decay_rate^(t / decay_steps)`, floored when
    /// `staircase`.
    ExponentialDecay {
        /// λ: the factor per `decay_steps` steps.
        decay_rate: f64,
        /// k: steps per factor of λ.
        decay_steps: u64,
        /// Decay in whole periods (`floor(s / k)`) rather than continuously.
        staircase: bool,
    },
    /// Linear warmup `base · (t + 1) / warmup_steps` for `t < warmup_steps`, then
    /// CosineAnnealingLR over `t_max − warmup_steps` steps:
    /// `eta_min + (base − eta_min)(1 + cos(π s / (t_max − warmup_steps))) / 2`, s = t − warmup.
    /// Equals PyTorch's SequentialLR(LinearLR(1/warmup, 1, warmup − 1), CosineAnnealingLR).
    /// Past `t_max` the rate rises again along the same cosine, as CosineAnnealingLR's does
    /// (`lr(t_max + k) = lr(t_max − k)`): give a `t_max` of at least the steps you run.
    Cosine {
        /// The step, counted from 0 with the warm-up included, at which the rate reaches
        /// `eta_min` (the cosine itself spans `t_max − warmup_steps` steps).
        t_max: u64,
        /// The minimum learning rate.
        eta_min: f64,
        /// Steps of linear warm-up before the cosine.
        warmup_steps: u64,
    },
}

impl Schedule {
    /// The learning rate of step `t` (0-based) for base rate `base`.
    pub fn lr(&self, base: f64, t: u64) -> f64 {
        match *self {
            Schedule::Constant => base,
            Schedule::Step { step_size, gamma } => base * gamma.powi((t / step_size) as i32),
            Schedule::Exponential { gamma } => base * gamma.powi(t as i32),
            Schedule::ExponentialDecay { decay_rate, decay_steps, staircase } => {
                let e = if staircase { (t / decay_steps) as f64 } else { t as f64 / decay_steps as f64 };
                base * decay_rate.powf(e)
            }
            Schedule::Cosine { t_max, eta_min, warmup_steps } => {
                if t < warmup_steps {
                    return base * (t + 1) as f64 / warmup_steps as f64;
                }
                let span = (t_max - warmup_steps) as f64;
                let s = (t - warmup_steps) as f64;
                eta_min + (base - eta_min) * (1.0 + (std::f64::consts::PI * s / span).cos()) / 2.0
            }
        }
    }

    /// From the replay JSON: `null`, `{"name": "step", "step_size": 5, "gamma": 0.5}`,
    /// `{"name": "exponential", "gamma": 0.9}`, `{"name": "exponential_decay", "decay_rate":
    /// 0.9, "decay_steps": 5, "staircase": false}`, `{"name": "cosine", "t_max": 100, "eta_min":
    /// 0.0, "warmup_steps": 0}`.
    pub fn from_json(v: &Value, path: &str) -> Result<Schedule> {
        if v.is_null() {
            return Ok(Schedule::Constant);
        }
        let obj = v.as_object().with_context(|| format!("{path}: expected null or an object"))?;
        let name = obj.get("name").and_then(|n| n.as_str()).with_context(|| {
            format!(
                "{path}.name: missing or not a string (one of constant, step, exponential, exponential_decay, cosine)"
            )
        })?;
        let num = |key: &str, default: Option<f64>| -> Result<f64> {
            match obj.get(key) {
                Some(x) => x.as_f64().with_context(|| format!("{path}.{key}: expected a number")),
                None => default.with_context(|| format!("{path}.{key}: missing")),
            }
        };
        let count = |key: &str, default: Option<u64>| -> Result<u64> {
            match obj.get(key) {
                Some(x) => x.as_u64().with_context(|| format!("{path}.{key}: expected a whole number >= 0")),
                None => default.with_context(|| format!("{path}.{key}: missing")),
            }
        };
        let s = match name {
            "constant" => Schedule::Constant,
            "step" => Schedule::Step { step_size: count("step_size", None)?, gamma: num("gamma", Some(0.1))? },
            "exponential" => Schedule::Exponential { gamma: num("gamma", None)? },
            "exponential_decay" => Schedule::ExponentialDecay {
                decay_rate: num("decay_rate", None)?,
                decay_steps: count("decay_steps", Some(1))?,
                staircase: obj.get("staircase").and_then(|b| b.as_bool()).unwrap_or(false),
            },
            "cosine" => Schedule::Cosine {
                t_max: count("t_max", None)?,
                eta_min: num("eta_min", Some(0.0))?,
                warmup_steps: count("warmup_steps", Some(0))?,
            },
            _ => bail!(
                "{path}.name: unknown schedule '{name}' (use constant, step, exponential, exponential_decay or cosine)"
            ),
        };
        s.validate().with_context(|| path.to_string())?;
        Ok(s)
    }

    /// From the command line: `constant`, `step:STEP_SIZE:GAMMA`, `exp:GAMMA`,
    /// `expdecay:RATE:STEPS[:staircase]`, `cosine:T_MAX[:WARMUP[:ETA_MIN]]`.
    pub fn parse(s: &str) -> Result<Schedule> {
        let parts: Vec<&str> = s.split(':').collect();
        let usage = "use constant, step:STEP_SIZE:GAMMA, exp:GAMMA, expdecay:RATE:STEPS[:staircase] or cosine:T_MAX[:WARMUP[:ETA_MIN]]";
        let f = |i: usize| -> Result<f64> {
            parts
                .get(i)
                .with_context(|| format!("schedule '{s}' is missing a value: {usage}"))?
                .parse::<f64>()
                .with_context(|| format!("schedule '{s}': '{}' is not a number", parts[i]))
        };
        let u = |i: usize| -> Result<u64> {
            parts
                .get(i)
                .with_context(|| format!("schedule '{s}' is missing a value: {usage}"))?
                .parse::<u64>()
                .with_context(|| format!("schedule '{s}': '{}' is not a whole number", parts[i]))
        };
        let sched = match parts[0] {
            "constant" | "none" => Schedule::Constant,
            "step" => Schedule::Step { step_size: u(1)?, gamma: f(2)? },
            "exp" => Schedule::Exponential { gamma: f(1)? },
            "expdecay" => Schedule::ExponentialDecay {
                decay_rate: f(1)?,
                decay_steps: u(2)?,
                staircase: parts.get(3) == Some(&"staircase"),
            },
            "cosine" => Schedule::Cosine {
                t_max: u(1)?,
                warmup_steps: if parts.len() > 2 { u(2)? } else { 0 },
                eta_min: if parts.len() > 3 { f(3)? } else { 0.0 },
            },
            other => bail!("unknown schedule '{other}': {usage}"),
        };
        sched.validate()?;
        Ok(sched)
    }

    /// The command-line form that [`Schedule::parse`] reads back (numbers round-trip exactly).
    pub fn spec(&self) -> String {
        match *self {
            Schedule::Constant => "constant".into(),
            Schedule::Step { step_size, gamma } => format!("step:{step_size}:{gamma:?}"),
            Schedule::Exponential { gamma } => format!("exp:{gamma:?}"),
            Schedule::ExponentialDecay { decay_rate, decay_steps, staircase } => {
                format!("expdecay:{decay_rate:?}:{decay_steps}{}", if staircase { ":staircase" } else { "" })
            }
            Schedule::Cosine { t_max, eta_min, warmup_steps } => format!("cosine:{t_max}:{warmup_steps}:{eta_min:?}"),
        }
    }

    /// Check the schedule's parameters, saying what to use instead.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Schedule::Constant => {}
            Schedule::Step { step_size, gamma } => {
                if step_size == 0 || !gamma.is_finite() || gamma <= 0.0 {
                    bail!("step schedule needs step_size >= 1 and a finite gamma > 0");
                }
            }
            Schedule::Exponential { gamma } => {
                if !gamma.is_finite() || gamma <= 0.0 {
                    bail!("exponential schedule needs a finite gamma > 0");
                }
            }
            Schedule::ExponentialDecay { decay_rate, decay_steps, .. } => {
                if decay_steps == 0 || !decay_rate.is_finite() || decay_rate <= 0.0 {
                    bail!("exponential_decay needs decay_steps >= 1 and a finite decay_rate > 0");
                }
            }
            Schedule::Cosine { t_max, eta_min, warmup_steps } => {
                if t_max <= warmup_steps || !eta_min.is_finite() || eta_min < 0.0 {
                    bail!("cosine schedule needs t_max > warmup_steps and a finite eta_min >= 0");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips() {
        for s in
            ["constant", "step:5:0.5", "exp:0.9", "expdecay:0.9:5", "expdecay:0.2:3:staircase", "cosine:100:10:0.001"]
        {
            let a = Schedule::parse(s).unwrap();
            assert_eq!(Schedule::parse(&a.spec()).unwrap(), a, "{s}");
        }
    }

    #[test]
    fn lecture_schedules() {
        // lr = lr / k every p steps, with k = 2, p = 5.
        let s = Schedule::parse("step:5:0.5").unwrap();
        assert_eq!(s.lr(0.2, 4), 0.2);
        assert_eq!(s.lr(0.2, 5), 0.1);
        // The lecture's lr0 = 0.2, lambda = 0.9, k = 5.
        let e = Schedule::parse("expdecay:0.9:5").unwrap();
        assert!((e.lr(0.2, 5) - 0.18).abs() < 1e-12);
        assert!((e.lr(0.2, 1) - 0.2 * 0.9f64.powf(0.2)).abs() < 1e-12);
        let st = Schedule::parse("expdecay:0.9:5:staircase").unwrap();
        assert_eq!(st.lr(0.2, 4), 0.2);
        let c = Schedule::parse("cosine:10:2").unwrap();
        assert_eq!(c.lr(1.0, 0), 0.5);
        assert_eq!(c.lr(1.0, 2), 1.0);
        assert!(c.lr(1.0, 10).abs() < 1e-12);
        assert!(Schedule::parse("cosine:2:2").is_err());
        assert!(Schedule::parse("warp:1").is_err());
    }

    #[test]
    fn cosine_reaches_its_minimum_at_t_max_and_rises_after() {
        let s = Schedule::Cosine { t_max: 30, eta_min: 0.01, warmup_steps: 10 };
        assert!((s.lr(0.5, 30) - 0.01).abs() < 1e-15, "{}", s.lr(0.5, 30));
        for k in 1..=20 {
            let (before, after) = (s.lr(0.5, 30 - k), s.lr(0.5, 30 + k));
            assert!((before - after).abs() < 1e-12, "k {k}: {before} vs {after}");
            assert!(after > 0.01, "k {k}: past t_max the rate rises");
        }
    }
}
