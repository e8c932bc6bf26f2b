//! The op vocabulary: the names both backends, the autograd and the f64 reference share.
//! Activations, matmul forms and epilogues, broadcast layouts, reduction axes, the elementwise
//! ops and the data gather. Nothing here executes anything.

use crate::tensor::View;
use anyhow::Result;

/// One table per elementwise op family: it declares the enum, and gives each op its kernel code,
/// its name, its WGSL constant (`const {PREFIX}{Variant}: u32 = code;`, prepended to every
/// shader module) and its examples in `ALL`, the list parity and the gradient checks walk. The
/// formulas stay hand-written in their three places (WGSL, the rayon twin, the f64 reference);
/// a WGSL `switch` on these codes has a `default` that writes NaN, so an op missing there fails
/// parity.
macro_rules! op_table {
    (
        $(#[$meta:meta])*
        pub enum $name:ident, wgsl $prefix:literal {
            $( $(#[$vdoc:meta])* $variant:ident $(($payload:ty))? = $code:literal, $label:literal, [$($example:expr),+]; )*
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $( $(#[$vdoc])* $variant $(($payload))?, )*
        }

        impl $name {
            /// Every op, ops with a parameter at each value the checks use.
            pub const ALL: [$name; [$($(stringify!($example)),+),*].len()] = [$($($example),+),*];

            /// The code the WGSL kernels switch on (the WGSL constant of the same name holds it).
            pub const fn op_code(self) -> u32 {
                match self {
                    $( $name::$variant { .. } => $code, )*
                }
            }

            /// The op's lowercase name, without its parameter.
            pub const fn op_name(self) -> &'static str {
                match self {
                    $( $name::$variant { .. } => $label, )*
                }
            }

            /// The WGSL constants for the codes.
            pub const WGSL: &'static str =
                concat!($( "const ", $prefix, stringify!($variant), ": u32 = ", $code, "u;\n", )*);
        }
    };
}

/// The WGSL constants of every op table ([`Act`], [`BinaryOp`], [`UnaryOp`]), prepended to every
/// shader module so the kernels' `switch`es name the same codes Rust sends.
pub fn wgsl_op_constants() -> String {
    [Act::WGSL, BinaryOp::WGSL, UnaryOp::WGSL].concat()
}

op_table! {
    /// Activation functions. Their derivatives are taken from the output `y`, which is what the
    /// forward pass keeps: `relu' = [y > 0]`, `sigmoid' = y(1 − y)`, `tanh' = 1 − y²`,
    /// `leaky_relu' = 1 if y > 0 else 0.01` (the sign of y is the sign of z).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    #[cfg_attr(feature = "app", derive(clap::ValueEnum))]
    pub enum Act, wgsl "ACT_" {
        /// `y = z`.
        Identity = 0, "identity", [Act::Identity];
        /// `y = max(z, 0)`.
        Relu = 1, "relu", [Act::Relu];
        /// `y = 1 / (1 + e^-z)`.
        Sigmoid = 2, "sigmoid", [Act::Sigmoid];
        /// `y = tanh(z)`.
        Tanh = 3, "tanh", [Act::Tanh];
        /// `y = z` for `z > 0`, else `0.01·z` (PyTorch's `nn.LeakyReLU()`, default slope).
        #[cfg_attr(feature = "app", value(name = "leaky_relu"))]
        LeakyRelu = 4, "leaky_relu", [Act::LeakyRelu];
    }
}

/// [`Act::LeakyRelu`]'s slope below zero: PyTorch's default `negative_slope` (the WGSL kernels
/// spell the same literal; parity compares them).
pub const LEAKY_RELU_SLOPE: f32 = 0.01;

impl Act {
    /// The lowercase name the CLI and reports use.
    pub fn name(self) -> &'static str {
        self.op_name()
    }

    /// The activation called `s` (see [`Act::name`]).
    pub fn parse(s: &str) -> Result<Act> {
        Act::ALL.into_iter().find(|a| a.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Act::ALL.iter().map(|a| a.name()).collect();
            anyhow::anyhow!("unknown activation '{s}': use one of {}", names.join(", "))
        })
    }

    /// The code the WGSL kernels switch on.
    pub fn code(self) -> u32 {
        self.op_code()
    }
}

/// The three matmul forms: A·B, A·Bᵀ and Aᵀ·B. The result is always m×n with inner size k.
/// Stored shapes: NN: A m×k, B k×n; NT: A m×k, B n×k; TN: A k×m, B k×n.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// `A·B`.
    NN,
    /// `A·Bᵀ` (a linear layer's forward pass with W stored [out, in]).
    NT,
    /// `Aᵀ·B` (a weight gradient).
    TN,
}

impl Form {
    /// Every form, for parity and gradient checks.
    pub const ALL: [Form; 3] = [Form::NN, Form::NT, Form::TN];

    /// The kernel's name in parity tables and anomaly reports.
    pub fn name(self) -> &'static str {
        match self {
            Form::NN => "matmul_nn",
            Form::NT => "matmul_nt",
            Form::TN => "matmul_tn",
        }
    }

    /// The code the WGSL kernel switches on.
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// Matmul dimensions: out is m×n, inner size k.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dims {
    /// Rows of the result.
    pub m: usize,
    /// The inner size summed over.
    pub k: usize,
    /// Columns of the result.
    pub n: usize,
}

