//! The ops a tape records: what each node was made by, with the operands and settings its
//! backward pass needs.

use super::Var;
use crate::backend::{Act, Axis, Bcast, BinaryOp, Dims, DropoutMask, Form, UnaryOp};
use crate::tensor::View;

#[derive(Clone, Debug)]
pub(super) enum Op {
    /// An input that needs no gradient (data, constants).
    Leaf,
    /// A trainable tensor whose gradient is written into `grad` (a slice of the gradient arena).
    Param {
        grad: View,
    },
    /// `act(op(A)·op(B) + bias)`.
    Matmul {
        form: Form,
        d: Dims,
        a: Var,
        b: Var,
        bias: Option<Var>,
        act: Act,
    },
    /// `act(x + bias)`, bias broadcast over rows.
    BiasAct {
        x: Var,
        bias: Option<Var>,
        act: Act,
    },
    /// `a op b`, either operand possibly broadcast.
    Binary {
        op: BinaryOp,
        a: Var,
        b: Var,
        bcast: Bcast,
    },
    Unary {
        op: UnaryOp,
        a: Var,
    },
    /// `scale · Σ a`.
    Sum {
        a: Var,
        scale: f32,
    },
    /// `scale ·` the sums of the matrix `a` along `axis` (the axis kept with size 1).
    SumAxis {
        a: Var,
        axis: Axis,
        scale: f32,
    },
    /// `a ⊙ mask` (dropout).
    Dropout {
        a: Var,
        mask: DropoutMask,
    },
    /// The same storage under another shape.
    Reshape {
        a: Var,
    },
    /// Maxima of `a` along `axis`, or the indices of the first maxima: a value no gradient
    /// flows through (see [`Tape::max_axis`]).
    Extreme {
        a: Var,
        axis: Axis,
        argmax: bool,
    },
    /// Mean softmax cross-entropy; d(loss)/d(logits) was computed with the forward pass.
    SoftmaxCe {
        logits: Var,
        dlogits: Option<View>,
        /// The labels and the label that marks a row as ignored (to count the rows the mean is
        /// over, when a step is split into row slices).
        labels: View,
        ignore_index: i32,
    },
}

pub(super) fn inputs_of(op: &Op) -> Vec<Var> {
    match *op {
        Op::Leaf | Op::Param { .. } => vec![],
        Op::Matmul { a, b, bias, .. } => [Some(a), Some(b), bias].into_iter().flatten().collect(),
        Op::BiasAct { x, bias, .. } => [Some(x), bias].into_iter().flatten().collect(),
        Op::Binary { a, b, .. } => vec![a, b],
        Op::Unary { a, .. }
        | Op::Sum { a, .. }
        | Op::SumAxis { a, .. }
        | Op::Reshape { a }
        | Op::Extreme { a, .. }
        | Op::Dropout { a, .. } => vec![a],
        Op::SoftmaxCe { logits, .. } => vec![logits],
    }
}
