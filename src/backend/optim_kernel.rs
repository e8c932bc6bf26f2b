//! The contract between the host and the fused optimizer kernels: which kernel a step runs
//! ([`OptimStep`]), the state slots it binds ([`Slot`]), which way it goes ([`Objective`]) and
//! the widths state is kept at ([`OptimBits`]).
//!
//! The scalars each kernel reads are `#[repr(C)]` structs in [`super::optim_params`] (re-exported
//! here), mirrored by the WGSL structs of the same names; `tests/kernel_mirror.rs` compares them
//! field by field (names, offsets, types, size). The rayon twins in `backend::cpu::optim` read
//! the same structs. The host (`optim`) fills them once per step, bias corrections included, so
//! the kernels do no per-step arithmetic of their own.

pub use super::contract::Field;
pub use super::grouped_step::GroupedStep;
pub use super::optim_params::*;
use super::quant::Block;
use crate::tensor::View;

/// The non-finite gradient check ([`Backend::find_nonfinite`](super::op_set::Backend::find_nonfinite))
/// folded into an optimizer step: a NaN or ±∞ among the step's gradients is recorded in `flag`
/// (two f32s: `tag` and the element's index, unless `flag[0]` is already ≥ 0), in the same pass
/// that reads them for the update on a GPU.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradCheck {
    /// Two f32s, `flag[0]` below zero until a non-finite gradient is recorded.
    pub flag: View,
    /// What to record in `flag[0]` (the trainer records the optimizer step, from 1).
    pub tag: f32,
}

/// Which way a step goes. PyTorch's `maximize`: the kernel reads the gradient negated, so the
/// state holds what PyTorch's does (its update begins with `grad = -grad`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Objective {
    /// Descend: the gradient as it is.
    #[default]
    Minimize,
    /// Ascend: the gradient negated as it is read.
    Maximize,
}

impl Objective {
    /// `Maximize` when `maximize` is set (PyTorch's flag).
    pub fn from_maximize(maximize: bool) -> Objective {
        if maximize {
            Objective::Maximize
        } else {
            Objective::Minimize
        }
    }

    /// The factor the gradient is read with: 1 or −1 (exact either way).
    pub fn sign(self) -> f32 {
        match self {
            Objective::Minimize => 1.0,
            Objective::Maximize => -1.0,
        }
    }

    /// The kernels' uniform word: 1 when maximizing.
    pub fn flag(self) -> u32 {
        (self == Objective::Maximize) as u32
    }
}

/// A state buffer an optimizer keeps per parameter, named as PyTorch's `state_dict()` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// SGD's and the lecture's velocity, and RMSProp's momentum buffer.
    MomentumBuffer,
    /// Adagrad's running sum of squared gradients.
    Sum,
    /// RMSProp's running average of squared gradients.
    SquareAvg,
    /// Centered RMSProp's running average of gradients.
    GradAvg,
    /// Adam's first moment.
    ExpAvg,
    /// Adam's second moment.
    ExpAvgSq,
    /// AMSGrad's maximum of past second moments.
    MaxExpAvgSq,
    /// Adamax's exponentially weighted infinity norm.
    ExpInf,
    /// Adadelta's running average of squared updates.
    AccDelta,
    /// Rprop's previous gradient (zeroed where its sign flipped).
    Prev,
    /// Rprop's per-element step size.
    StepSize,
    /// ASGD's average of the parameters.
    Ax,
    /// AdEMAMix's fast average of the gradient (bitsandbytes keeps it stacked with `m2` as
    /// `m1_m2`).
    M1,
    /// AdEMAMix's slow average of the gradient.
    M2,
    /// AdEMAMix's second moment.
    Nu,
    /// Schedule-Free's z sequence (the SGD-like iterate; y and x are mixed from it).
    Z,
}

impl Slot {
    /// Every slot.
    pub const ALL: [Slot; 16] = [
        Slot::MomentumBuffer,
        Slot::Sum,
        Slot::SquareAvg,
        Slot::GradAvg,
        Slot::ExpAvg,
        Slot::ExpAvgSq,
        Slot::MaxExpAvgSq,
        Slot::ExpInf,
        Slot::AccDelta,
        Slot::Prev,
        Slot::StepSize,
        Slot::Ax,
        Slot::M1,
        Slot::M2,
        Slot::Nu,
        Slot::Z,
    ];

