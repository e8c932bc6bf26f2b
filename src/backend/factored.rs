//! Adafactor's per-tensor layout: how each tensor is cut into units of work, where its factored
//! statistics live, and the table the kernels read. Built once from the arena's shapes (again
//! when the trainable tensors change), uploaded, and read by both backends, so one launch of
//! each pass covers every tensor.
//!
//! A tensor of two or more dimensions is factored over its last two (`rows` × `cols`, the leading
//! dimensions a batch of matrices): its state is a row statistic per row (R) and a column
//! statistic per column (C) of each matrix. A vector keeps a full second moment (V). The units:
//! one per matrix row, and one per [`CHUNK`] elements of a vector. The per-tensor sums (of p²
//! and of the update's square) are reduced from per-unit partials in a fixed order, so the
//! results do not depend on scheduling.
//!
//! A step computes each new statistic in f32 from the stored one and reads that f32 value for
//! the rest of the step, whatever width stores it: R and C go to the work buffer's fresh area
//! (as well as to the state), and V, which is per element, is recomputed where it is read and
//! stored by the last pass. So bfloat16 statistics give exactly the step that f32 ones give
//! from the same widened state, and only what is stored is rounded.

/// Elements of a vector per unit of work.
pub const CHUNK: usize = 1024;
/// Columns per column-statistics workgroup.
pub const COLS_PER_GROUP: usize = 64;
/// Words per tensor row of the table.
pub const TENSOR_WORDS: usize = 9;
/// Words per unit row and per column-chunk row of the table.
pub const UNIT_WORDS: usize = 4;

/// One tensor's place in the layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FactorTensor {
    /// First arena element.
    pub start: usize,
    /// Elements.
    pub n: usize,
    /// Matrices in the batch (1 for a matrix, 0 for a vector).
    pub batch: usize,
    /// Rows of each matrix (0 for a vector).
    pub rows: usize,
    /// Columns of each matrix (0 for a vector).
    pub cols: usize,
    /// Where its statistics start in the state buffer: R (batch·rows) then C (batch·cols), or V.
    pub state: usize,
    /// Its first unit.
    pub first_unit: usize,
    /// Its units.
    pub units: usize,
    /// Its first matrix among all factored matrices (the index of its first mean of R).
    pub first_matrix: usize,
    /// Where its statistics' f32 copies start in the work buffer's fresh area (a factored
    /// tensor's R then C, laid out as in the state; 0 for a vector, which keeps none).
    pub fresh: usize,
}

impl FactorTensor {
    /// Whether its second moment is factored (two or more dimensions).
    pub fn factored(&self) -> bool {
        self.cols > 0
    }

    /// Where C starts in the state buffer.
    pub fn col_state(&self) -> usize {
        self.state + self.batch * self.rows
    }

    /// Its state's length: batch·(rows + cols), or n.
    pub fn state_len(&self) -> usize {
        if self.factored() {
            self.batch * (self.rows + self.cols)
        } else {
            self.n
        }
    }
}

/// A unit of work: one matrix row, or one chunk of a vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit {
    /// First arena element.
    pub start: usize,
    /// Elements.
    pub len: usize,
    /// Its tensor, as an index into [`FactorTable::tensors`].
    pub tensor: usize,
    /// Its row statistic's index in the state buffer (a row), or its first V element (a chunk).
    pub state: usize,
}

/// Up to [`COLS_PER_GROUP`] columns of one matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColChunk {
    /// Its tensor.
    pub tensor: usize,
    /// The matrix within the tensor's batch.
    pub matrix: usize,
    /// Its first column.
    pub col0: usize,
}

