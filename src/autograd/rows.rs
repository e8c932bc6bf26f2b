//! Whether a loss recorded on a slice of the batch's rows adds up, slice by slice, to the
//! batch's loss: the check a data-parallel step ([`super::data_parallel`]) makes before it
//! sums the slices' gradients, so that a graph whose ops mix rows falls back to the per-op
//! path instead of giving a wrong gradient.
//!
//! Each value is classified as it was computed: independent of the batch (parameters,
//! constants), row-wise (row r depends on the batch's row r alone), or a sum over rows of
//! row-wise values, taken as a mean or a plain sum, and used only linearly after that. An input
//! is row-wise when its first dimension is the slice's row count. A loss that is such a mean
//! (over `count` rows) adds up with weights `count_s / Σ count`; a sum adds up with weight 1.

use super::*;

/// How one slice's loss combines with the other slices' into the batch's loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceLoss {
    /// A mean over `count` rows of the slice: the batch's loss is `Σ_s count_s / Σ count · L_s`.
    Mean {
        /// Rows the mean is over (cross-entropy's rows not ignored).
        count: usize,
    },
    /// A sum over the slice's rows: the batch's loss is `Σ_s L_s`.
    Sum,
}

const ADDS_TO_A_SUM: &str = "adds a constant to a sum over rows (each slice would add it again)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rows {
    /// Depends on no row of the batch.
    Const,
    /// Row r depends on the batch's row r alone.
    PerRow,
    /// Linear in a sum over rows of row-wise values.
    Summed(SliceLoss),
}

/// Whether an operand of an elementwise op keeps rows apart: a row-wise operand must be indexed
/// by row (whole, or a column broadcast along its row), a constant must be the same for every
/// row (a broadcast row or a single value).
fn binary_rows(op: BinaryOp, a: Rows, b: Rows, bcast: Bcast) -> std::result::Result<Rows, &'static str> {
    use Rows::*;
    let by_row = |l: Layout| matches!(l, Layout::Full | Layout::Col);
    match (a, b) {
        (Const, Const) => Ok(Const),
        (PerRow, PerRow) if by_row(bcast.a) && by_row(bcast.b) => Ok(PerRow),
        (PerRow, Const) if by_row(bcast.a) && !by_row(bcast.b) => Ok(PerRow),
        (Const, PerRow) if !by_row(bcast.a) && by_row(bcast.b) => Ok(PerRow),
        (PerRow, PerRow | Const) | (Const, PerRow) => {
            Err("broadcasts across rows (a row-wise value indexed by column, or a constant with one value per row)")
        }
        (Summed(x), Summed(y)) if x == y && matches!(op, BinaryOp::Add | BinaryOp::Sub) => Ok(Summed(x)),
        (Summed(_), Summed(_)) => Err("combines two sums over rows other than by adding them with equal weights"),
        (Summed(x), Const) | (Const, Summed(x)) => match (op, x, a) {
            (BinaryOp::Mul, _, _) | (BinaryOp::Div, _, Summed(_)) => Ok(Summed(x)),
            (BinaryOp::Add | BinaryOp::Sub, SliceLoss::Mean { .. }, _) => Ok(Summed(x)),
            (BinaryOp::Add | BinaryOp::Sub, SliceLoss::Sum, _) => Err(ADDS_TO_A_SUM),
            _ => Err("divides by a sum over rows"),
        },
        _ => Err("combines a sum over rows with row-wise values"),
    }
}