    /// The name of its per-block absmax at 8 bits: `<name>_absmax`.
    pub fn absmax_name(self) -> &'static str {
        match self {
            Slot::MomentumBuffer => "momentum_buffer_absmax",
            Slot::Sum => "sum_absmax",
            Slot::SquareAvg => "square_avg_absmax",
            Slot::GradAvg => "grad_avg_absmax",
            Slot::ExpAvg => "exp_avg_absmax",
            Slot::ExpAvgSq => "exp_avg_sq_absmax",
            Slot::MaxExpAvgSq => "max_exp_avg_sq_absmax",
            Slot::ExpInf => "exp_inf_absmax",
            Slot::AccDelta => "acc_delta_absmax",
            Slot::Prev => "prev_absmax",
            Slot::StepSize => "step_size_absmax",
            Slot::Ax => "ax_absmax",
            Slot::M1 => "m1_absmax",
            Slot::M2 => "m2_absmax",
            Slot::Nu => "nu_absmax",
            Slot::Z => "z_absmax",
        }
    }

    /// Which of bitsandbytes' maps the slot's 8-bit codes use: the signed one, except for the
    /// second moment of a two-moment optimizer (Adam's `exp_avg_sq`, AdEMAMix's `nu`). As in
    /// bitsandbytes, a first state is signed even when it is a sum of squares (RMSProp's
    /// `square_avg`, Adagrad's `sum`).
    pub fn signed_8bit(self) -> bool {
        !matches!(self, Slot::ExpAvgSq | Slot::Nu)
    }

    /// PyTorch's name for this slot (checkpoints and replay output use it).
    pub const fn name(self) -> &'static str {
        match self {
            Slot::MomentumBuffer => "momentum_buffer",
            Slot::Sum => "sum",
            Slot::SquareAvg => "square_avg",
            Slot::GradAvg => "grad_avg",
            Slot::ExpAvg => "exp_avg",
            Slot::ExpAvgSq => "exp_avg_sq",
            Slot::MaxExpAvgSq => "max_exp_avg_sq",
            Slot::ExpInf => "exp_inf",
            Slot::AccDelta => "acc_delta",
            Slot::Prev => "prev",
            Slot::StepSize => "step_size",
            Slot::Ax => "ax",
            Slot::M1 => "m1",
            Slot::M2 => "m2",
            Slot::Nu => "nu",
            Slot::Z => "z",
        }
    }
}

/// What one fused optimizer launch needs: which kernel, and its scalars.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimStep {
    /// `optim_sgd.wgsl`.
    Sgd(SgdParams),
    /// `optim_adagrad.wgsl`.
    Adagrad(AdagradParams),
    /// `optim_rmsprop.wgsl`.
    Rmsprop(RmspropParams),
    /// `optim_adam.wgsl` (Adam and AdamW).
    Adam(AdamParams),
    /// `optim_lecture_momentum.wgsl`.
    LectureMomentum(LectureMomentumParams),
    /// `optim_nadam.wgsl`.
    Nadam(NadamParams),
    /// `optim_radam.wgsl`.
    Radam(RadamParams),
    /// `optim_adamax.wgsl`.
    Adamax(AdamaxParams),
    /// `optim_adadelta.wgsl`.
    Adadelta(AdadeltaParams),
    /// `optim_lion.wgsl`.
    Lion(LionParams),
    /// `optim_rprop.wgsl`.
    Rprop(RpropParams),
    /// `optim_asgd.wgsl`.
    Asgd(AsgdParams),
    /// `optim_ademamix.wgsl`.
    Ademamix(AdemamixParams),
    /// `optim_schedulefree.wgsl`.
    Schedulefree(SchedulefreeParams),
    /// `optim_schedulefree_mode.wgsl`: not a step, the switch between y and x.
    SchedulefreeMode(SchedulefreeModeParams),
    /// `optim_muon_momentum.wgsl`: Muon's momentum, its output in the place of the parameters.
    MuonMomentum(MuonMomentumParams),
}

/// A kernel's static description: its WGSL entry point, parameter struct and state bindings.
#[derive(Clone, Copy, Debug)]
pub struct KernelInfo {
    /// The kernel's name: `shaders/optim_<name>.wgsl` holds its parameter struct and its
    /// `update` formula; the entry points come from `shaders/optim.wgsl` (the GPU registry's step entries).
    pub name: &'static str,
    /// Name of the parameter struct, the same in Rust and WGSL.
    pub params: &'static str,
    /// The parameter struct's fields.
    pub fields: &'static [Field],
    /// Its size in bytes.
    pub size: usize,
    /// The slot bound at S0, S1, S2: every slot the kernel can keep, in PyTorch's order.
    pub bindings: &'static [Slot],
}

