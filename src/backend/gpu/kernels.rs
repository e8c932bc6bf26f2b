//! The kernel registry: every shader module and every kernel the backend launches, keyed by
//! enums and constants rather than strings. A kernel names its module, its entry point and the
//! access of each storage binding (1, 2, …); `tests/kernel_mirror.rs` checks those against
//! the WGSL through naga.

use crate::backend::optim_kernel::{OptimStep, STEP_8BIT_ENTRY};

/// The WGSL functions every module shares (activations, the flat index, NaN), compiled after
/// the op constants: see [`prelude`].
pub(super) const COMMON: &str = include_str!("../../../shaders/common.wgsl");

/// Each optimizer kernel is its own module: the shared arena bindings, then the kernel with its
/// own uniform struct (mirrored by `optim_kernel`'s `#[repr(C)]` structs).
macro_rules! optim_module {
    ($file:literal) => {
        concat!(include_str!("../../../shaders/optim.wgsl"), include_str!(concat!("../../../shaders/", $file)))
    };
}

/// A blockwise 8-bit module: `optim8.wgsl` (its bindings, header and entry point), then the
/// optimizer's own `update`.
macro_rules! optim8_module {
    ($file:literal) => {
        concat!(include_str!("../../../shaders/optim8.wgsl"), include_str!(concat!("../../../shaders/", $file)))
    };
}

/// Everything a module is compiled with before its own source: the op tables' constants, then
/// `COMMON`.
pub fn prelude() -> String {
    format!("{}\n{COMMON}\n", crate::backend::ops::wgsl_op_constants())
}

/// A module's whole WGSL source as the backend compiles it (for the mirror test and tools).
pub fn module_source(module: Module) -> String {
    format!("{}{}", prelude(), module.source())
}

