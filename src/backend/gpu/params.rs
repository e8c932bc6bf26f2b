//! The uniform of every non-optimizer kernel, as a `#[repr(C)]` struct mirrored field by field
//! by the same-named WGSL struct (`tests/kernel_mirror.rs` checks them through naga). The
//! optimizers' own scalars live in `backend::optim_kernel`, which the CPU twins share; their
//! arena headers are here.

use crate::backend::contract::kernel_params;

kernel_params!(
    /// `shaders/elementwise.wgsl`: every elementwise kernel. Absent operands read a placeholder
    /// at offset 0.
    ElementwiseParams {
        /// Elements of the output.
        n: u32,
        /// Columns of the output, for broadcasts and biases (1 when flat).
        cols: u32,
        /// A `BINARY_` or `UNARY_` code, or an expand's layout.
        op: u32,
        /// An `ACT_` code, or a binary op's two layouts (bits 0-7 and 8-15).
        act: u32,
        /// First element of X.
        x_off: u32,
        /// First element of Z.
        z_off: u32,
        /// First element of OUT.
        out_off: u32,
        /// 1 when Z is bound (a bias).
        has_z: u32,
        /// The op's scalar (a scale, an exponent, a fill value, a tag).
        param: f32,
        /// Padding to 16-byte rows.
        pad0: u32,
        /// Padding.
        pad1: u32,
        /// Padding.
        pad2: u32,
    }
);

kernel_params!(
    /// `shaders/matmul.wgsl`: `C = act((op(A)·op(B)) ⊙ act_grad'(Y) + bias)`, and the TN form's
    /// column sums.
    MatmulParams {
        /// Rows of C.
        m: u32,
        /// The inner size.
        k: u32,
        /// Columns of C.
        n: u32,
        /// A [`crate::backend::Form`] code.
        form: u32,
        /// First element of A.
        a_off: u32,
        /// First element of B.
        b_off: u32,
        /// First element of C.
        out_off: u32,
        /// First element of the bias.
        bias_off: u32,
        /// First element of Y (the activation output whose derivative multiplies).
        y_off: u32,
        /// First element of the column sums.
        colsum_off: u32,
        /// 1: add the bias.
        has_bias: u32,
        /// The `ACT_` code applied last.
        act: u32,
        /// 0: none; else 1 + the `ACT_` code whose derivative multiplies.
        grad_act: u32,
        /// 1: also write the column sums of the stored A.
        has_colsum: u32,
        /// 0: the whole product in one pass. Else the inner elements each split sums (a
        /// multiple of the 16-deep k-step): workgroup `z` sums `[z·k_split, (z+1)·k_split)` and
        /// writes the raw sums to split `z`'s slab of C (`m·n` values) and of the column sums
        /// (`m`), which `shaders/matmul_split.wgsl` then adds up.
        k_split: u32,
        /// Padding to 16-byte rows.
        pad1: u32,
    }
);

kernel_params!(
    /// `shaders/matmul_split.wgsl`: the second pass of a split-K product. Each output adds its
    /// splits' partial sums in split order, then applies the epilogue of [`MatmulParams`].
    MatmulSplitParams {
        /// Rows of C.
        m: u32,
        /// Columns of C.
        n: u32,
        /// How many splits (slabs) to add.
        splits: u32,
        /// First element of the partial products (split z's slab starts `z·m·n` later).
        part_off: u32,
        /// First element of the partial column sums (split z's starts `z·m` later).
        part_colsum_off: u32,
        /// First element of C.
        out_off: u32,
        /// First element of the bias.
        bias_off: u32,
        /// First element of Y (the activation output whose derivative multiplies).
        y_off: u32,
        /// First element of the column sums.
        colsum_off: u32,
        /// 1: add the bias.
        has_bias: u32,
        /// The `ACT_` code applied last.
        act: u32,
        /// 0: none; else 1 + the `ACT_` code whose derivative multiplies.
        grad_act: u32,
        /// 1: also write the column sums.
        has_colsum: u32,
        /// Padding to 16-byte rows.
        pad0: u32,
        /// Padding.
        pad1: u32,
        /// Padding.
        pad2: u32,
    }
);