/// Work fused into a matmul so a linear layer costs one kernel forward and two backward:
/// `out = act((A·B)[⊙ act_grad'(y)] + bias)`, and optionally the column sums of the stored A
/// (the bias gradient when A is dY in dW = dYᵀ·X).
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue {
    /// Added to every row (length n).
    pub bias: Option<View>,
    /// Applied last.
    pub act: Option<Act>,
    /// Multiply by the derivative of this activation, taken from its output `y` (m×n).
    pub act_grad: Option<(Act, View)>,
    /// TN only: also write the column sums of the stored A (k×m), length m.
    pub a_colsum: Option<View>,
}

/// How one operand of a broadcasting op is read over an output of `rows × cols` elements
/// (row-major): every element, one row repeated down the rows, one column repeated across
/// the columns, or one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layout {
    /// As long as the output: element `i`.
    Full,
    /// `cols` values: element `i % cols` (a `[1, n]` row or an `[n]` vector over `[m, n]`).
    Row,
    /// `rows` values: element `i / cols` (an `[m, 1]` column over `[m, n]`).
    Col,
    /// One value: element 0.
    Scalar,
}

impl Layout {
    /// The code the WGSL kernels switch on.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// Which element of an operand in this layout output element `i` reads.
    pub fn index(self, i: usize, cols: usize) -> usize {
        match self {
            Layout::Full => i,
            Layout::Row => i % cols,
            Layout::Col => i / cols,
            Layout::Scalar => 0,
        }
    }

    /// How many elements an operand in this layout holds for an output of `rows × cols`.
    pub fn len(self, rows: usize, cols: usize) -> usize {
        match self {
            Layout::Full => rows * cols,
            Layout::Row => cols,
            Layout::Col => rows,
            Layout::Scalar => 1,
        }
    }
}

/// How the two operands of [`Backend::binary`](super::Backend::binary) are read: the output
/// is `out.len / cols` rows of `cols`. [`Bcast::NONE`] is the plain elementwise case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bcast {
    /// How the left operand is read.
    pub a: Layout,
    /// How the right operand is read.
    pub b: Layout,
    /// Columns of the output (rows are `out.len / cols`).
    pub cols: usize,
}

impl Bcast {
    /// Both operands as long as the output.
    pub const NONE: Bcast = Bcast { a: Layout::Full, b: Layout::Full, cols: 1 };
}

/// The axis a reduction runs along, for a row-major `rows × cols` matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Axis {
    /// Axis 0: sum down each column, giving `cols` values (PyTorch's `sum(dim=0)`).
    Rows,
    /// Axis 1: sum along each row, giving `rows` values (PyTorch's `sum(dim=1)`).
    Cols,
}

impl Axis {
    /// PyTorch's `dim` for a matrix.
    pub fn dim(self) -> usize {
        match self {
            Axis::Rows => 0,
            Axis::Cols => 1,
        }
    }

    /// The layout in which a reduced result broadcasts back over the matrix.
    pub fn kept(self) -> Layout {
        match self {
            Axis::Rows => Layout::Row,
            Axis::Cols => Layout::Col,
        }
    }
}

op_table! {
    /// Elementwise binary operations.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum BinaryOp, wgsl "BINARY_" {
        /// `a + b`.
        Add = 0, "add", [BinaryOp::Add];
        /// `a − b`.
        Sub = 1, "sub", [BinaryOp::Sub];
        /// `a · b`.
        Mul = 2, "mul", [BinaryOp::Mul];
        /// `a / b`.
        Div = 3, "div", [BinaryOp::Div];
    }
}