impl Tape<'_> {
    /// How the loss `root`, recorded on a slice of `rows` rows, adds up with the other slices';
    /// `Err` with the first op (and why) that keeps it from adding up.
    pub(crate) fn slice_loss(&mut self, root: Var, rows: usize) -> Result<std::result::Result<SliceLoss, String>> {
        self.node(root)?;
        ensure!(rows >= 2, "a slice of {rows} rows cannot tell a mean over rows from a sum");
        let mut kinds: Vec<Rows> = Vec::with_capacity(root.0 + 1);
        for i in 0..=root.0 {
            let node = &self.nodes[i];
            let k = |v: &Var| kinds[v.0];
            let kind: std::result::Result<Rows, &str> = match node.op {
                Op::Leaf if node.value.shape.first() == Some(&rows) => Ok(Rows::PerRow),
                Op::Leaf | Op::Param { .. } => Ok(Rows::Const),
                Op::Matmul { form, a, b, bias, .. } => {
                    let bias = bias.map_or(Rows::Const, |v| k(&v));
                    match (form, k(&a), k(&b), bias) {
                        (_, Rows::Const, Rows::Const, Rows::Const) => Ok(Rows::Const),
                        (Form::NN | Form::NT, Rows::PerRow, Rows::Const, Rows::Const) => Ok(Rows::PerRow),
                        (Form::TN, Rows::PerRow, Rows::PerRow, Rows::Const) => Ok(Rows::Summed(SliceLoss::Sum)),
                        _ => Err("is a product that contracts or spreads over the batch's rows"),
                    }
                }
                Op::BiasAct { x, bias, .. } => match (k(&x), bias.map_or(Rows::Const, |v| k(&v))) {
                    (x @ (Rows::Const | Rows::PerRow), Rows::Const) => Ok(x),
                    _ => Err("applies an activation or bias to a sum over rows"),
                },
                Op::Binary { op, a, b, bcast } => binary_rows(op, k(&a), k(&b), bcast),
                Op::Unary { op, a } => match (k(&a), op) {
                    (x @ (Rows::Const | Rows::PerRow), _) => Ok(x),
                    (x, UnaryOp::Scale(_)) => Ok(x),
                    (x @ Rows::Summed(SliceLoss::Mean { .. }), UnaryOp::AddScalar(_)) => Ok(x),
                    (_, UnaryOp::AddScalar(_)) => Err(ADDS_TO_A_SUM),
                    _ => Err("is a nonlinear function of a sum over rows"),
                },
                Op::Sum { a, scale } => match k(&a) {
                    Rows::PerRow if scale == 1.0 / self.nodes[a.0].value.len() as f32 => {
                        Ok(Rows::Summed(SliceLoss::Mean { count: rows }))
                    }
                    Rows::PerRow => Ok(Rows::Summed(SliceLoss::Sum)),
                    x => Ok(x),
                },
                Op::SumAxis { a, axis, scale } => match (k(&a), axis) {
                    (Rows::PerRow, Axis::Rows) if scale == 1.0 / rows as f32 => {
                        Ok(Rows::Summed(SliceLoss::Mean { count: rows }))
                    }
                    (Rows::PerRow, Axis::Rows) => Ok(Rows::Summed(SliceLoss::Sum)),
                    (x, _) => Ok(x),
                },
                Op::Extreme { a, axis, .. } => match (k(&a), axis) {
                    (Rows::PerRow, Axis::Cols) => Ok(Rows::PerRow),
                    (Rows::Const, _) => Ok(Rows::Const),
                    _ => Err("takes a maximum across the batch's rows"),
                },
                Op::Dropout { a, .. } => match k(&a) {
                    Rows::Const => Ok(Rows::Const),
                    _ => Err("draws a dropout mask by element index over the whole batch"),
                },
                Op::Reshape { a } => match k(&a) {
                    Rows::PerRow if node.value.shape.first() != Some(&rows) => Err("reshapes across rows"),
                    x => Ok(x),
                },
                Op::SoftmaxCe { logits, labels, ignore_index, .. } => match k(&logits) {
                    Rows::PerRow => {
                        let ignore = ignore_index as f32;
                        let count = self.dev.read(labels)?.iter().filter(|&&l| l != ignore).count();
                        Ok(Rows::Summed(SliceLoss::Mean { count }))
                    }
                    _ => Err("is a cross-entropy whose logits are not row-wise"),
                },
            };
            match kind {
                Ok(kind) => kinds.push(kind),
                Err(why) => return Ok(Err(format!("{} {why}", self.describe_tag(i)))),
            }
        }
        Ok(match kinds[root.0] {
            Rows::Summed(loss) => Ok(loss),
            Rows::Const => Err("the loss does not depend on the batch's rows".into()),
            Rows::PerRow => Err("the loss is a row-wise value, not a sum or mean over rows".into()),
        })
    }
}