kernel_params!(
    /// `shaders/reduce.wgsl`: row and column sums, and the two passes of the total.
    ReduceParams {
        /// Elements of X.
        n: u32,
        /// Columns of X.
        cols: u32,
        /// First element of X.
        x_off: u32,
        /// First element of OUT.
        out_off: u32,
        /// Multiplies each sum.
        scale: f32,
        /// `max_cols` / `max_rows`: 1 to write the first maximum's index instead of its value.
        argmax: u32,
        /// Padding.
        pad1: u32,
        /// Padding.
        pad2: u32,
    }
);

kernel_params!(
    /// `shaders/softmax_ce.wgsl`: softmax cross-entropy, its gradient and metrics in one pass.
    SoftmaxCeParams {
        /// Rows (examples).
        rows: u32,
        /// Columns (classes).
        cols: u32,
        /// First element of the logits.
        logits_off: u32,
        /// First element of the labels.
        labels_off: u32,
        /// Where the mean loss goes.
        loss_off: u32,
        /// First element of the logits' gradient.
        d_off: u32,
        /// Where the metrics (loss sum, correct count) go.
        metrics_off: u32,
        /// Bits: 1 loss, 2 gradient, 4 metrics.
        flags: u32,
        /// The label of rows that do not count (PyTorch's `ignore_index`).
        ignore_index: f32,
        /// Padding to 16-byte rows.
        pad0: u32,
        /// Padding.
        pad1: u32,
        /// Padding.
        pad2: u32,
    }
);

kernel_params!(
    /// `shaders/gather.wgsl`: a batch of dataset rows by index.
    GatherParams {
        /// Rows to gather.
        count: u32,
        /// Bytes per row.
        row_len: u32,
        /// First position of the index list.
        start: u32,
        /// First element of X.
        x_off: u32,
        /// First element of Y.
        y_off: u32,
        /// Multiplies each byte.
        scale: f32,
        /// Rows per image binding (`u32::MAX` when the images bind whole).
        chunk_rows: u32,
        /// Padding.
        pad1: u32,
    }
);

kernel_params!(
    /// `shaders/stream.wgsl`: the bench's vectorised streaming kernel, in vec4s.
    StreamParams {
        /// vec4s of Y to write.
        n4: u32,
        /// First vec4 of X.
        x_off4: u32,
        /// First vec4 of Y.
        y_off4: u32,
        /// The factor.
        scale: f32,
    }
);

kernel_params!(
    /// `shaders/optim.wgsl`'s `Arena`: the header before every optimizer's own parameters.
    OptimArena {
        /// Elements of the arena.
        n: u32,
        /// First element of the parameters.
        p_off: u32,
        /// First element of the gradients.
        g_off: u32,
        /// First element of state slot S0.
        s0: u32,
        /// First element of state slot S1.
        s1: u32,
        /// First element of state slot S2.
        s2: u32,
        /// Bit k set: slot Sk is bound.
        used: u32,
        /// 1: the gradient is read negated (PyTorch's `maximize`).
        maximize: u32,
        /// Padding (the optimizer's struct starts on 16 bytes).
        pad0: u32,
        /// First element of FLAG's two, in a `_checked` launch (which records a non-finite
        /// gradient there: [`GradCheck`](crate::backend::optim_kernel::GradCheck)).
        flag_off: u32,
        /// What FLAG's first element records.
        tag: f32,
        /// The index, in the whole step, of this launch's first element (a chunk's start).
        first: u32,
    }
);

