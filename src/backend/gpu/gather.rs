//! The batch gather (`shaders/gather.wgsl`): rows of the dataset's images and labels, picked by
//! an index list, scaled into the input and label tensors.

use super::dispatch::Binding;
use super::kernels::{K_GATHER, K_GATHER_ROWS};
use super::params::{words_of, GatherParams, GatherRowsParams};
use super::{u, GpuBackend};
use crate::backend::ops::{ByteBuffer, Gather};
use crate::tensor::View;

/// Image chunks the gather kernel binds (WebGPU's default of 8 storage buffers per stage).
const GATHER_CHUNKS: usize = 4;

impl GpuBackend {
    /// Rows of the dataset picked by an index list into `x` and `y`, past one binding in chunks.
    pub(super) fn launch_gather(&mut self, g: &Gather) {
        let images = g.images.id;
        let size = self.buffer(images).size();
        let limit = self.limits.max_storage_buffer_binding_size;
        let row = g.row_len.max(1) as u64;
        // Images that fit one binding are bound whole, in all four places. Larger ones as
        // chunks of `chunk_rows` rows, a multiple of the offset alignment so that each chunk
        // starts aligned; a chunk past the data binds the first one again (never read).
        let (chunk_rows, chunks) = if size <= limit {
            (u32::MAX as u64, [(images, None); GATHER_CHUNKS])
        } else {
            let align = self.limits.min_storage_buffer_offset_alignment as u64;
            let chunk_rows = limit / row / align * align;
            let bytes = chunk_rows * row;
            if chunk_rows == 0 || GATHER_CHUNKS as u64 * bytes < size {
                let msg = crate::said![
                    format!(
                        "gather: {size} bytes of images in rows of {row} do not fit {GATHER_CHUNKS} bindings of {} MiB on {}; use a smaller dataset or ",
                        limit >> 20,
                        self.info.name
                    ),
                    crate::message::Setting::DeviceCpu
                ];
                self.errors.lock().map(|mut v| v.push(msg)).ok();
                return;
            }
            let chunk = |k: usize| {
                let start = if k as u64 * bytes < size { k as u64 * bytes } else { 0 };
                (images, Some((start, bytes.min(size - start))))
            };
            (chunk_rows, std::array::from_fn(chunk))
        };
        let mut bindings: Vec<Binding> = vec![chunks[0]];
        bindings.extend([(g.labels.id, None), (g.indices.id, None), (g.x.buf, None), (g.y.buf, None)]);
        bindings.extend(&chunks[1..]);
        let uni = words_of(&GatherParams {
            count: u(g.count),
            row_len: u(g.row_len),
            start: u(g.start),
            x_off: u(g.x.offset),
            y_off: u(g.y.offset),
            scale: g.scale,
            chunk_rows: chunk_rows as u32,
            pad1: 0,
        });
        let grid = self.grid(g.count * g.row_len);
        self.dispatch_ranged(K_GATHER, &uni, &bindings, grid);
    }

    /// Rows `indices[start..start + dst.len / cols]` of the `rows × cols` matrix `src` into
    /// `dst`; every buffer bound whole.
    pub(super) fn launch_gather_rows(&mut self, src: View, cols: usize, indices: ByteBuffer, start: usize, dst: View) {
        let count = dst.len / cols.max(1);
        let uni = words_of(&GatherRowsParams {
            count: u(count),
            cols: u(cols),
            start: u(start),
            rows: u(src.len / cols.max(1)),
            src_off: u(src.offset),
            dst_off: u(dst.offset),
            pad0: 0,
            pad1: 0,
        });
        let grid = self.grid(dst.len);
        self.dispatch(K_GATHER_ROWS, &uni, &[src.buf, indices.id, dst.buf], grid);
    }
}
