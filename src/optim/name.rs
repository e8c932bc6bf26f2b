//! [`OptimizerName`]: which optimizer, as one typed list. The JSON `"name"`, the CLI's
//! `--optimizer`, [`OPTIMIZER_NAMES`] and [`OptimConfig::defaults`](super::OptimConfig::defaults)
//! all read their spellings from it, so a new optimizer is named in one place.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An optimizer descent knows, spelled in JSON and on the command line as [`OptimizerName::name`]
/// says (PyTorch's class name in snake case, or the reference library's).
///
/// ```
/// use descent::optim::{OptimConfig, OptimizerName};
///
/// let name: OptimizerName = "adamw".parse()?;
/// let config = OptimConfig::from(name); // PyTorch's defaults: weight_decay 0.01
/// assert_eq!((config.kind(), config.weight_decay()), (OptimizerName::Adamw, 0.01));
/// assert!("AdamW".parse::<OptimizerName>().is_err()); // names are exact
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerName {
    /// `torch.optim.SGD`.
    Sgd,
    /// `torch.optim.Adagrad`.
    Adagrad,
    /// `torch.optim.RMSprop`.
    Rmsprop,
    /// `torch.optim.Adam`.
    Adam,
    /// `torch.optim.AdamW`.
    Adamw,
    /// The lecture's momentum, `v ← m·v − lr·g; θ ← θ + v`.
    LectureMomentum,
    /// `torch.optim.NAdam`.
    Nadam,
    /// `torch.optim.RAdam`.
    Radam,
    /// `torch.optim.Adamax`.
    Adamax,
    /// `torch.optim.Adadelta`.
    Adadelta,
    /// Lion (Chen et al. 2023).
    Lion,
    /// `torch.optim.Rprop`.
    Rprop,
    /// `torch.optim.ASGD`.
    Asgd,
    /// AdEMAMix (Pagliardini et al. 2024).
    Ademamix,
    /// Schedule-Free AdamW (Defazio et al. 2024).
    SchedulefreeAdamw,
    /// `torch.optim.Adafactor`.
    Adafactor,
    /// `torch.optim.Muon` with an auxiliary AdamW.
    Muon,
}

impl OptimizerName {
    /// Every optimizer, in the order help texts and `bench optim --optimizer all` list them.
    pub const ALL: [OptimizerName; 17] = [
        OptimizerName::Sgd,
        OptimizerName::Adagrad,
        OptimizerName::Rmsprop,
        OptimizerName::Adam,
        OptimizerName::Adamw,
        OptimizerName::LectureMomentum,
        OptimizerName::Nadam,
        OptimizerName::Radam,
        OptimizerName::Adamax,
        OptimizerName::Adadelta,
        OptimizerName::Lion,
        OptimizerName::Rprop,
        OptimizerName::Asgd,
        OptimizerName::Ademamix,
        OptimizerName::SchedulefreeAdamw,
        OptimizerName::Adafactor,
        OptimizerName::Muon,
    ];

    /// Its spelling in JSON (`"name"`), on the command line and in metrics files.
    pub const fn name(self) -> &'static str {
        match self {
            OptimizerName::Sgd => "sgd",
            OptimizerName::Adagrad => "adagrad",
            OptimizerName::Rmsprop => "rmsprop",
            OptimizerName::Adam => "adam",
            OptimizerName::Adamw => "adamw",
            OptimizerName::LectureMomentum => "lecture_momentum",
            OptimizerName::Nadam => "nadam",
            OptimizerName::Radam => "radam",
            OptimizerName::Adamax => "adamax",
            OptimizerName::Adadelta => "adadelta",
            OptimizerName::Lion => "lion",
            OptimizerName::Rprop => "rprop",
            OptimizerName::Asgd => "asgd",
            OptimizerName::Ademamix => "ademamix",
            OptimizerName::SchedulefreeAdamw => "schedulefree_adamw",
            OptimizerName::Adafactor => "adafactor",
            OptimizerName::Muon => "muon",
        }
    }
}

/// Every optimizer's [`OptimizerName::name`], in [`OptimizerName::ALL`]'s order.
pub const OPTIMIZER_NAMES: [&str; 17] = {
    let mut names = [""; 17];
    let mut i = 0;
    while i < names.len() {
        names[i] = OptimizerName::ALL[i].name();
        i += 1;
    }
    names
};

impl FromStr for OptimizerName {
    type Err = anyhow::Error;

    /// Exactly as [`OptimizerName::name`] spells it; anything else is an error that lists the
    /// names.
    fn from_str(s: &str) -> Result<OptimizerName> {
        match OptimizerName::ALL.into_iter().find(|n| n.name() == s) {
            Some(n) => Ok(n),
            None => bail!("unknown optimizer '{s}': use one of {}", OPTIMIZER_NAMES.join(", ")),
        }
    }
}

impl fmt::Display for OptimizerName {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// clap lists the names in `--help` and completions; parsing goes through [`FromStr`], so a
/// wrong name gets the message the JSON reader gives.
#[cfg(feature = "app")]
impl clap::ValueEnum for OptimizerName {
    fn value_variants<'a>() -> &'a [Self] {
        &OptimizerName::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_as_itself() {
        for n in OptimizerName::ALL {
            assert_eq!(n.name().parse::<OptimizerName>().unwrap(), n);
            assert_eq!(serde_json::to_value(n).unwrap(), serde_json::Value::from(n.name()));
            assert_eq!(serde_json::from_value::<OptimizerName>(n.name().into()).unwrap(), n);
        }
        let mut unique = OPTIMIZER_NAMES.to_vec();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), OPTIMIZER_NAMES.len());
    }

    #[test]
    fn a_wrong_name_lists_the_right_ones() {
        let e = "Adam".parse::<OptimizerName>().unwrap_err().to_string();
        assert!(e.starts_with("unknown optimizer 'Adam': use one of sgd, adagrad"), "{e}");
        assert!(e.ends_with("adafactor, muon"), "{e}");
    }
}
