//! Messages that name settings by key.
//!
//! The library's errors and notices say what the caller set and what to change ("epochs must
//! be at least 1", "use Device::cpu"). Each client names those settings its own way: the Rust
//! API by field or function, the CLI by flag. So a [`Message`] holds the setting as a typed
//! [`Setting`] key between plain text, [`Message`]'s `Display` renders the API's names, and a
//! client renders the same message with its own ([`Message::render`]); nothing is rewritten by
//! searching the text.
//!
//! ```
//! use descent::message::{Message, Setting};
//! use descent::said;
//!
//! let m = said![Setting::Epochs, " must be at least 1"];
//! assert_eq!(m.to_string(), "epochs must be at least 1");
//! let flag = |s: Setting| if s == Setting::Epochs { "--epochs" } else { s.api_name() };
//! assert_eq!(m.render(&flag), "--epochs must be at least 1");
//! ```

use std::fmt;

/// A setting a message can name: a field, a function or a choice of the library's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Setting {
    /// [`crate::backend::DeviceChoice::Auto`]: a hardware GPU, else the CPU backend.
    DeviceAuto,
    /// [`crate::backend::Device::cpu`].
    DeviceCpu,
    /// [`crate::backend::Device::gpu`].
    DeviceGpu,
    /// The folder a dataset is read from ([`crate::data::load_dataset`]'s `data_dir`).
    DataDir,
    /// A dataset's name ([`crate::data::load_dataset`]'s `name`).
    Dataset,
    /// Training epochs.
    Epochs,
    /// Examples per step.
    BatchSize,
    /// The hidden layers' sizes.
    Hidden,
    /// The learning rate.
    Lr,
    /// The order examples are drawn in ([`crate::app::train::ShuffleOrder`]).
    Shuffle,
    /// How many parameters an optimizer benchmark steps.
    Params,
    /// Matmul shapes, for a benchmark or for parity.
    Shapes,
    /// Vector lengths parity checks.
    Lengths,
    /// Tensor lengths parity checks blockwise 8-bit state at.
    BlockwiseLengths,
    /// Which optimizers of a comparison case run.
    Optimizers,
    /// Where the 1-D and 2-D test functions are listed (as a reference, not a value).
    FunctionList,
    /// An optimizer's hyperparameter, by its PyTorch name (not in [`Setting::ALL`]: a client
    /// names each from its key, as the CLI spells `weight_decay` `weight-decay`).
    Hyper(HyperKey),
}

impl Setting {
    /// Every setting, so a client can check that it names each one.
    pub const ALL: [Setting; 16] = [
        Setting::DeviceAuto,
        Setting::DeviceCpu,
        Setting::DeviceGpu,
        Setting::DataDir,
        Setting::Dataset,
        Setting::Epochs,
        Setting::BatchSize,
        Setting::Hidden,
        Setting::Lr,
        Setting::Shuffle,
        Setting::Params,
        Setting::Shapes,
        Setting::Lengths,
        Setting::BlockwiseLengths,
        Setting::Optimizers,
        Setting::FunctionList,
    ];

    /// How the Rust API names the setting.
    pub fn api_name(self) -> &'static str {
        match self {
            Setting::DeviceAuto => "DeviceChoice::Auto",
            Setting::DeviceCpu => "Device::cpu",
            Setting::DeviceGpu => "Device::gpu",
            Setting::DataDir => "data_dir",
            Setting::Dataset => "dataset",
            Setting::Epochs => "epochs",
            Setting::BatchSize => "batch_size",
            Setting::Hidden => "hidden",
            Setting::Lr => "lr",
            Setting::Shuffle => "shuffle order",
            Setting::Params => "params count",
            Setting::Shapes => "shapes",
            Setting::Lengths => "lengths",
            Setting::BlockwiseLengths => "blockwise_lengths",
            Setting::Optimizers => "optimizer selection",
            Setting::FunctionList => "FUNCTIONS lists them",
            Setting::Hyper(k) => k.name(),
        }
    }
}

