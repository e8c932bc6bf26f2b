//! The kernel registry: every shader module, its uniform and its entry points, and every entry
//! point's storage bindings, keyed by enums ([`Module`], [`Entry`]) declared in one table each:
//! no strings at the launch sites and no hand-kept lists. `tests/kernel_mirror.rs` walks
//! [`Kernel::all`] and checks each module's uniform, entry points and binding access against
//! the WGSL through naga.

use super::params::*;
use crate::backend::contract::Field;
use crate::backend::optim_kernel::OptimStep;

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

/// `x`, `z` → `out`.
const ELEM: &[Access] = &[R, R, RW];
/// `a`, `b`, bias, activation input → `out`, column sums.
const MM: &[Access] = &[R, R, R, R, RW, RW];
/// Source → destination.
const REDUCE: &[Access] = &[R, RW];
/// The vector kernels' bindings: x (read), y (written).
const VEC: &[Access] = &[R, RW];
/// Parameters (written), gradients, then the three state slots.
const OPT: &[Access] = &[RW, R, RW, RW, RW];
/// The checked entries add the non-finite flag.
const OPT_CHECKED: &[Access] = &[RW, R, RW, RW, RW, RW];
/// The grouped entries bind a placeholder there, then the runs and the groups' structs
/// (read-only).
const OPT_GROUPS: &[Access] = &[RW, R, RW, RW, RW, RW, R, R];
/// The blockwise 8-bit kernels' bindings: parameters, gradients, three code buffers, absmax,
/// small-tensor state, table.
const OPT8: &[Access] = &[RW, R, RW, RW, RW, RW, RW, R];
/// Adafactor's bindings: parameters, gradients, statistics, work sums, table.
const AF: &[Access] = &[RW, R, RW, RW, R];

/// Declares [`Entry`], its WGSL name and bindings, and [`Entry::ALL`] from one list.
macro_rules! entries {
    ($($(#[$doc:meta])* $name:ident => $wgsl:literal, $bindings:expr;)*) => {
        /// A `@compute` entry point. Several modules may share one (every optimizer module has
        /// the step entries); [`Module::entries`] says which a module has.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Entry {
            $($(#[$doc])* $name,)*
        }

        impl Entry {
            /// Every entry point, in declaration order.
            pub const ALL: &'static [Entry] = &[$(Entry::$name),*];

            /// Its WGSL function name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Entry::$name => $wgsl,)*
                }
            }

            /// The access of its storage bindings 1, 2, … in order (binding 0 is the uniform
            /// slot).
            pub const fn bindings(self) -> &'static [Access] {
                match self {
                    $(Entry::$name => $bindings,)*
                }
            }
        }
    };
}