/// Declares [`Module`], its label and source, and [`Module::ALL`] from one list.
macro_rules! modules {
    ($($(#[$doc:meta])* $name:ident => $label:literal, $source:expr;)*) => {
        /// A WGSL module. Every one is compiled and validated when the device opens, so that a
        /// broken shader is one clear error up front (and `--device auto` falls back to the CPU)
        /// rather than a failure in the middle of a run.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Module {
            $($(#[$doc])* $name,)*
        }

        impl Module {
            /// Every module, in declaration order.
            pub const ALL: &'static [Module] = &[$(Module::$name),*];

            /// Its name, for wgpu's labels and error messages.
            pub const fn label(self) -> &'static str {
                match self {
                    $(Module::$name => $label,)*
                }
            }

            /// Its WGSL source, without the [`prelude`].
            pub const fn source(self) -> &'static str {
                match self {
                    $(Module::$name => $source,)*
                }
            }
        }
    };
}

impl Module {
    /// Whether the module may run without runtime bounds checks ([`ShaderChecks::Trusted`]):
    /// every index it forms is guarded in the WGSL against the uniform's sizes, every loop has a
    /// trip count fixed by a constant or the uniform, every divisor is a nonzero constant, and
    /// every workgroup element is written before it is read. `Device::matmul` proves, before
    /// the dispatch, that each view holds what those sizes address. The tiled matmul only, so
    /// far: the other kernels keep wgpu's checks.
    ///
    /// [`ShaderChecks::Trusted`]: super::ShaderChecks::Trusted
    pub const fn trusted_ok(self) -> bool {
        matches!(self, Module::Matmul | Module::MatmulVec4)
    }
}

modules! {
    /// The tiled matmul with scalar loads.
    Matmul => "matmul", concat!(include_str!("../../../shaders/matmul.wgsl"), include_str!("../../../shaders/matmul_load_scalar.wgsl"));
    /// The tiled matmul with vec4 loads (every contiguous run and offset a multiple of 4).
    MatmulVec4 => "matmul_vec4", concat!(include_str!("../../../shaders/matmul.wgsl"), include_str!("../../../shaders/matmul_load_vec4.wgsl"));
    /// Bias and activation, activation backward, binary and unary ops, fill, expand, the
    /// non-finite check.
    Elementwise => "elementwise", include_str!("../../../shaders/elementwise.wgsl");
    /// Whole-vector operations: the inverse norm, scaling by a device scalar, a·x + b·y.
    Vector => "vector", include_str!("../../../shaders/vector.wgsl");
    /// Dropout from Philox4x32-10 (forward and gradient).
    Dropout => "dropout", include_str!("../../../shaders/dropout.wgsl");
    /// Row and column sums, the two-pass total.
    Reduce => "reduce", include_str!("../../../shaders/reduce.wgsl");
    /// Fused softmax and cross-entropy with its gradient and metrics.
    SoftmaxCe => "softmax_ce", include_str!("../../../shaders/softmax_ce.wgsl");
    /// Rows of an f32 matrix picked by an index list.
    GatherRows => "gather_rows", include_str!("../../../shaders/gather_rows.wgsl");
    /// A batch gathered from the dataset's images and labels.
    Gather => "gather", include_str!("../../../shaders/gather.wgsl");
    /// SGD with momentum, dampening, Nesterov and weight decay.
    OptimSgd => "optim_sgd", optim_module!("optim_sgd.wgsl");
    /// Adagrad.
    OptimAdagrad => "optim_adagrad", optim_module!("optim_adagrad.wgsl");
    /// RMSProp, centered or not, with momentum.
    OptimRmsprop => "optim_rmsprop", optim_module!("optim_rmsprop.wgsl");
    /// Adam and AdamW, with AMSGrad.
    OptimAdam => "optim_adam", optim_module!("optim_adam.wgsl");
    /// The lecture's momentum form.
    OptimLectureMomentum => "optim_lecture_momentum", optim_module!("optim_lecture_momentum.wgsl");
    /// NAdam and NAdamW.
    OptimNadam => "optim_nadam", optim_module!("optim_nadam.wgsl");
    /// RAdam and RAdamW.
    OptimRadam => "optim_radam", optim_module!("optim_radam.wgsl");
    /// Adamax.
    OptimAdamax => "optim_adamax", optim_module!("optim_adamax.wgsl");
    /// Adadelta.
    OptimAdadelta => "optim_adadelta", optim_module!("optim_adadelta.wgsl");
    /// Lion.
    OptimLion => "optim_lion", optim_module!("optim_lion.wgsl");
    /// Rprop.
    OptimRprop => "optim_rprop", optim_module!("optim_rprop.wgsl");
    /// ASGD.
    OptimAsgd => "optim_asgd", optim_module!("optim_asgd.wgsl");
    /// AdEMAMix.
    OptimAdemamix => "optim_ademamix", optim_module!("optim_ademamix.wgsl");
    /// Schedule-Free AdamW's step.
    OptimSchedulefree => "optim_schedulefree", optim_module!("optim_schedulefree.wgsl");
    /// Schedule-Free's train/eval switch and z's init.
    OptimSchedulefreeMode => "optim_schedulefree_mode", optim_module!("optim_schedulefree_mode.wgsl");
    /// Muon's momentum pass.
    OptimMuonMomentum => "optim_muon_momentum", optim_module!("optim_muon_momentum.wgsl");
    /// Adafactor: six passes over its per-tensor table.
    Adafactor => "adafactor", include_str!("../../../shaders/adafactor.wgsl");
    /// Blockwise 8-bit state (optim8.wgsl: its own bindings and header) with Adam's `update`.
    OptimAdam8 => "optim8_adam", optim8_module!("optim_adam.wgsl");
    /// Blockwise 8-bit SGD with momentum.
    OptimSgd8 => "optim8_sgd", optim8_module!("optim_sgd.wgsl");
    /// Blockwise 8-bit RMSProp.
    OptimRmsprop8 => "optim8_rmsprop", optim8_module!("optim_rmsprop.wgsl");
    /// Blockwise 8-bit Adagrad.
    OptimAdagrad8 => "optim8_adagrad", optim8_module!("optim_adagrad.wgsl");
    /// Blockwise 8-bit Lion.
    OptimLion8 => "optim8_lion", optim8_module!("optim_lion.wgsl");
    /// Blockwise 8-bit AdEMAMix.
    OptimAdemamix8 => "optim8_ademamix", optim8_module!("optim_ademamix.wgsl");
}

impl Module {
    /// The module of an optimizer step's kernel.
    pub const fn for_step(step: &OptimStep) -> Module {
        match step {
            OptimStep::Sgd(_) => Module::OptimSgd,
            OptimStep::Adagrad(_) => Module::OptimAdagrad,
            OptimStep::Rmsprop(_) => Module::OptimRmsprop,
            OptimStep::Adam(_) => Module::OptimAdam,
            OptimStep::LectureMomentum(_) => Module::OptimLectureMomentum,
            OptimStep::Nadam(_) => Module::OptimNadam,
            OptimStep::Radam(_) => Module::OptimRadam,
            OptimStep::Adamax(_) => Module::OptimAdamax,
            OptimStep::Adadelta(_) => Module::OptimAdadelta,
            OptimStep::Lion(_) => Module::OptimLion,
            OptimStep::Rprop(_) => Module::OptimRprop,
            OptimStep::Asgd(_) => Module::OptimAsgd,
            OptimStep::Ademamix(_) => Module::OptimAdemamix,
            OptimStep::Schedulefree(_) => Module::OptimSchedulefree,
            OptimStep::SchedulefreeMode(_) => Module::OptimSchedulefreeMode,
            OptimStep::MuonMomentum(_) => Module::OptimMuonMomentum,
        }
    }
}

/// How a kernel uses one storage binding: WGSL's `var<storage, read>` or
/// `var<storage, read_write>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
}