/// Declares [`HyperKey`], its JSON name and flag, and [`HyperKey::ALL`] from one list.
macro_rules! hyper_keys {
    ($($(#[$doc:meta])* $name:ident => $key:literal, $flag:literal;)*) => {
        /// A key of an optimizer's JSON form (`optim::OptimConfig`): a hyperparameter under
        /// PyTorch's name, or `name`, the optimizer itself.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum HyperKey {
            $($(#[$doc])* $name,)*
        }

        impl HyperKey {
            /// Every key, in declaration order.
            pub const ALL: &'static [HyperKey] = &[$(HyperKey::$name),*];

            /// Its name in the JSON form (PyTorch's).
            pub const fn name(self) -> &'static str {
                match self {
                    $(HyperKey::$name => $key,)*
                }
            }

            /// The command line's flag for it.
            pub const fn flag(self) -> &'static str {
                match self {
                    $(HyperKey::$name => $flag,)*
                }
            }
        }
    };
}

hyper_keys! {
    /// The optimizer (`--optimizer`).
    Name => "name", "--optimizer";
    /// The learning rate.
    Lr => "lr", "--lr";
    /// Momentum (SGD, RMSProp, the lecture's form, Muon).
    Momentum => "momentum", "--momentum";
    /// SGD's dampening.
    Dampening => "dampening", "--dampening";
    /// SGD's Nesterov form.
    Nesterov => "nesterov", "--nesterov";
    /// Weight decay.
    WeightDecay => "weight_decay", "--weight-decay";
    /// Ascend instead of descend.
    Maximize => "maximize", "--maximize";
    /// The state's width.
    OptimBits => "optim_bits", "--optim-bits";
    /// Adagrad's rate decay.
    LrDecay => "lr_decay", "--lr-decay";
    /// Adagrad's first accumulator value.
    InitialAccumulatorValue => "initial_accumulator_value", "--initial-accumulator-value";
    /// The denominator's epsilon.
    Eps => "eps", "--eps";
    /// RMSProp's smoothing, ASGD's power, AdEMAMix's mixing weight.
    Alpha => "alpha", "--alpha";
    /// Centered RMSProp.
    Centered => "centered", "--centered";
    /// The moment decays.
    Betas => "betas", "--betas";
    /// AMSGrad.
    Amsgrad => "amsgrad", "--amsgrad";
    /// NAdam's ψ.
    MomentumDecay => "momentum_decay", "--momentum-decay";
    /// NAdamW, RAdamW.
    DecoupledWeightDecay => "decoupled_weight_decay", "--decoupled-weight-decay";
    /// Adadelta's decay.
    Rho => "rho", "--rho";
    /// Rprop's step-size factors.
    Etas => "etas", "--etas";
    /// Rprop's step-size bounds.
    StepSizes => "step_sizes", "--step-sizes";
    /// ASGD's λ.
    Lambd => "lambd", "--lambd";
    /// ASGD's averaging start.
    T0 => "t0", "--t0";
    /// AdEMAMix's alpha warm-up.
    TAlpha => "t_alpha", "--t-alpha";
    /// AdEMAMix's beta3 warm-up.
    TBeta3 => "t_beta3", "--t-beta3";
    /// Schedule-Free's warm-up.
    WarmupSteps => "warmup_steps", "--warmup-steps";
    /// Schedule-Free's step power.
    R => "r", "--r";
    /// Schedule-Free's rate power.
    WeightLrPower => "weight_lr_power", "--weight-lr-power";
    /// Adafactor's β2 decay.
    Beta2Decay => "beta2_decay", "--beta2-decay";
    /// Adafactor's clipping threshold.
    D => "d", "--d";
    /// Muon's Newton–Schulz steps.
    NsSteps => "ns_steps", "--ns-steps";
    /// Muon's Newton–Schulz coefficients.
    NsCoefficients => "ns_coefficients", "--ns-coefficients";
    /// Muon's rate adjustment.
    AdjustLrFn => "adjust_lr_fn", "--adjust-lr-fn";
    /// Muon's Newton–Schulz precision.
    NsDtype => "ns_dtype", "--ns-dtype";
    /// Muon's choice of the first and last matrices.
    AuxFirstLast => "aux_first_last", "--aux-first-last";
    /// Muon's auxiliary AdamW's rate.
    AuxLr => "aux_lr", "--aux-lr";
    /// Muon's auxiliary AdamW's betas.
    AuxBetas => "aux_betas", "--aux-betas";
    /// Muon's auxiliary AdamW's eps.
    AuxEps => "aux_eps", "--aux-eps";
    /// Muon's auxiliary AdamW's weight decay.
    AuxWeightDecay => "aux_weight_decay", "--aux-weight-decay";
}

impl HyperKey {
    /// The key named `name` in the JSON form, if it is one.
    pub fn from_name(name: &str) -> Option<HyperKey> {
        HyperKey::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// How the command line names it in a sentence: its flag without the dashes in front
    /// (`weight-decay`).
    pub fn flag_word(self) -> &'static str {
        self.flag().trim_start_matches('-')
    }
}

impl From<HyperKey> for Piece {
    fn from(k: HyperKey) -> Piece {
        Piece::Setting(Setting::Hyper(k))
    }
}

/// What in a JSON object is wrong: the object's path (`optimizer`, `groups[1]`) and, where one
/// key is to blame, that key. Its `Display` is `path.key: message` (or `path: message`); a
/// client names the key its own way (the CLI by its flag) without rewriting the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// The object's path in the document.
    pub path: String,
    /// The key to blame, if one is: a [`HyperKey`], or the text of a key that is none.
    pub key: Option<Result<HyperKey, String>>,
    /// What is wrong.
    pub message: Message,
}

