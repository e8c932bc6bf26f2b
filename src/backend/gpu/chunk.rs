//! Work past one binding: buffers larger than `max_storage_buffer_binding_size` are bound as
//! aligned sub-ranges, one dispatch per chunk, with each operand's offset word rebased.

use super::dispatch::Binding;
use super::kernels::{Access, Kernel};
use super::{u, GpuBackend};
use crate::tensor::View;

/// One operand of [`GpuBackend::launch_1d`].
#[derive(Clone, Copy)]
pub(super) struct Operand {
    pub(super) buf: usize,
    /// Its first element.
    pub(super) offset: usize,
    /// Bytes per element (4; 2 for bfloat16 state).
    pub(super) elem_bytes: u64,
    /// The uniform word holding its offset, rebased per chunk (None: bound whole).
    pub(super) offset_word: Option<usize>,
}

impl Operand {
    pub(super) fn at(v: View, word: usize) -> Operand {
        Operand { buf: v.buf, offset: v.offset, elem_bytes: 4, offset_word: Some(word) }
    }

    pub(super) fn whole(buf: usize) -> Operand {
        Operand { buf, offset: 0, elem_bytes: 4, offset_word: None }
    }
}

impl GpuBackend {
    /// Whether buffer `b` can be bound whole.
    pub(super) fn fits_binding(&self, b: usize) -> bool {
        self.buffer(b).size() <= self.limits.max_storage_buffer_binding_size
    }

    /// The byte range to bind for `bytes` bytes from byte `start` of buffer `b`: the offset
    /// rounded down to the adapter's alignment. Returns the binding and how many bytes into it
    /// `start` lies.
    pub(super) fn sub_range(&self, b: usize, start: u64, bytes: u64) -> (Binding, u64) {
        let align = self.limits.min_storage_buffer_offset_alignment as u64;
        let base = start / align * align;
        let size = (start - base + bytes).next_multiple_of(4).min(self.buffer(b).size() - base).max(4);
        ((b, Some((base, size))), start - base)
    }

    /// Elements per chunk of a 1-D launch (`elem_bytes` each) so that a chunk and its alignment
    /// slack fit one binding; a multiple of 1024.
    pub(super) fn chunk_elems(&self, elem_bytes: u64) -> usize {
        let slack = self.limits.min_storage_buffer_offset_alignment as u64 + 4;
        ((self.limits.max_storage_buffer_binding_size - slack) / elem_bytes) as usize / 1024 * 1024
    }

    /// A 1-D kernel over `n` elements whose operands are all read at `offset + i`: one dispatch
    /// when every buffer binds whole, else one per chunk of elements, each operand bound as the
    /// sub-range its chunk touches and its offset word rebased. `uniform[n_word]` holds the
    /// element count; each operand says where its offset word is (None: a placeholder or small
    /// buffer, bound whole). An invocation handles `per_invocation` elements.
    pub(super) fn launch_1d(
        &mut self,
        kern: Kernel,
        uniform: Vec<u32>,
        n_word: usize,
        operands: &[Operand],
        n: usize,
        per_invocation: usize,
    ) {
        self.launch_1d_at(kern, uniform, n_word, None, operands, n, per_invocation)
    }

    /// [`GpuBackend::launch_1d`] for a kernel that also needs each element's index in the whole
    /// (dropout's mask): `uniform[first_word]` holds where the chunk starts (a multiple of 1024).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn launch_1d_at(
        &mut self,
        kern: Kernel,
        mut uniform: Vec<u32>,
        n_word: usize,
        first_word: Option<usize>,
        operands: &[Operand],
        n: usize,
        per_invocation: usize,
    ) {
        if operands.iter().all(|o| self.fits_binding(o.buf)) {
            let bufs: Vec<usize> = operands.iter().map(|o| o.buf).collect();
            let grid = self.grid(n.div_ceil(per_invocation));
            return self.dispatch(kern, &uniform, &bufs, grid);
        }
        // Sub-ranges of one buffer bound for reading and for writing conflict in one dispatch.
        let written: Vec<usize> =
            operands.iter().zip(kern.bindings()).filter(|(_, &a)| a == Access::ReadWrite).map(|(o, _)| o.buf).collect();
        if operands
            .iter()
            .zip(kern.bindings())
            .any(|(o, &a)| a == Access::Read && o.offset_word.is_some() && written.contains(&o.buf))
        {
            let msg = format!(
                "{}: an in-place operation on a buffer past max_storage_buffer_binding_size ({} MiB) is not supported; write to another buffer",
                kern.name(),
                self.limits.max_storage_buffer_binding_size >> 20
            )
            .into();
            self.errors.lock().map(|mut v| v.push(msg)).ok();
            return;
        }
        let widest = operands.iter().filter(|o| o.offset_word.is_some()).map(|o| o.elem_bytes).max().unwrap_or(4);
        let chunk = self.chunk_elems(widest).max(per_invocation);
        for c0 in (0..n).step_by(chunk) {
            let len = chunk.min(n - c0);
            uniform[n_word] = u(len);
            if let Some(w) = first_word {
                uniform[w] = u(c0);
            }
            let mut bindings = Vec::with_capacity(operands.len());
            for o in operands {
                match o.offset_word {
                    None => bindings.push((o.buf, None)),
                    Some(w) => {
                        let eb = o.elem_bytes;
                        let (binding, into) = self.sub_range(o.buf, (o.offset + c0) as u64 * eb, len as u64 * eb);
                        uniform[w] = (into / eb) as u32;
                        bindings.push(binding);
                    }
                }
            }
            let grid = self.grid(len.div_ceil(per_invocation));
            self.dispatch_ranged(kern, &uniform, &bindings, grid);
        }
    }
}