entries! {
    /// The tiled matmul (both load widths).
    Matmul => "main", MM;
    /// A split-K product's second pass: partial sums → output, column sums.
    MatmulSplitSum => "split_sum", &[R, R, R, RW, RW];
    /// Bias and activation.
    BiasAct => "bias_act", ELEM;
    /// An activation's gradient.
    ActBackward => "act_backward", ELEM;
    /// A binary op, broadcast or flat.
    Binary => "binary", ELEM;
    /// A unary op.
    Unary => "unary", ELEM;
    /// A unary op's gradient.
    UnaryGrad => "unary_grad", ELEM;
    /// A constant.
    Fill => "fill", ELEM;
    /// A row or column broadcast to a matrix.
    Expand => "expand", ELEM;
    /// The first non-finite element's tag.
    FindNonfinite => "find_nonfinite", ELEM;
    /// Sums down the columns.
    ColSum => "col_sum", REDUCE;
    /// Sums along the rows.
    RowSum => "row_sum", REDUCE;
    /// The total's first pass (per-workgroup partials).
    SumPartial => "sum_partial", REDUCE;
    /// The total's second pass.
    Sum => "sum", REDUCE;
    /// Maxima down the columns.
    MaxCols => "max_cols", REDUCE;
    /// Maxima along the rows.
    MaxRows => "max_rows", REDUCE;
    /// Softmax, cross-entropy, its gradient and metrics.
    SoftmaxCe => "main", &[R, R, RW, RW, RW];
    /// Rows picked by an index list.
    GatherRows => "gather_rows", &[R, R, RW];
    /// A batch from the dataset.
    Gather => "main", &[R, R, R, RW, RW, R, R, R];
    /// Partial sums of squares.
    SumsqPartial => "sumsq_partial", VEC;
    /// 1 / ‖x‖ from the partials.
    InvNorm => "inv_norm", VEC;
    /// The clipping coefficient from the partials.
    ClipCoef => "clip_coef", VEC;
    /// x scaled by a device scalar.
    ScaleBy => "scale_by", VEC;
    /// a·x + b·y.
    Axpby => "axpby", VEC;
    /// Values clamped to a range.
    Clamp => "clamp_values", VEC;
    /// Dropout from Philox4x32-10.
    Dropout => "dropout", VEC;
    /// The bench's vectorised streaming kernel (y = s·x in vec4s).
    Stream => "stream", VEC;
    /// An optimizer step with f32 state: one element per invocation.
    StepF32 => "step_f32", OPT;
    /// An optimizer step with bfloat16 state: one 32-bit word (two elements) per invocation.
    StepBf16 => "step_bf16", OPT;
    /// [`Entry::StepF32`] that also records a non-finite gradient.
    StepF32Checked => "step_f32_checked", OPT_CHECKED;
    /// [`Entry::StepBf16`] that also records a non-finite gradient.
    StepBf16Checked => "step_bf16_checked", OPT_CHECKED;
    /// [`Entry::StepF32`] for parameter groups, each element looking its run up.
    StepF32Groups => "step_f32_groups", OPT_GROUPS;
    /// [`Entry::StepBf16`] for parameter groups.
    StepBf16Groups => "step_bf16_groups", OPT_GROUPS;
    /// A step with blockwise 8-bit state: one workgroup per row of blocks.
    Step8bit => "step_8bit", OPT8;
    /// Adafactor's per-unit row statistics.
    AfStats => "af_stats", AF;
    /// Adafactor's column statistics.
    AfCols => "af_cols", AF;
    /// Adafactor's per-tensor reduction of the statistics.
    AfTensorStats => "af_tensor_stats", AF;
    /// Adafactor's per-unit squared updates.
    AfUsq => "af_usq", AF;
    /// Adafactor's per-tensor reduction of the squared updates.
    AfTensorUsq => "af_tensor_usq", AF;
    /// Adafactor's update.
    AfApply => "af_apply", AF;
}

impl Entry {
    /// The plain step's entry for f32 (`bf16` false) or bfloat16 state.
    pub const fn step(bf16: bool) -> Entry {
        if bf16 {
            Entry::StepBf16
        } else {
            Entry::StepF32
        }
    }

    /// The checked step's entry for f32 or bfloat16 state.
    pub const fn step_checked(bf16: bool) -> Entry {
        if bf16 {
            Entry::StepBf16Checked
        } else {
            Entry::StepF32Checked
        }
    }

    /// The grouped step's entry for f32 or bfloat16 state.
    pub const fn step_groups(bf16: bool) -> Entry {
        if bf16 {
            Entry::StepBf16Groups
        } else {
            Entry::StepF32Groups
        }
    }

    /// Elements one invocation of a step entry updates (two bfloat16 per 32-bit word).
    pub const fn elements_per_invocation(self) -> usize {
        match self {
            Entry::StepBf16 | Entry::StepBf16Checked | Entry::StepBf16Groups => 2,
            _ => 1,
        }
    }
}