impl KeyError {
    /// An error in key `key` of the object at `path`.
    pub fn at(path: &str, key: &str, message: impl Into<Message>) -> KeyError {
        let key = HyperKey::from_name(key).ok_or_else(|| key.to_string());
        KeyError { path: path.to_string(), key: Some(key), message: message.into() }
    }

    /// An error in the object at `path` as a whole, from `e`'s whole chain (its keys kept).
    pub fn of(path: &str, e: &anyhow::Error) -> KeyError {
        KeyError { path: path.to_string(), key: None, message: Message::of_error(e) }
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(Ok(k)) => write!(f, "{}.{}: {}", self.path, k.name(), self.message),
            Some(Err(k)) => write!(f, "{}.{k}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

impl std::error::Error for KeyError {}

/// One part of a [`Message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text shown as it is.
    Text(String),
    /// A setting, shown as the client names it.
    Setting(Setting),
}

impl From<&str> for Piece {
    fn from(t: &str) -> Piece {
        Piece::Text(t.to_string())
    }
}

impl From<String> for Piece {
    fn from(t: String) -> Piece {
        Piece::Text(t)
    }
}

impl From<Setting> for Piece {
    fn from(s: Setting) -> Piece {
        Piece::Setting(s)
    }
}

/// Text with typed setting keys in it; an error as it is (`bail!(said![..])`), so a client
/// finds it in an error's chain with `downcast_ref`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message(Vec<Piece>);

/// A [`Message`] from its pieces: text (`&str`, `String`) and [`Setting`]s, in order.
#[macro_export]
macro_rules! said {
    ($($piece:expr),* $(,)?) => {
        $crate::message::Message::new(vec![$($crate::message::Piece::from($piece)),*])
    };
}

impl Message {
    /// A message from its pieces (the [`said!`](crate::said) macro is the short way).
    pub fn new(pieces: Vec<Piece>) -> Message {
        Message(pieces)
    }

    /// The pieces in order.
    pub fn pieces(&self) -> &[Piece] {
        &self.0
    }

    /// This message followed by `more`.
    pub fn then(mut self, more: impl Into<Message>) -> Message {
        self.0.extend(more.into().0);
        self
    }

    /// The text with each setting named by `name` (a CLI passes its flags).
    pub fn render(&self, name: &dyn Fn(Setting) -> &'static str) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.as_str(),
                Piece::Setting(s) => name(*s),
            })
            .collect()
    }