const fn info<T>(
    name: &'static str,
    params: &'static str,
    fields: &'static [Field],
    bindings: &'static [Slot],
) -> KernelInfo {
    KernelInfo { name, params, fields, size: std::mem::size_of::<T>(), bindings }
}

impl OptimStep {
    /// One step of each kernel with zeroed scalars: the list the mirror test walks.
    pub const ALL: [OptimStep; 16] = [
        OptimStep::Sgd(SgdParams {
            lr: 0.0,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: 0,
            first_step: 0,
        }),
        OptimStep::Adagrad(AdagradParams { clr: 0.0, weight_decay: 0.0, eps: 0.0 }),
        OptimStep::Rmsprop(RmspropParams {
            lr: 0.0,
            alpha: 0.0,
            eps: 0.0,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: 0,
        }),
        OptimStep::Adam(AdamParams {
            lr: 0.0,
            beta1: 0.0,
            beta2: 0.0,
            eps: 0.0,
            weight_decay: 0.0,
            step_size: 0.0,
            bc2_sqrt: 0.0,
            decoupled: 0,
            amsgrad: 0,
        }),
        OptimStep::LectureMomentum(LectureMomentumParams { lr: 0.0, momentum: 0.0, weight_decay: 0.0 }),
        OptimStep::Nadam(NadamParams {
            lr: 0.0,
            beta1: 0.0,
            beta2: 0.0,
            eps: 0.0,
            weight_decay: 0.0,
            grad_step: 0.0,
            avg_step: 0.0,
            bc2_sqrt: 0.0,
            decoupled: 0,
        }),
        OptimStep::Radam(RadamParams {
            lr: 0.0,
            beta1: 0.0,
            beta2: 0.0,
            eps: 0.0,
            weight_decay: 0.0,
            step_size: 0.0,
            adaptive_scale: 0.0,
            rectified: 0,
            decoupled: 0,
        }),
        OptimStep::Adamax(AdamaxParams { beta1: 0.0, beta2: 0.0, eps: 0.0, weight_decay: 0.0, clr: 0.0 }),
        OptimStep::Adadelta(AdadeltaParams { lr: 0.0, rho: 0.0, eps: 0.0, weight_decay: 0.0 }),
        OptimStep::Lion(LionParams { lr: 0.0, beta1: 0.0, beta2: 0.0, weight_decay: 0.0 }),
        OptimStep::Rprop(RpropParams { eta_minus: 0.0, eta_plus: 0.0, step_min: 0.0, step_max: 0.0 }),
        OptimStep::Asgd(AsgdParams { eta: 0.0, lambd: 0.0, mu: 0.0, weight_decay: 0.0, copy: 0 }),
        OptimStep::Ademamix(AdemamixParams {
            lr: 0.0,
            beta1: 0.0,
            beta2: 0.0,
            beta3: 0.0,
            one_minus_beta3: 0.0,
            alpha: 0.0,
            eps: 0.0,
            weight_decay: 0.0,
            bc1: 0.0,
            bc2_sqrt: 0.0,
        }),
        OptimStep::Schedulefree(SchedulefreeParams {
            lr: 0.0,
            beta1: 0.0,
            beta2: 0.0,
            eps: 0.0,
            weight_decay: 0.0,
            ckp1: 0.0,
            bc2_sqrt: 0.0,
        }),
        OptimStep::SchedulefreeMode(SchedulefreeModeParams { weight: 0.0, init: 0 }),
        OptimStep::MuonMomentum(MuonMomentumParams { momentum: 0.0, nesterov: 0 }),
    ];

