//! The lecture's case studies: one MLP trained with each optimizer on one dataset, same seed,
//! same batches, for a side-by-side comparison (`descent compare`).

use crate::message::Setting;
use crate::optim::{Adagrad, Adam, Muon, OptimConfig, Rmsprop, Sgd, OPTIMIZER_NAMES};
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

pub const CASE_NAMES: [&str; 3] = ["fashion-mnist", "cifar10", "muon"];

/// Muon as the case studies run it: Keller Jordan's settings for the matrices (lr 0.02, no
/// decay), and for the first and last layers and the biases the case's AdamW (lr 1e-3, betas
/// (0.9, 0.999), eps 1e-8, weight_decay 0.01), so that only the hidden matrix changes hands.
pub fn case_muon() -> OptimConfig {
    OptimConfig::Muon(Muon {
        lr: 0.02,
        weight_decay: 0.0,
        aux_lr: 1e-3,
        aux_betas: (0.9, 0.999),
        aux_eps: 1e-8,
        aux_weight_decay: 0.01,
        ..Muon::default()
    })
}

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
            // Muon with its auxiliary AdamW against AdamW alone, on Fashion-MNIST.
            "muon" => ("muon", vec![("adamw".to_string(), adamw()), ("muon".to_string(), case_muon())]),
            _ => bail!("unknown case '{name}': use one of {}", CASE_NAMES.join(", ")),
        };
        let dataset = if case == "muon" { "fashion-mnist" } else { case };
        Ok(Case { name: case, dataset, runs })
    }

    /// Keep only the runs whose labels are listed (in the case's order), then add any other
    /// optimizer named, at PyTorch's defaults (Muon at [`case_muon`]'s settings), in the order
    /// given.
    pub fn select(&mut self, labels: &[String]) -> Result<()> {
        for l in labels {
            if !self.runs.iter().any(|(name, _)| name == l) && !OPTIMIZER_NAMES.contains(&l.as_str()) {
                let names: Vec<_> = self.runs.iter().map(|(n, _)| n.as_str()).collect();
                bail!(said![
                    Setting::Optimizers,
                    format!(
                        ": '{l}' is not in the {} case ({}) nor an optimizer ({})",
                        self.name,
                        names.join(", "),
                        OPTIMIZER_NAMES.join(", ")
                    )
                ]);
            }
        }
        let extra: Vec<String> = labels.iter().filter(|l| !self.runs.iter().any(|(n, _)| n == *l)).cloned().collect();
        self.runs.retain(|(name, _)| labels.contains(name));
        for l in extra {
            let config = if l == "muon" { case_muon() } else { OptimConfig::defaults(&l)? };
            self.runs.push((l, config));
        }
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
        // Any optimizer may join a case, at PyTorch's defaults.
        let mut f = Case::named("fashion-mnist").unwrap();
        f.select(&["adam".into(), "nadam".into(), "muon".into()]).unwrap();
        let labels: Vec<_> = f.runs.iter().map(|(l, c)| (l.as_str(), c.name())).collect();
        assert_eq!(labels, [("adam", "adam"), ("nadam", "nadam"), ("muon", "muon")]);
        let m = Case::named("muon").unwrap();
        assert_eq!((m.dataset, m.runs.len()), ("fashion-mnist", 2));
    }
}