use Access::{Read as R, ReadWrite as RW};

/// A kernel: its module, its entry point, and the access of each storage binding (1, 2, …;
/// binding 0 is the uniform slot).
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    /// The module that holds it.
    pub module: Module,
    /// Its `@compute` entry point.
    pub entry: &'static str,
    /// Storage bindings 1, 2, … in order.
    pub bindings: &'static [Access],
}

const fn k(module: Module, entry: &'static str, bindings: &'static [Access]) -> Kernel {
    Kernel { module, entry, bindings }
}

/// `x`, `z` → `out`.
const ELEM: &[Access] = &[R, R, RW];
/// `a`, `b`, bias, activation input → `out`, column sums.
const MM: &[Access] = &[R, R, R, R, RW, RW];
/// Source → destination.
const REDUCE: &[Access] = &[R, RW];
/// Parameters (written), gradients, then the three state slots.
const OPT: &[Access] = &[RW, R, RW, RW, RW];
/// The grouped entries add the runs and the groups' structs (read-only).
const OPT_GROUPS: &[Access] = &[RW, R, RW, RW, RW, R, R];

pub(super) const K_MATMUL: Kernel = k(Module::Matmul, "main", MM);
pub(super) const K_MATMUL_VEC4: Kernel = k(Module::MatmulVec4, "main", MM);
pub(super) const K_BIAS_ACT: Kernel = k(Module::Elementwise, "bias_act", ELEM);
pub(super) const K_ACT_BACKWARD: Kernel = k(Module::Elementwise, "act_backward", ELEM);
pub(super) const K_BINARY: Kernel = k(Module::Elementwise, "binary", ELEM);
pub(super) const K_UNARY: Kernel = k(Module::Elementwise, "unary", ELEM);
pub(super) const K_UNARY_GRAD: Kernel = k(Module::Elementwise, "unary_grad", ELEM);
pub(super) const K_FILL: Kernel = k(Module::Elementwise, "fill", ELEM);
pub(super) const K_EXPAND: Kernel = k(Module::Elementwise, "expand", ELEM);
pub(super) const K_FIND_NONFINITE: Kernel = k(Module::Elementwise, "find_nonfinite", ELEM);
pub(super) const K_COL_SUM: Kernel = k(Module::Reduce, "col_sum", REDUCE);
pub(super) const K_ROW_SUM: Kernel = k(Module::Reduce, "row_sum", REDUCE);
pub(super) const K_SUM_PARTIAL: Kernel = k(Module::Reduce, "sum_partial", REDUCE);
pub(super) const K_SUM: Kernel = k(Module::Reduce, "sum", REDUCE);
pub(super) const K_MAX_COLS: Kernel = k(Module::Reduce, "max_cols", REDUCE);
pub(super) const K_MAX_ROWS: Kernel = k(Module::Reduce, "max_rows", REDUCE);
pub(super) const K_SOFTMAX_CE: Kernel = k(Module::SoftmaxCe, "main", &[R, R, RW, RW, RW]);
pub(super) const K_GATHER_ROWS: Kernel = k(Module::GatherRows, "gather_rows", &[R, R, RW]);
pub(super) const K_GATHER: Kernel = k(Module::Gather, "main", &[R, R, R, RW, RW, R, R, R]);
/// The blockwise 8-bit kernels' bindings: parameters, gradients, three code buffers, absmax,
/// small-tensor state, table.
const OPT8: &[Access] = &[RW, R, RW, RW, RW, RW, RW, R];

/// Every blockwise 8-bit kernel, for the mirror test ([`optim8`] picks one per step).
pub const EIGHT_BIT: &[Kernel] = &[
    k(Module::OptimAdam8, STEP_8BIT_ENTRY, OPT8),
    k(Module::OptimSgd8, STEP_8BIT_ENTRY, OPT8),
    k(Module::OptimRmsprop8, STEP_8BIT_ENTRY, OPT8),
    k(Module::OptimAdagrad8, STEP_8BIT_ENTRY, OPT8),
    k(Module::OptimLion8, STEP_8BIT_ENTRY, OPT8),
    k(Module::OptimAdemamix8, STEP_8BIT_ENTRY, OPT8),
];