    /// The kernel this step runs.
    pub const fn kernel(&self) -> KernelInfo {
        use Slot::*;
        match self {
            OptimStep::Sgd(_) => info::<SgdParams>("sgd", "SgdParams", SgdParams::FIELDS, &[MomentumBuffer]),
            OptimStep::Adagrad(_) => info::<AdagradParams>("adagrad", "AdagradParams", AdagradParams::FIELDS, &[Sum]),
            OptimStep::Rmsprop(_) => info::<RmspropParams>(
                "rmsprop",
                "RmspropParams",
                RmspropParams::FIELDS,
                &[SquareAvg, MomentumBuffer, GradAvg],
            ),
            OptimStep::Adam(_) => {
                info::<AdamParams>("adam", "AdamParams", AdamParams::FIELDS, &[ExpAvg, ExpAvgSq, MaxExpAvgSq])
            }
            OptimStep::LectureMomentum(_) => info::<LectureMomentumParams>(
                "lecture_momentum",
                "LectureMomentumParams",
                LectureMomentumParams::FIELDS,
                &[MomentumBuffer],
            ),
            OptimStep::Nadam(_) => {
                info::<NadamParams>("nadam", "NadamParams", NadamParams::FIELDS, &[ExpAvg, ExpAvgSq])
            }
            OptimStep::Radam(_) => {
                info::<RadamParams>("radam", "RadamParams", RadamParams::FIELDS, &[ExpAvg, ExpAvgSq])
            }
            OptimStep::Adamax(_) => {
                info::<AdamaxParams>("adamax", "AdamaxParams", AdamaxParams::FIELDS, &[ExpAvg, ExpInf])
            }
            OptimStep::Adadelta(_) => {
                info::<AdadeltaParams>("adadelta", "AdadeltaParams", AdadeltaParams::FIELDS, &[SquareAvg, AccDelta])
            }
            OptimStep::Lion(_) => info::<LionParams>("lion", "LionParams", LionParams::FIELDS, &[ExpAvg]),
            OptimStep::Rprop(_) => info::<RpropParams>("rprop", "RpropParams", RpropParams::FIELDS, &[Prev, StepSize]),
            OptimStep::Asgd(_) => info::<AsgdParams>("asgd", "AsgdParams", AsgdParams::FIELDS, &[Ax]),
            OptimStep::Ademamix(_) => {
                info::<AdemamixParams>("ademamix", "AdemamixParams", AdemamixParams::FIELDS, &[M1, M2, Nu])
            }
            OptimStep::Schedulefree(_) => info::<SchedulefreeParams>(
                "schedulefree",
                "SchedulefreeParams",
                SchedulefreeParams::FIELDS,
                &[Z, ExpAvgSq],
            ),
            OptimStep::MuonMomentum(_) => info::<MuonMomentumParams>(
                "muon_momentum",
                "MuonMomentumParams",
                MuonMomentumParams::FIELDS,
                &[MomentumBuffer],
            ),
            OptimStep::SchedulefreeMode(_) => info::<SchedulefreeModeParams>(
                "schedulefree_mode",
                "SchedulefreeModeParams",
                SchedulefreeModeParams::FIELDS,
                &[Z, ExpAvgSq],
            ),
        }
    }

    /// Whether this step keeps `slot`: the settings decide (momentum 0 keeps no buffer).
    pub fn uses(&self, slot: Slot) -> bool {
        use Slot::*;
        match (self, slot) {
            (OptimStep::Sgd(h), MomentumBuffer) => h.momentum != 0.0,
            (OptimStep::Adagrad(_), Sum) => true,
            (OptimStep::Rmsprop(_), SquareAvg) => true,
            (OptimStep::Rmsprop(h), MomentumBuffer) => h.momentum > 0.0,
            (OptimStep::Rmsprop(h), GradAvg) => h.centered != 0,
            (OptimStep::Adam(_), ExpAvg | ExpAvgSq) => true,
            (OptimStep::Adam(h), MaxExpAvgSq) => h.amsgrad != 0,
            (OptimStep::LectureMomentum(_), MomentumBuffer) => true,
            (OptimStep::Nadam(_) | OptimStep::Radam(_), ExpAvg | ExpAvgSq) => true,
            (OptimStep::Adamax(_), ExpAvg | ExpInf) => true,
            (OptimStep::Adadelta(_), SquareAvg | AccDelta) => true,
            (OptimStep::Lion(_), ExpAvg) => true,
            (OptimStep::Rprop(_), Prev | StepSize) => true,
            (OptimStep::Asgd(_), Ax) => true,
            (OptimStep::Ademamix(_), M1 | M2 | Nu) => true,
            (OptimStep::Schedulefree(_), Z | ExpAvgSq) => true,
            // The switch reads and writes z only (exp_avg_sq's binding is a placeholder).
            (OptimStep::SchedulefreeMode(_), Z) => true,
            (OptimStep::MuonMomentum(_), MomentumBuffer) => true,
            _ => false,
        }
    }