/// Every trainable tensor's layout, units and column chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FactorTable {
    /// The listed (trainable) tensors, in arena order.
    pub tensors: Vec<FactorTensor>,
    /// Their units: each matrix's rows, each vector's chunks.
    pub units: Vec<Unit>,
    /// Their matrices' column chunks.
    pub col_chunks: Vec<ColChunk>,
    /// Each listed factored matrix: where its R starts in the state buffer, its rows, and
    /// where its R starts in the fresh area (the means of R are taken per matrix, in this
    /// order).
    pub matrix_rows: Vec<(usize, usize, usize)>,
    /// Length of the state buffer (every tensor's statistics, trainable or not).
    pub state_len: usize,
    /// Listed factored matrices (the length of `matrix_rows`).
    pub matrices: usize,
    /// Floats of the fresh area: the listed factored tensors' statistics.
    pub fresh_len: usize,
}

impl FactorTable {
    /// The layout of tensors given as (first arena element, shape), in ascending arena order
    /// without overlaps, all of them kept in the state buffer in this order; `active` says
    /// which are listed for stepping.
    pub fn new(tensors: &[(usize, Vec<usize>)], active: impl Fn(usize) -> bool) -> FactorTable {
        let mut t = FactorTable {
            tensors: Vec::new(),
            units: Vec::new(),
            col_chunks: Vec::new(),
            matrix_rows: Vec::new(),
            state_len: 0,
            matrices: 0,
            fresh_len: 0,
        };
        for (k, (start, shape)) in tensors.iter().enumerate() {
            let n: usize = shape.iter().product();
            let (batch, rows, cols) = match shape.len() {
                0 | 1 => (0, 0, 0),
                d => (shape[..d - 2].iter().product(), shape[d - 2], shape[d - 1]),
            };
            // A matrix with no elements has nothing to factor: treat it as an empty vector.
            let (batch, rows, cols) = if n == 0 { (0, 0, 0) } else { (batch, rows, cols) };
            let mut ft = FactorTensor {
                start: *start,
                n,
                batch,
                rows,
                cols,
                state: t.state_len,
                first_unit: t.units.len(),
                units: 0,
                first_matrix: t.matrices,
                fresh: 0,
            };
            t.state_len += ft.state_len();
            if !active(k) {
                continue;
            }
            let index = t.tensors.len();
            if ft.factored() {
                ft.fresh = t.fresh_len;
                t.fresh_len += ft.state_len();
                for b in 0..batch {
                    for i in 0..rows {
                        let row = b * rows + i;
                        t.units.push(Unit {
                            start: start + row * cols,
                            len: cols,
                            tensor: index,
                            state: ft.state + row,
                        });
                    }
                    for col0 in (0..cols).step_by(COLS_PER_GROUP) {
                        t.col_chunks.push(ColChunk { tensor: index, matrix: b, col0 });
                    }
                    t.matrix_rows.push((ft.state + b * rows, rows, ft.fresh + b * rows));
                }
                t.matrices += batch;
            } else {
                for at in (0..n).step_by(CHUNK) {
                    t.units.push(Unit {
                        start: start + at,
                        len: CHUNK.min(n - at),
                        tensor: index,
                        state: ft.state + at,
                    });
                }
            }
            ft.units = t.units.len() - ft.first_unit;
            t.tensors.push(ft);
        }
        t
    }

    /// Floats of the per-step work buffer: a partial per unit for Σp² and for Σu², two sums per
    /// tensor, a mean of R per matrix, then the fresh area.
    pub fn work_len(&self) -> usize {
        self.fresh_at() + self.fresh_len
    }

    /// Where the fresh area starts in the work buffer.
    pub fn fresh_at(&self) -> usize {
        2 * self.units.len() + 2 * self.tensors.len() + self.matrices
    }