kernel_params!(
    /// `shaders/optim8.wgsl`'s `Arena`: the blockwise 8-bit kernels' header, before the
    /// optimizer's parameter struct.
    Blockwise8Arena {
        /// Rows (workgroups) of blocks in this launch.
        n: u32,
        /// Added to arena indices of the parameters (wraps below zero in a chunk).
        p_off: u32,
        /// Added to arena indices of the gradients.
        g_off: u32,
        /// Quantized blocks of the arena (absmax slots).
        quantized: u32,
        /// Elements of the f32 state of small tensors.
        small: u32,
        /// Added to code word indices.
        code_off: u32,
        /// The first row of this launch.
        row0: u32,
        /// Bit 0: the gradient is read negated (PyTorch's `maximize`); bits 1–2: the slots
        /// kept (1 to 3); bit 4 + k: slot k's codes are on the signed map.
        flags: u32,
    }
);

kernel_params!(
    /// `shaders/adafactor.wgsl`'s `Arena`: the header before
    /// [`crate::backend::optim_kernel::AdafactorParams`].
    AdafactorArena {
        /// Tensors listed in the table.
        tensors: u32,
        /// Units (matrix rows and vector chunks).
        units: u32,
        /// Column chunks.
        chunks: u32,
        /// Factored matrices.
        matrices: u32,
        /// Added to arena indices of the parameters.
        p_off: u32,
        /// Added to arena indices of the gradients.
        g_off: u32,
        /// 1: the gradient is read negated (PyTorch's `maximize`).
        maximize: u32,
        /// Padding.
        pad0: u32,
    }
);

kernel_params!(
    /// `shaders/vector.wgsl`'s uniform.
    VectorParams {
        /// Elements.
        n: u32,
        /// First element of x.
        x_off: u32,
        /// First element of y.
        y_off: u32,
        /// The scalar's element (in y for inv_norm's output, in x for scale_by's input).
        s_off: u32,
        /// axpby's α.
        alpha: f32,
        /// axpby's β.
        beta: f32,
        /// inv_norm's floor of the norm.
        eps: f32,
        /// scale_by's elements per scalar (the batch's member length; n or more: one scalar).
        member_len: u32,
    }
);

kernel_params!(
    /// `shaders/dropout.wgsl`'s uniform (see [`crate::backend::DropoutMask`]).
    DropoutParams {
        /// Elements.
        n: u32,
        /// First element of x.
        x_off: u32,
        /// First element of y.
        y_off: u32,
        /// The tensor index of this dispatch's element 0 (a multiple of 4; nonzero past one
        /// binding).
        first: u32,
        /// Philox's key, low word.
        key_lo: u32,
        /// Philox's key, high word.
        key_hi: u32,
        /// Counter word 2.
        offset_lo: u32,
        /// Counter word 3.
        offset_hi: u32,
        /// Keep when the top 24 random bits are at least this.
        threshold: u32,
        /// What a kept element is multiplied by.
        scale: f32,
        /// Padding.
        pad0: u32,
        /// Padding.
        pad1: u32,
    }
);

kernel_params!(
    /// `shaders/gather_rows.wgsl`'s uniform.
    GatherRowsParams {
        /// Rows gathered.
        count: u32,
        /// Columns per row.
        cols: u32,
        /// The first position of the index list to read.
        start: u32,
        /// Rows of the source matrix (an index past them gives a NaN row).
        rows: u32,
        /// First element of the source.
        src_off: u32,
        /// First element of the output.
        dst_off: u32,
        /// Padding.
        pad0: u32,
        /// Padding.
        pad1: u32,
    }
);

/// The uniform word holding `$field` of `$params` (for chunked launches that rebase it).
macro_rules! word {
    ($params:ty, $field:ident) => {
        std::mem::offset_of!($params, $field) / 4
    };
}
pub(super) use word;

/// A uniform struct as the words the uniform ring takes.
pub(super) fn words_of<T: bytemuck::Pod>(p: &T) -> Vec<u32> {
    bytemuck::cast_slice(bytemuck::bytes_of(p)).to_vec()
}