    /// An error's whole chain as one message (the causes joined by `": "`, as anyhow's `{:#}`
    /// shows them), keeping the setting keys of each cause that is a [`Message`]. A message
    /// attached as context (`.context(said![..])`) shows as its text, with the API's names:
    /// raise messages as errors (`bail!(said![..])`) to keep their keys.
    pub fn of_error(e: &anyhow::Error) -> Message {
        let mut out = Message::default();
        for (i, cause) in e.chain().enumerate() {
            if i > 0 {
                out.0.push(": ".into());
            }
            match cause.downcast_ref::<Message>() {
                Some(m) => out.0.extend(m.0.iter().cloned()),
                None => out.0.push(cause.to_string().into()),
            }
        }
        out
    }
}

impl From<&str> for Message {
    fn from(t: &str) -> Message {
        Message(vec![t.into()])
    }
}

impl From<String> for Message {
    fn from(t: String) -> Message {
        Message(vec![t.into()])
    }
}

impl From<Setting> for Message {
    fn from(s: Setting) -> Message {
        Message(vec![s.into()])
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&Setting::api_name))
    }
}

impl std::error::Error for Message {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_each_setting_once() {
        let names: std::collections::HashSet<_> = Setting::ALL.iter().map(|s| s.api_name()).collect();
        assert_eq!(names.len(), Setting::ALL.len());
    }

    #[test]
    fn renders_each_setting_by_the_given_names() {
        let m = said!["try a smaller ", Setting::Lr, " or ", Setting::DeviceCpu];
        assert_eq!(m.to_string(), "try a smaller lr or Device::cpu");
        let flags = |s: Setting| match s {
            Setting::Lr => "--lr",
            Setting::DeviceCpu => "--device cpu",
            _ => "?",
        };
        assert_eq!(m.render(&flags), "try a smaller --lr or --device cpu");
    }

    #[test]
    fn hyper_keys_are_distinct_and_flags_spell_them() {
        let names: std::collections::HashSet<_> = HyperKey::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), HyperKey::ALL.len());
        for &k in HyperKey::ALL {
            assert_eq!(HyperKey::from_name(k.name()), Some(k));
            if k != HyperKey::Name {
                assert_eq!(k.flag(), format!("--{}", k.name().replace('_', "-")));
            }
        }
    }

    #[test]
    fn a_key_error_names_its_key() {
        let e = KeyError::at("optimizer", "weight_decay", "expected a number");
        assert_eq!(e.to_string(), "optimizer.weight_decay: expected a number");
        assert_eq!(e.key, Some(Ok(HyperKey::WeightDecay)));
        let other = KeyError::at("optimizer", "bogus", "unknown");
        assert_eq!(other.key, Some(Err("bogus".to_string())));
        let m = said!["invalid ", HyperKey::WeightDecay, ": -1"];
        assert_eq!(m.to_string(), "invalid weight_decay: -1");
        let cli = |s: Setting| match s {
            Setting::Hyper(k) => k.flag_word(),
            _ => "?",
        };
        assert_eq!(m.render(&cli), "invalid weight-decay: -1");
    }

    #[test]
    fn an_error_chain_keeps_its_keys() {
        let inner = anyhow::Error::new(said![Setting::Epochs, " must be at least 1"]);
        let e = inner.context("checking the run").context(said!["while ", Setting::Lr, " was set"]);
        let m = Message::of_error(&e);
        assert_eq!(m.to_string(), format!("{e:#}"));
        assert!(m.pieces().contains(&Piece::Setting(Setting::Epochs)));
    }
}