op_table! {
    /// Elementwise unary operations, with their scalar parameter where they take one.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub enum UnaryOp, wgsl "UNARY_" {
        /// `s · a`.
        Scale(f32) = 0, "scale", [UnaryOp::Scale(-2.5)];
        /// `a + s`.
        AddScalar(f32) = 1, "add_scalar", [UnaryOp::AddScalar(0.75)];
        /// `a^p` (an integral `p` keeps the sign of a negative `a`).
        Pow(f32) = 2, "pow", [UnaryOp::Pow(3.0), UnaryOp::Pow(2.5)];
        /// Natural logarithm.
        Log = 3, "log", [UnaryOp::Log];
        /// `e^a`.
        Exp = 4, "exp", [UnaryOp::Exp];
        /// `sin a`.
        Sin = 5, "sin", [UnaryOp::Sin];
        /// `cos a`.
        Cos = 6, "cos", [UnaryOp::Cos];
        /// `|a|` (a NaN stays NaN).
        Abs = 7, "abs", [UnaryOp::Abs];
        /// −1, 0 or 1 as `a` is negative, zero (or NaN, as `torch.sign` gives on the CPU) or
        /// positive.
        Sign = 8, "sign", [UnaryOp::Sign];
        /// GELU, `½·a·(1 + erf(a/√2))` (PyTorch's `gelu`, `approximate='none'`).
        Gelu = 9, "gelu", [UnaryOp::Gelu];
        /// GELU's tanh form, `½·a·(1 + tanh(√(2/π)·(a + 0.044715·a³)))` (`approximate='tanh'`).
        GeluTanh = 10, "gelu_tanh", [UnaryOp::GeluTanh];
        /// SiLU (swish), `a·σ(a)`.
        Silu = 11, "silu", [UnaryOp::Silu];
    }
}

impl UnaryOp {
    /// (kernel code, parameter) as the WGSL kernel reads them.
    pub fn code(self) -> (u32, f32) {
        let param = match self {
            UnaryOp::Scale(s) | UnaryOp::AddScalar(s) | UnaryOp::Pow(s) => s,
            UnaryOp::Log
            | UnaryOp::Exp
            | UnaryOp::Sin
            | UnaryOp::Cos
            | UnaryOp::Abs
            | UnaryOp::Sign
            | UnaryOp::Gelu
            | UnaryOp::GeluTanh
            | UnaryOp::Silu => 0.0,
        };
        (self.op_code(), param)
    }

    /// Whether [`Backend::unary_grad`](super::Backend::unary_grad) has its derivative: the
    /// activations whose derivative needs the input (GELU, SiLU); the others' gradients are
    /// built from other ops.
    pub fn has_input_grad(self) -> bool {
        matches!(self, UnaryOp::Gelu | UnaryOp::GeluTanh | UnaryOp::Silu)
    }

    /// The name parity rows and reports use: the op's name, and a power's exponent (`pow2.5`).
    pub fn name(self) -> String {
        match self {
            UnaryOp::Pow(p) => format!("pow{p}"),
            _ => self.op_name().to_string(),
        }
    }
}

/// What a softmax cross-entropy writes, each optional: the mean loss (1 element), the
/// logits' gradient (as the logits), and [Σ row loss, correct count] added to `metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CeOutputs {
    /// The mean loss over the rows that count.
    pub loss: Option<View>,
    /// d(mean loss)/d(logits).
    pub dlogits: Option<View>,
    /// Two accumulators: Σ row loss and the argmax-correct count.
    pub metrics: Option<View>,
}

/// PyTorch's default `ignore_index` for cross-entropy: rows with this label do not count.
pub const IGNORE_INDEX: i32 = -100;

/// The class a label stored as f32 names: an integer in [0, classes), else `None` (NaN,
/// infinities, fractions, negatives, too large). The kernels apply the same rule.
pub fn class_index(label: f32, classes: usize) -> Option<usize> {
    (label >= 0.0 && label < classes as f32 && label.fract() == 0.0).then_some(label as usize)
}

/// Labels a cross-entropy can use: each one is `ignore_index` or a class in [0, classes).
/// The error names the first row that is neither, its label and the class count.
pub fn check_labels(labels: &[f32], classes: usize, ignore_index: i32) -> anyhow::Result<()> {
    match labels.iter().position(|&l| l != ignore_index as f32 && class_index(l, classes).is_none()) {
        None => Ok(()),
        Some(row) => anyhow::bail!(
            "label {} at row {row} is not a class index for {classes} classes (an integer in 0..{classes}, or the ignore_index {ignore_index})",
            labels[row]
        ),
    }
}

