//! The lecture's case studies: one MLP trained with each optimizer on one dataset, same seed,
//! same batches, for a side-by-side comparison (`descent compare`).

use crate::message::Setting;
use crate::optim::{Adagrad, Adam, OptimConfig, Rmsprop, Sgd};
use crate::said;
use anyhow::{bail, Result};

/// A case study: its dataset and the optimizers it compares, with the lecture's settings.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: &'static str,
    pub dataset: &'static str,
    /// (label, configuration) in the order they are trained and drawn.
    pub runs: Vec<(String, OptimConfig)>,
}

pub const CASE_NAMES: [&str; 2] = ["fashion-mnist", "cifar10"];

impl Case {
    /// The case's runs: Fashion-MNIST with SGD, SGD+momentum, Adagrad, RMSProp, Adam, AdamW;
    /// CIFAR-10 with SGD, Adam, AdamW. SGD lr 0.01, Adagrad lr 0.01, RMSProp, Adam and AdamW
    /// lr 1e-3 (AdamW weight_decay 0.01, PyTorch's default); momentum 0.9.
    pub fn named(name: &str) -> Result<Case> {
        let sgd = || OptimConfig::Sgd(Sgd { lr: 0.01, ..Sgd::default() });
        let adam = || OptimConfig::Adam(Adam { lr: 1e-3, ..Adam::default() });
        let adamw = || OptimConfig::Adamw(Adam { lr: 1e-3, weight_decay: 0.01, ..Adam::default() });
        let (case, runs) = match name {
            "fashion-mnist" => (
                "fashion-mnist",
                vec![
                    ("sgd".to_string(), sgd()),
                    ("sgd_momentum".to_string(), OptimConfig::Sgd(Sgd { lr: 0.01, momentum: 0.9, ..Sgd::default() })),
                    ("adagrad".to_string(), OptimConfig::Adagrad(Adagrad { lr: 0.01, ..Adagrad::default() })),
                    ("rmsprop".to_string(), OptimConfig::Rmsprop(Rmsprop { lr: 1e-3, ..Rmsprop::default() })),
                    ("adam".to_string(), adam()),
                    ("adamw".to_string(), adamw()),
                ],
            ),
            "cifar10" => (
                "cifar10",
                vec![("sgd".to_string(), sgd()), ("adam".to_string(), adam()), ("adamw".to_string(), adamw())],
            ),
            _ => bail!("unknown case '{name}': use one of {}", CASE_NAMES.join(", ")),
        };
        Ok(Case { name: case, dataset: case, runs })
    }

    /// Keep only the runs whose labels are listed (in the case's order).
    pub fn select(&mut self, labels: &[String]) -> Result<()> {
        for l in labels {
            if !self.runs.iter().any(|(name, _)| name == l) {
                let names: Vec<_> = self.runs.iter().map(|(n, _)| n.as_str()).collect();
                bail!(said![
                    Setting::Optimizers,
                    format!(": '{l}' is not in the {} case ({})", self.name, names.join(", "))
                ]);
            }
        }
        self.runs.retain(|(name, _)| labels.contains(name));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_have_the_lectures_settings() {
        let f = Case::named("fashion-mnist").unwrap();
        let labels: Vec<_> = f.runs.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["sgd", "sgd_momentum", "adagrad", "rmsprop", "adam", "adamw"]);
        let adamw = &f.runs[5].1;
        assert_eq!((adamw.name(), adamw.lr(), adamw.weight_decay()), ("adamw", 1e-3, 0.01));
        for (_, c) in &f.runs {
            c.validate().unwrap();
        }
        let mut c = Case::named("cifar10").unwrap();
        c.select(&["adamw".into(), "sgd".into()]).unwrap();
        assert_eq!(c.runs.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(), ["sgd", "adamw"]);
        assert!(c.select(&["lbfgs".into()]).is_err());
        assert!(Case::named("imagenet").is_err());
    }
}