/// The blockwise 8-bit kernel of `step`'s optimizer (None where it has none).
pub fn optim8(step: &OptimStep) -> Option<Kernel> {
    let module = match step {
        OptimStep::Adam(_) => Module::OptimAdam8,
        OptimStep::Sgd(_) => Module::OptimSgd8,
        OptimStep::Rmsprop(_) => Module::OptimRmsprop8,
        OptimStep::Adagrad(_) => Module::OptimAdagrad8,
        OptimStep::Lion(_) => Module::OptimLion8,
        OptimStep::Ademamix(_) => Module::OptimAdemamix8,
        _ => return None,
    };
    EIGHT_BIT.iter().copied().find(|k| k.module == module)
}
/// The vector kernels' bindings: x (read), y (written).
const VEC: &[Access] = &[R, RW];
pub(super) const K_SUMSQ_PARTIAL: Kernel = k(Module::Vector, "sumsq_partial", VEC);
pub(super) const K_INV_NORM: Kernel = k(Module::Vector, "inv_norm", VEC);
pub(super) const K_CLIP_COEF: Kernel = k(Module::Vector, "clip_coef", VEC);
pub(super) const K_SCALE_BY: Kernel = k(Module::Vector, "scale_by", VEC);
pub(super) const K_AXPBY: Kernel = k(Module::Vector, "axpby", VEC);
pub(super) const K_CLAMP: Kernel = k(Module::Vector, "clamp_values", VEC);
pub(super) const K_DROPOUT: Kernel = k(Module::Dropout, "dropout", VEC);
/// Adafactor's bindings: parameters, gradients, statistics, work sums, table.
const AF: &[Access] = &[RW, R, RW, RW, R];
pub(super) const K_AF_STATS: Kernel = k(Module::Adafactor, "af_stats", AF);
pub(super) const K_AF_COLS: Kernel = k(Module::Adafactor, "af_cols", AF);
pub(super) const K_AF_TENSOR_STATS: Kernel = k(Module::Adafactor, "af_tensor_stats", AF);
pub(super) const K_AF_USQ: Kernel = k(Module::Adafactor, "af_usq", AF);
pub(super) const K_AF_TENSOR_USQ: Kernel = k(Module::Adafactor, "af_tensor_usq", AF);
pub(super) const K_AF_APPLY: Kernel = k(Module::Adafactor, "af_apply", AF);

/// An optimizer step's kernel for entry `entry` (one of `STEP_ENTRIES`).
pub const fn optim(step: &OptimStep, entry: &'static str) -> Kernel {
    k(Module::for_step(step), entry, OPT)
}

/// An optimizer step's grouped kernel for entry `entry` (one of `GROUP_STEP_ENTRIES`).
pub const fn optim_groups(step: &OptimStep, entry: &'static str) -> Kernel {
    k(Module::for_step(step), entry, OPT_GROUPS)
}

/// Every kernel with a fixed entry, for the mirror test (optimizer steps: [`optim`]).
pub const FIXED: &[Kernel] = &[
    K_MATMUL,
    K_MATMUL_VEC4,
    K_BIAS_ACT,
    K_ACT_BACKWARD,
    K_BINARY,
    K_UNARY,
    K_UNARY_GRAD,
    K_FILL,
    K_EXPAND,
    K_FIND_NONFINITE,
    K_COL_SUM,
    K_ROW_SUM,
    K_SUM_PARTIAL,
    K_SUM,
    K_MAX_COLS,
    K_MAX_ROWS,
    K_SOFTMAX_CE,
    K_GATHER,
    K_GATHER_ROWS,
    K_SUMSQ_PARTIAL,
    K_INV_NORM,
    K_CLIP_COEF,
    K_SCALE_BY,
    K_AXPBY,
    K_CLAMP,
    K_DROPOUT,
    K_AF_STATS,
    K_AF_COLS,
    K_AF_TENSOR_STATS,
    K_AF_USQ,
    K_AF_TENSOR_USQ,
    K_AF_APPLY,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimizer_modules_are_named_after_their_kernel() {
        for step in OptimStep::ALL {
            assert_eq!(Module::for_step(&step).label(), format!("optim_{}", step.kernel().name));
        }
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<_> = Module::ALL.iter().map(|m| m.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), Module::ALL.len());
    }
}