    /// The table as the kernels read it: the tensors ([`TENSOR_WORDS`] each: first unit, units,
    /// rows, cols, batch, state, first matrix, n, fresh), then the units ([`UNIT_WORDS`] each:
    /// start, len, tensor, state), then the column chunks (tensor, matrix, first column, 0),
    /// then the matrices (R's start, rows, R's start in the fresh area, 0).
    pub fn words(&self) -> Vec<u32> {
        let u = |x: usize| x as u32;
        let mut w = Vec::with_capacity(self.words_len());
        for t in &self.tensors {
            w.extend([t.first_unit, t.units, t.rows, t.cols, t.batch, t.state, t.first_matrix, t.n, t.fresh].map(u));
        }
        for x in &self.units {
            w.extend([x.start, x.len, x.tensor, x.state].map(u));
        }
        for c in &self.col_chunks {
            w.extend([c.tensor, c.matrix, c.col0, 0].map(u));
        }
        for &(r, rows, fresh) in &self.matrix_rows {
            w.extend([r, rows, fresh, 0].map(u));
        }
        w
    }

    /// Words of [`FactorTable::words`].
    pub fn words_len(&self) -> usize {
        TENSOR_WORDS * self.tensors.len() + UNIT_WORDS * (self.units.len() + self.col_chunks.len() + self.matrices)
    }

    /// Word offset of the units in the table.
    pub fn unit_words(&self) -> usize {
        TENSOR_WORDS * self.tensors.len()
    }

    /// Word offset of the column chunks in the table.
    pub fn chunk_words(&self) -> usize {
        self.unit_words() + UNIT_WORDS * self.units.len()
    }

    /// Word offset of the matrices in the table.
    pub fn matrix_words(&self) -> usize {
        self.chunk_words() + UNIT_WORDS * self.col_chunks.len()
    }
}

/// PyTorch's `lerp(a, b, w)` for real numbers: `a + w·(b − a)` below w = ½, `b − (b − a)·(1 − w)`
/// from there (exact at w = 1).
#[inline(always)]
pub fn lerp(a: f32, b: f32, w: f32) -> f32 {
    if w < 0.5 {
        a + w * (b - a)
    } else {
        b - (b - a) * (1.0 - w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_rows_chunks_and_state() {
        // A 3×5 matrix at 0, a vector of 2500 at 16, a batch of 2 matrices 2×3 at 2520.
        let t = FactorTable::new(&[(0, vec![3, 5]), (16, vec![2500]), (2520, vec![2, 2, 3])], |_| true);
        assert_eq!(t.tensors.len(), 3);
        assert_eq!(t.units.len(), 3 + 3 + 4);
        assert_eq!(t.units[1], Unit { start: 5, len: 5, tensor: 0, state: 1 });
        assert_eq!(t.units[5], Unit { start: 16 + 2048, len: 452, tensor: 1, state: 8 + 2048 });
        assert_eq!(t.tensors[2].state, 8 + 2500);
        assert_eq!(t.tensors[2].col_state(), 8 + 2500 + 4);
        assert_eq!(t.state_len, 8 + 2500 + 10);
        assert_eq!((t.matrices, t.tensors[2].first_matrix), (3, 1));
        assert_eq!(t.col_chunks.len(), 1 + 2);
        assert_eq!(t.words().len(), t.words_len());
        // The fresh area: the factored tensors' R and C, in the order listed.
        assert_eq!((t.tensors[0].fresh, t.tensors[2].fresh, t.fresh_len), (0, 8, 8 + 10));
        assert_eq!(t.matrix_rows[2], (8 + 2500 + 2, 2, 8 + 2));
        assert_eq!(t.work_len(), 2 * 10 + 2 * 3 + 3 + 18);
        // An inactive tensor keeps its state but is not listed.
        let some = FactorTable::new(&[(0, vec![3, 5]), (16, vec![2500])], |k| k == 1);
        assert_eq!((some.tensors.len(), some.units.len(), some.state_len), (1, 3, 2508));
        assert_eq!(some.tensors[0].state, 8);
    }

    #[test]
    fn lerp_is_torchs() {
        assert_eq!(lerp(1.0, 3.0, 1.0), 3.0);
        assert_eq!(lerp(1.0, 3.0, 0.25), 1.5);
        assert_eq!(lerp(0.1, 0.7, 0.5), 0.7f32 - (0.7f32 - 0.1f32) * 0.5);
    }
}