/// A module's uniform: the WGSL struct's name, and the Rust twin's fields and size.
#[derive(Clone, Copy, Debug)]
pub struct Uniform {
    /// The WGSL struct (its Rust twin is the same-named `#[repr(C)]` struct, or for the
    /// optimizers' `Arena` the arena header in [`super::params`]).
    pub name: &'static str,
    /// The Rust twin's fields.
    pub fields: &'static [Field],
    /// The Rust twin's size in bytes.
    pub size: usize,
}

/// Declares [`Module`], its label, source, uniform and entry points, and [`Module::ALL`] from
/// one list.
macro_rules! modules {
    ($($(#[$doc:meta])* $name:ident => $label:literal, $source:expr, $uname:literal: $uty:ty, [$($entry:ident),*];)*) => {
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

            /// Its uniform at binding 0 (an optimizer's is the arena header, then its
            /// parameter struct: see `optim_kernel`).
            pub const fn uniform(self) -> Uniform {
                match self {
                    $(Module::$name => Uniform { name: $uname, fields: <$uty>::FIELDS, size: size_of::<$uty>() },)*
                }
            }

            /// Its `@compute` entry points: exactly those the WGSL declares.
            pub const fn entries(self) -> &'static [Entry] {
                match self {
                    $(Module::$name => &[$(Entry::$entry),*],)*
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
    /// the dispatch, that each view holds what those sizes address. The tiled and large-tile
    /// matmuls only, so far: the other kernels keep wgpu's checks.
    ///
    /// [`ShaderChecks::Trusted`]: super::ShaderChecks::Trusted
    pub const fn trusted_ok(self) -> bool {
        matches!(self, Module::Matmul | Module::MatmulVec4 | Module::MatmulLarge | Module::MatmulLargeVec4)
    }
}

modules! {
    /// The tiled matmul with scalar loads.
    Matmul => "matmul", concat!(
            include_str!("../../../shaders/matmul_params.wgsl"),
            include_str!("../../../shaders/matmul.wgsl"),
            include_str!("../../../shaders/matmul_elements.wgsl"),
            include_str!("../../../shaders/matmul_load_scalar.wgsl")
        ),
        "MatmulParams": MatmulParams, [Matmul];
    /// The tiled matmul with vec4 loads (every contiguous run and offset a multiple of 4).
    MatmulVec4 => "matmul_vec4", concat!(
            include_str!("../../../shaders/matmul_params.wgsl"),
            include_str!("../../../shaders/matmul.wgsl"),
            include_str!("../../../shaders/matmul_load_vec4.wgsl")
        ),
        "MatmulParams": MatmulParams, [Matmul];
    /// The large-tile matmul: 128×128 tiles, 8×8 outputs per invocation, for shapes with
    /// enough tiles to fill a GPU.
    MatmulLarge => "matmul_large", concat!(
            include_str!("../../../shaders/matmul_params.wgsl"),
            include_str!("../../../shaders/matmul_large.wgsl"),
            include_str!("../../../shaders/matmul_elements.wgsl"),
            include_str!("../../../shaders/matmul_large_load_scalar.wgsl")
        ),
        "MatmulParams": MatmulParams, [Matmul];
    /// The large-tile matmul with vec4 loads (every contiguous run and offset a multiple of 4).
    MatmulLargeVec4 => "matmul_large_vec4", concat!(
            include_str!("../../../shaders/matmul_params.wgsl"),
            include_str!("../../../shaders/matmul_large.wgsl"),
            include_str!("../../../shaders/matmul_large_load_vec4.wgsl")
        ),
        "MatmulParams": MatmulParams, [Matmul];
    /// The second pass of a split-K matmul: the splits' partial sums added in order, then the
    /// epilogue.
    MatmulSplit => "matmul_split", include_str!("../../../shaders/matmul_split.wgsl"),
        "MatmulSplitParams": MatmulSplitParams, [MatmulSplitSum];
    /// Bias and activation, activation backward, binary and unary ops, fill, expand, the
    /// non-finite check.
    Elementwise => "elementwise", include_str!("../../../shaders/elementwise.wgsl"),
        "ElementwiseParams": ElementwiseParams, [BiasAct, ActBackward, Binary, Unary, UnaryGrad, Fill, Expand, FindNonfinite];
    /// Whole-vector operations: the inverse norm, scaling by a device scalar, a·x + b·y.
    Vector => "vector", include_str!("../../../shaders/vector.wgsl"),
        "VectorParams": VectorParams, [SumsqPartial, InvNorm, ClipCoef, ScaleBy, Axpby, Clamp];
    /// The bench's bandwidth reference: y = s·x, vec4 loads and stores, four per invocation.
    Stream => "stream", include_str!("../../../shaders/stream.wgsl"), "StreamParams": StreamParams, [Stream];
    /// Dropout from Philox4x32-10 (forward and gradient).
    Dropout => "dropout", include_str!("../../../shaders/dropout.wgsl"), "DropoutParams": DropoutParams, [Dropout];
    /// Row and column sums, the two-pass total.
    Reduce => "reduce", include_str!("../../../shaders/reduce.wgsl"),
        "ReduceParams": ReduceParams, [ColSum, RowSum, SumPartial, Sum, MaxCols, MaxRows];
    /// Fused softmax and cross-entropy with its gradient and metrics.
    SoftmaxCe => "softmax_ce", include_str!("../../../shaders/softmax_ce.wgsl"), "SoftmaxCeParams": SoftmaxCeParams, [SoftmaxCe];
    /// Rows of an f32 matrix picked by an index list.
    GatherRows => "gather_rows", include_str!("../../../shaders/gather_rows.wgsl"), "GatherRowsParams": GatherRowsParams, [GatherRows];
    /// A batch gathered from the dataset's images and labels.
    Gather => "gather", include_str!("../../../shaders/gather.wgsl"), "GatherParams": GatherParams, [Gather];
    /// SGD with momentum, dampening, Nesterov and weight decay.
    OptimSgd => "optim_sgd", optim_module!("optim_sgd.wgsl"), "Arena": OptimArena, [StepF32, StepBf16, StepF32Checked, StepBf16Checked, StepF32Groups, StepBf16Groups];
    /// Adagrad.
    OptimAdagrad => "optim_adagrad", optim_module!("optim_adagrad.wgsl"), "Arena": OptimArena, [StepF32, StepBf16, StepF32Checked, StepBf16Checked, StepF32Groups, StepBf16Groups];
    /// RMSProp, centered or not, with momentum.
    OptimRmsprop => "optim_rmsprop", optim_module!("optim_rmsprop.wgsl"), "Arena": OptimArena, [StepF32, StepBf16, StepF32Checked, StepBf16Checked, StepF32Groups, StepBf16Groups];
    /// Adam and AdamW, with AMSGrad.
    OptimAdam => "optim_adam", optim_module!("optim_adam.wgsl"), "Arena": OptimArena, [StepF32, StepBf16, StepF32Checked, StepBf16Checked, StepF32Groups, StepBf16Groups];
    /// The lecture's momentum form.
    OptimLectureMomentum => "optim_lecture_momentum", optim_module!("optim_lecture_momentum.wgsl"), "Arena": OptimArena, [StepF32, StepBf16, StepF32Checked, StepBf16Checked, StepF32Groups, StepBf16Groups];
    /// NAdam and NAdamW.
    OptimNadam => "optim_nadam", optim_module!("optim_nadam.wgsl"), "Arena": OptimArena, [StepF32, StepBf16, StepF32Checked, StepBf16Checked, StepF32Groups, StepBf16Groups];
    /// RAdam and RAdamW.
    OptimRadam => "optim_radam", optim_module!("optim_radam.wgsl"), "Arena": OptimArena, [StepF32, StepBf16, StepF32Checked, StepBf16Checked, StepF32Groups, StepBf16Groups];
    /// Adamax.
    OptimAdamax => "optim_adamax", optim_module!("optim_adamax.wgsl"), "Arena": OptimArena, [StepF32, StepBf16, StepF32Checked, StepBf16Checked, StepF32Groups, StepBf16Groups];
    /// Adadelta.
    OptimAdadelta => "optim_adadelta", optim_module!("optim_adadelta.wgsl"), "Arena": OptimArena, [StepF32, StepBf16, StepF32Checked, StepBf16Checked, StepF32Groups, StepBf16Groups];
    /// Lion.
    OptimLion => "optim_lion", optim_module!("optim_lion.wgsl"), "Arena": OptimArena, [StepF32, StepBf16, StepF32Checked, StepBf16Checked, StepF32Groups, StepBf16Groups];
    /// Rprop.
    OptimRprop => "optim_rprop", optim_module!("optim_rprop.wgsl"), "Arena": OptimArena, [StepF32, StepBf16, StepF32Checked, StepBf16Checked, StepF32Groups, StepBf16Groups];
    /// ASGD.
    OptimAsgd => "optim_asgd", optim_module!("optim_asgd.wgsl"), "Arena": OptimArena, [StepF32, StepBf16, StepF32Checked, StepBf16Checked, StepF32Groups, StepBf16Groups];
    /// AdEMAMix.
    OptimAdemamix => "optim_ademamix", optim_module!("optim_ademamix.wgsl"), "Arena": OptimArena, [StepF32, StepBf16, StepF32Checked, StepBf16Checked, StepF32Groups, StepBf16Groups];
    /// Schedule-Free AdamW's step.
    OptimSchedulefree => "optim_schedulefree", optim_module!("optim_schedulefree.wgsl"), "Arena": OptimArena, [StepF32, StepBf16, StepF32Checked, StepBf16Checked, StepF32Groups, StepBf16Groups];
    /// Schedule-Free's train/eval switch and z's init.
    OptimSchedulefreeMode => "optim_schedulefree_mode", optim_module!("optim_schedulefree_mode.wgsl"), "Arena": OptimArena, [StepF32, StepBf16, StepF32Checked, StepBf16Checked, StepF32Groups, StepBf16Groups];
    /// Muon's momentum pass.
    OptimMuonMomentum => "optim_muon_momentum", optim_module!("optim_muon_momentum.wgsl"), "Arena": OptimArena, [StepF32, StepBf16, StepF32Checked, StepBf16Checked, StepF32Groups, StepBf16Groups];
    /// Adafactor: six passes over its per-tensor table, in the order one step dispatches them
    /// (f32 statistics).
    Adafactor => "adafactor", concat!(
            include_str!("../../../shaders/adafactor.wgsl"),
            include_str!("../../../shaders/adafactor_state_f32.wgsl")
        ), "Arena": AdafactorArena,
        [AfStats, AfCols, AfTensorStats, AfUsq, AfTensorUsq, AfApply];
    /// Adafactor with bfloat16 statistics, two a word.
    AdafactorBf16 => "adafactor_bf16", concat!(
            include_str!("../../../shaders/adafactor.wgsl"),
            include_str!("../../../shaders/adafactor_state_bf16.wgsl")
        ), "Arena": AdafactorArena,
        [AfStats, AfCols, AfTensorStats, AfUsq, AfTensorUsq, AfApply];
    /// Blockwise 8-bit state (optim8.wgsl: its own bindings and header) with Adam's `update`.
    OptimAdam8 => "optim8_adam", optim8_module!("optim_adam.wgsl"), "Arena": Blockwise8Arena, [Step8bit];
    /// Blockwise 8-bit SGD with momentum.
    OptimSgd8 => "optim8_sgd", optim8_module!("optim_sgd.wgsl"), "Arena": Blockwise8Arena, [Step8bit];
    /// Blockwise 8-bit RMSProp.
    OptimRmsprop8 => "optim8_rmsprop", optim8_module!("optim_rmsprop.wgsl"), "Arena": Blockwise8Arena, [Step8bit];
    /// Blockwise 8-bit Adagrad.
    OptimAdagrad8 => "optim8_adagrad", optim8_module!("optim_adagrad.wgsl"), "Arena": Blockwise8Arena, [Step8bit];
    /// Blockwise 8-bit Lion.
    OptimLion8 => "optim8_lion", optim8_module!("optim_lion.wgsl"), "Arena": Blockwise8Arena, [Step8bit];
    /// Blockwise 8-bit AdEMAMix.
    OptimAdemamix8 => "optim8_ademamix", optim8_module!("optim_ademamix.wgsl"), "Arena": Blockwise8Arena, [Step8bit];
}

impl Module {
    /// The module of an optimizer step's kernel (f32 or bfloat16 state).
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

    /// The module of an optimizer step's blockwise 8-bit kernel (None where it has none).
    pub const fn for_step_8bit(step: &OptimStep) -> Option<Module> {
        Some(match step {
            OptimStep::Adam(_) => Module::OptimAdam8,
            OptimStep::Sgd(_) => Module::OptimSgd8,
            OptimStep::Rmsprop(_) => Module::OptimRmsprop8,
            OptimStep::Adagrad(_) => Module::OptimAdagrad8,
            OptimStep::Lion(_) => Module::OptimLion8,
            OptimStep::Ademamix(_) => Module::OptimAdemamix8,
            _ => return None,
        })
    }

    /// Whether `entry` is one of this module's.
    pub const fn has(self, entry: Entry) -> bool {
        let entries = self.entries();
        let mut i = 0;
        while i < entries.len() {
            if entries[i] as u8 == entry as u8 {
                return true;
            }
            i += 1;
        }
        false
    }
}

/// A kernel: an entry point of a module. Only [`Kernel::new`] makes one, and it refuses an
/// entry the module does not have (at compile time for the constants below).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    module: Module,
    entry: Entry,
}

impl Kernel {
    /// `module`'s entry point `entry`.
    ///
    /// # Panics
    /// If `module` has no such entry: a bug in the backend, caught at compile time where the
    /// kernel is a constant.
    pub const fn new(module: Module, entry: Entry) -> Kernel {
        assert!(module.has(entry), "the module has no such entry point");
        Kernel { module, entry }
    }

    /// The module that holds it.
    pub const fn module(self) -> Module {
        self.module
    }

    /// Its entry point.
    pub const fn entry(self) -> Entry {
        self.entry
    }

    /// Its WGSL entry point's name.
    pub const fn name(self) -> &'static str {
        self.entry.name()
    }

    /// The access of storage bindings 1, 2, … in order.
    pub const fn bindings(self) -> &'static [Access] {
        self.entry.bindings()
    }

    /// Every kernel: each module's entry points, in declaration order. The mirror test walks
    /// this list.
    pub fn all() -> impl Iterator<Item = Kernel> {
        Module::ALL.iter().flat_map(|&m| m.entries().iter().map(move |&e| Kernel { module: m, entry: e }))
    }

    /// An optimizer step's kernel: the plain or grouped step entry for f32 or bfloat16 state.
    pub const fn optim(step: &OptimStep, entry: Entry) -> Kernel {
        Kernel::new(Module::for_step(step), entry)
    }

    /// The blockwise 8-bit kernel of `step`'s optimizer (None where it has none).
    pub const fn optim8(step: &OptimStep) -> Option<Kernel> {
        match Module::for_step_8bit(step) {
            Some(m) => Some(Kernel::new(m, Entry::Step8bit)),
            None => None,
        }
    }
}

pub(super) const K_MATMUL: Kernel = Kernel::new(Module::Matmul, Entry::Matmul);
pub(super) const K_MATMUL_VEC4: Kernel = Kernel::new(Module::MatmulVec4, Entry::Matmul);
pub(super) const K_MATMUL_LARGE: Kernel = Kernel::new(Module::MatmulLarge, Entry::Matmul);
pub(super) const K_MATMUL_LARGE_VEC4: Kernel = Kernel::new(Module::MatmulLargeVec4, Entry::Matmul);
pub(super) const K_MATMUL_SPLIT_SUM: Kernel = Kernel::new(Module::MatmulSplit, Entry::MatmulSplitSum);
pub(super) const K_BIAS_ACT: Kernel = Kernel::new(Module::Elementwise, Entry::BiasAct);
pub(super) const K_ACT_BACKWARD: Kernel = Kernel::new(Module::Elementwise, Entry::ActBackward);
pub(super) const K_BINARY: Kernel = Kernel::new(Module::Elementwise, Entry::Binary);
pub(super) const K_UNARY: Kernel = Kernel::new(Module::Elementwise, Entry::Unary);
pub(super) const K_UNARY_GRAD: Kernel = Kernel::new(Module::Elementwise, Entry::UnaryGrad);
pub(super) const K_FILL: Kernel = Kernel::new(Module::Elementwise, Entry::Fill);
pub(super) const K_EXPAND: Kernel = Kernel::new(Module::Elementwise, Entry::Expand);
pub(super) const K_FIND_NONFINITE: Kernel = Kernel::new(Module::Elementwise, Entry::FindNonfinite);
pub(super) const K_COL_SUM: Kernel = Kernel::new(Module::Reduce, Entry::ColSum);
pub(super) const K_ROW_SUM: Kernel = Kernel::new(Module::Reduce, Entry::RowSum);
pub(super) const K_SUM_PARTIAL: Kernel = Kernel::new(Module::Reduce, Entry::SumPartial);
pub(super) const K_SUM: Kernel = Kernel::new(Module::Reduce, Entry::Sum);
pub(super) const K_MAX_COLS: Kernel = Kernel::new(Module::Reduce, Entry::MaxCols);
pub(super) const K_MAX_ROWS: Kernel = Kernel::new(Module::Reduce, Entry::MaxRows);
pub(super) const K_SOFTMAX_CE: Kernel = Kernel::new(Module::SoftmaxCe, Entry::SoftmaxCe);
pub(super) const K_GATHER_ROWS: Kernel = Kernel::new(Module::GatherRows, Entry::GatherRows);
pub(super) const K_GATHER: Kernel = Kernel::new(Module::Gather, Entry::Gather);
pub(super) const K_SUMSQ_PARTIAL: Kernel = Kernel::new(Module::Vector, Entry::SumsqPartial);
pub(super) const K_INV_NORM: Kernel = Kernel::new(Module::Vector, Entry::InvNorm);
pub(super) const K_CLIP_COEF: Kernel = Kernel::new(Module::Vector, Entry::ClipCoef);
pub(super) const K_SCALE_BY: Kernel = Kernel::new(Module::Vector, Entry::ScaleBy);
pub(super) const K_AXPBY: Kernel = Kernel::new(Module::Vector, Entry::Axpby);
pub(super) const K_CLAMP: Kernel = Kernel::new(Module::Vector, Entry::Clamp);
pub(super) const K_DROPOUT: Kernel = Kernel::new(Module::Dropout, Entry::Dropout);
pub(super) const K_STREAM: Kernel = Kernel::new(Module::Stream, Entry::Stream);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimizer_modules_are_named_after_their_kernel() {
        for step in OptimStep::ALL {
            assert_eq!(Module::for_step(&step).label(), format!("optim_{}", step.kernel().name));
            if let Some(m) = Module::for_step_8bit(&step) {
                assert_eq!(m.label(), format!("optim8_{}", step.kernel().name));
            }
        }
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<_> = Module::ALL.iter().map(|m| m.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), Module::ALL.len());
    }

    #[test]
    fn every_entry_belongs_to_some_module() {
        for &e in Entry::ALL {
            assert!(Kernel::all().any(|k| k.entry() == e), "{e:?} is in no module");
        }
    }
}