    /// The slots this step keeps, in binding order: the order state buffers are allocated,
    /// passed to [`Device::optim_step`](super::Device::optim_step) and stored in checkpoints.
    pub fn slots(&self) -> Vec<Slot> {
        self.kernel().bindings.iter().copied().filter(|&s| self.uses(s)).collect()
    }

    /// For each binding S0, S1, S2, the index of its buffer among [`OptimStep::slots`], or
    /// `None` where the slot is not kept (the backend binds a placeholder there). No
    /// allocation: the CPU twins call this per run of elements.
    pub fn binding_positions(&self) -> [Option<usize>; 3] {
        let mut out = [None; 3];
        let mut next = 0;
        for (b, &s) in self.kernel().bindings.iter().enumerate() {
            if self.uses(s) {
                out[b] = Some(next);
                next += 1;
            }
        }
        out
    }

    /// Whether this step has a blockwise 8-bit form: the kernels bitsandbytes has one for
    /// (Adam and AdamW without AMSGrad, SGD with momentum, RMSProp, Adagrad, Lion, AdEMAMix).
    pub fn has_8bit(&self) -> bool {
        match self {
            OptimStep::Adam(h) => h.amsgrad == 0,
            OptimStep::Sgd(h) => h.momentum != 0.0,
            OptimStep::Rmsprop(_) | OptimStep::Adagrad(_) | OptimStep::Lion(_) | OptimStep::Ademamix(_) => true,
            _ => false,
        }
    }

    /// The 8-bit map of each kept slot, as a bit mask (bit k: slot k signed).
    pub fn signed_8bit(&self) -> u32 {
        self.slots().iter().enumerate().filter(|(_, s)| s.signed_8bit()).map(|(k, _)| 1u32 << k).sum()
    }

    /// The parameter struct's bytes, as the WGSL uniform reads them after the arena header.
    pub fn param_bytes(&self) -> &[u8] {
        match self {
            OptimStep::Sgd(h) => bytemuck::bytes_of(h),
            OptimStep::Adagrad(h) => bytemuck::bytes_of(h),
            OptimStep::Rmsprop(h) => bytemuck::bytes_of(h),
            OptimStep::Adam(h) => bytemuck::bytes_of(h),
            OptimStep::LectureMomentum(h) => bytemuck::bytes_of(h),
            OptimStep::Nadam(h) => bytemuck::bytes_of(h),
            OptimStep::Radam(h) => bytemuck::bytes_of(h),
            OptimStep::Adamax(h) => bytemuck::bytes_of(h),
            OptimStep::Adadelta(h) => bytemuck::bytes_of(h),
            OptimStep::Lion(h) => bytemuck::bytes_of(h),
            OptimStep::Rprop(h) => bytemuck::bytes_of(h),
            OptimStep::Asgd(h) => bytemuck::bytes_of(h),
            OptimStep::Ademamix(h) => bytemuck::bytes_of(h),
            OptimStep::Schedulefree(h) => bytemuck::bytes_of(h),
            OptimStep::SchedulefreeMode(h) => bytemuck::bytes_of(h),
            OptimStep::MuonMomentum(h) => bytemuck::bytes_of(h),
        }
    }
}

/// How an optimizer's state is stored: bitsandbytes' `optim_bits`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OptimBits {
    /// f32 state (PyTorch's).
    #[default]
    B32,
    /// bfloat16 state: read, computed in f32, written back rounded to nearest-even.
    B16,
    /// Adam's blockwise 8-bit state (see `backend::quant`).
    B8,
}

impl OptimBits {
    /// Every width, widest first.
    pub const ALL: [OptimBits; 3] = [OptimBits::B32, OptimBits::B16, OptimBits::B8];

    /// 32, 16 or 8.
    pub const fn bits(self) -> u32 {
        match self {
            OptimBits::B32 => 32,
            OptimBits::B16 => 16,
            OptimBits::B8 => 8,
        }
    }

    /// Whether this is the f32 default (JSON leaves it out).
    pub fn is_b32(&self) -> bool {
        *self == OptimBits::B32
    }

    /// The width called `bits`, or an error naming the valid ones.
    pub fn from_bits(bits: u64) -> Result<OptimBits, String> {
        match bits {
            32 => Ok(OptimBits::B32),
            16 => Ok(OptimBits::B16),
            8 => Ok(OptimBits::B8),
            _ => Err(format!(
                "invalid optim_bits {bits}: use 32 (f32 state), 16 (bfloat16) or 8 (blockwise 8-bit: adam, adamw, sgd with momentum, rmsprop, adagrad, lion, ademamix)"
            )),
        }
    }
}