/// Gather a mini-batch from a dataset kept on the device as bytes: rows `indices[start..start +
/// count]` of `images` (u8, `row_len` per row) scaled by `scale` into `x`, their labels into `y`.
#[derive(Clone, Copy, Debug)]
pub struct Gather {
    /// `u8` pixels, `row_len` per row.
    pub images: ByteBuffer,
    /// `u8` class indices, one per row.
    pub labels: ByteBuffer,
    /// Little-endian u32 row indices.
    pub indices: ByteBuffer,
    /// The first position of `indices` to read.
    pub start: usize,
    /// Rows to gather.
    pub count: usize,
    /// Bytes (pixels) per row.
    pub row_len: usize,
    /// Multiplies each byte (1/255 maps pixels to [0, 1]).
    pub scale: f32,
    /// Output rows, `count × row_len` f32.
    pub x: View,
    /// Output labels, `count` f32 class indices.
    pub y: View,
}

/// A byte buffer on a device (datasets as `u8`, row indices as little-endian `u32`): what
/// [`Gather`] reads. Made by [`Device::upload_bytes`](super::Device::upload_bytes), freed by
/// [`Device::free_bytes`](super::Device::free_bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ByteBuffer {
    /// The backend's buffer id.
    pub id: usize,
    /// The allocation it was made from, checked as a [`View`]'s is (a byte buffer of another
    /// device, or one freed since, is refused).
    pub owner: crate::tensor::Owner,
}

/// Which elements a dropout keeps: element `i` of a tensor is kept when the top 24 bits of word
/// `i mod 4` of Philox4x32-10 (Salmon et al. 2011, as Random123 defines it) at counter
/// `(i / 4, 0, offset_lo, offset_hi)` and key `(seed_lo, seed_hi)` are at least `⌈p·2²⁴⌉`
/// (so an element is dropped with probability `p`, to within 2⁻²⁴), and a kept element is
/// scaled by `1/(1 − p)` as PyTorch's `nn.Dropout` does. The bits depend on the seed, the
/// offset and the element's index only: the same mask on every backend, thread count and
/// launch shape, and the gradient recomputes it instead of storing it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutMask {
    p: f32,
    /// Philox's key.
    pub seed: u64,
    /// Philox's counter words 2 and 3: a fresh offset per call gives a fresh mask.
    pub offset: u64,
}

impl DropoutMask {
    /// A mask that drops with probability `p` (0 ≤ p ≤ 1; at 1 every element is zeroed).
    pub fn new(p: f32, seed: u64, offset: u64) -> anyhow::Result<DropoutMask> {
        anyhow::ensure!((0.0..=1.0).contains(&p), "dropout probability has to be between 0 and 1, but got {p}");
        Ok(DropoutMask { p, seed, offset })
    }

    /// The probability of dropping an element.
    pub fn p(&self) -> f32 {
        self.p
    }

    /// An element is kept when its 24 random bits are at least this.
    pub fn threshold(&self) -> u32 {
        (self.p as f64 * (1u64 << 24) as f64).ceil() as u32
    }

    /// What a kept element is multiplied by: `1/(1 − p)` rounded to f32 (0 at p = 1, where
    /// nothing is kept).
    pub fn scale(&self) -> f32 {
        if self.p >= 1.0 {
            0.0
        } else {
            (1.0 / (1.0 - self.p as f64)) as f32
        }
    }
}

/// Muon's Newton–Schulz iteration's settings (PyTorch's `ns_coefficients`, `ns_steps`, `eps`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NewtonSchulz {
    /// (a, b, c) of X ← a·X + (b·S + c·S²)·X.
    pub coefficients: (f32, f32, f32),
    /// Iterations.
    pub steps: u64,
    /// Floor of the norm the matrix is first divided by.
    pub eps: f32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes are the table's positions, so a WGSL `switch` and the Rust side agree.
    #[test]
    fn op_codes_are_distinct_and_dense() {
        let act: Vec<u32> = Act::ALL.iter().map(|a| a.op_code()).collect();
        assert_eq!(act, (0..act.len() as u32).collect::<Vec<_>>());
        let bin: Vec<u32> = BinaryOp::ALL.iter().map(|o| o.op_code()).collect();
        assert_eq!(bin, (0..bin.len() as u32).collect::<Vec<_>>());
        let mut un: Vec<u32> = UnaryOp::ALL.iter().map(|o| o.op_code()).collect();
        un.dedup();
        assert_eq!(un, (0..un.len() as u32).collect::<Vec<_>>());
        assert!(UnaryOp::WGSL.contains("const UNARY_AddScalar: u32 = 1u;"), "{}", UnaryOp::WGSL);
    }
}