impl serde::Serialize for OptimBits {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.bits())
    }
}

impl<'de> serde::Deserialize<'de> for OptimBits {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<OptimBits, D::Error> {
        let bits = u64::deserialize(d)?;
        OptimBits::from_bits(bits).map_err(serde::de::Error::custom)
    }
}

/// The buffers of blockwise 8-bit state (layout in `backend::quant::BlockTable`), each a whole
/// buffer of 32-bit words: one code buffer per state slot the step keeps (one to three).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blockwise8 {
    /// Each kept slot's codes, in slot order: one byte per arena element, four to a word.
    pub codes: Vec<View>,
    /// Bit k set: slot k's codes are on the signed map, else on the unsigned one
    /// ([`Slot::signed_8bit`]).
    pub signed: u32,
    /// One f32 absmax per quantized block, slot after slot.
    pub absmax: View,
    /// f32 state of the small tensors, slot after slot.
    pub small: View,
    /// The block table as 32-bit words, for the GPU kernel: the maps and thresholds, then
    /// `rows`.
    pub table: View,
    /// The blocks a step updates (the trainable tensors'), as the table lists them: the CPU
    /// twin walks them, and a GPU splits the step into chunks of whole rows when the arena is
    /// larger than one binding.
    pub rows: std::sync::Arc<Vec<Block>>,
    /// Quantized blocks (the length of each absmax region).
    pub quantized_blocks: usize,
    /// Elements with f32 state (the length of each small region).
    pub small_len: usize,
}

/// Adafactor: `shaders/adafactor.wgsl` (its own entry points, bindings and header), reading
/// [`AdafactorParams`]; no per-element slots.
pub const ADAFACTOR: KernelInfo = info::<AdafactorParams>("adafactor", "AdafactorParams", AdafactorParams::FIELDS, &[]);

/// Adafactor's buffers (layout in [`crate::backend::factored::FactorTable`]), each a whole
/// buffer of 32-bit words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Factored {
    /// Every tensor's statistics: R then C per factored tensor, V per vector. As f32 values, or
    /// (`bf16`) as bfloat16 two a word: statistic i in the low half of word i / 2 when i is
    /// even, in the high half when odd, which is a little-endian `[u16]` of the statistics.
    pub state: View,
    /// Whether the statistics are bfloat16 (each rounded to nearest-even where it is stored;
    /// the rest of the step reads the stored value).
    pub bf16: bool,
    /// Per-step partial and per-tensor sums (overwritten by every step).
    pub work: View,
    /// The table as 32-bit words, for the GPU kernels.
    pub table: View,
    /// The table the CPU twin walks, and the counts the launches need.
    pub layout: std::sync::Arc<super::factored::FactorTable>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_settings_in_binding_order() {
        let OptimStep::Rmsprop(mut h) = OptimStep::ALL[2] else { unreachable!("ALL lists RMSProp third") };
        assert_eq!(OptimStep::Rmsprop(h).slots(), vec![Slot::SquareAvg]);
        h.centered = 1;
        assert_eq!(OptimStep::Rmsprop(h).slots(), vec![Slot::SquareAvg, Slot::GradAvg]);
        assert_eq!(OptimStep::Rmsprop(h).binding_positions(), [Some(0), None, Some(1)]);
        h.momentum = 0.9;
        assert_eq!(OptimStep::Rmsprop(h).slots(), vec![Slot::SquareAvg, Slot::MomentumBuffer, Slot::GradAvg]);
        assert!(matches!(OptimStep::ALL[0], OptimStep::Sgd(_)));
        assert_eq!(OptimStep::ALL[0].slots(), vec![], "SGD without momentum keeps nothing");
    }

    #[test]
    fn field_tables_cover_the_whole_struct() {
        for step in OptimStep::ALL {
            let k = step.kernel();
            assert_eq!(k.fields.len() * 4, k.size, "{}: every field is 4 bytes, no padding", k.params);
            assert_eq!(step.param_bytes().len(), k.size);
            for (i, f) in k.fields.iter().enumerate() {
                assert_eq!(f.offset, 4 * i, "{}.{}", k.params, f.name);
            }
        }
    }
}
