//! The CPU backend's storage, and how a data-parallel step shares it: the main device lends
//! its buffers read-only to worker backends (one per row slice, see
//! [`crate::autograd::data_parallel`]), each worker writes gradients and accumulators into
//! private copies, and the main device sums those back in a fixed order.
//!
//! Sharing moves a buffer into an `Arc` without copying it; the first write on the main device
//! after the workers dropped their handles moves it back out, again without a copy.

use super::CpuBackend;
use crate::tensor::View;
use std::sync::Arc;

/// Buffer ids of a worker's own buffers start here, above any id a device hands out, so a
/// worker reads the main device's buffers under their own ids.
pub const WORKER_BASE: usize = usize::MAX / 2 + 1;

#[derive(Default)]
pub(super) enum Store {
    F32(Vec<f32>),
    Bytes(Vec<u8>),
    /// An f32 buffer lent to data-parallel workers (read-only while they hold it).
    SharedF32(Arc<Vec<f32>>),
    SharedBytes(Arc<Vec<u8>>),
    #[default]
    Freed,
}

impl Store {
    pub(super) fn f32s(&self) -> Option<&[f32]> {
        match self {
            Store::F32(v) => Some(v),
            Store::SharedF32(v) => Some(v),
            _ => None,
        }
    }

    pub(super) fn bytes(&self) -> Option<&[u8]> {
        match self {
            Store::Bytes(v) => Some(v),
            Store::SharedBytes(v) => Some(v),
            _ => None,
        }
    }

    /// A handle to lend: the buffer moves into an `Arc` (no copy) and stays there until the
    /// next write.
    fn lend(&mut self) -> Option<Store> {
        match std::mem::take(self) {
            Store::F32(v) => *self = Store::SharedF32(Arc::new(v)),
            Store::Bytes(v) => *self = Store::SharedBytes(Arc::new(v)),
            other => *self = other,
        }
        match self {
            Store::SharedF32(a) => Some(Store::SharedF32(a.clone())),
            Store::SharedBytes(a) => Some(Store::SharedBytes(a.clone())),
            _ => None,
        }
    }
}

/// The main device's buffers as lent to the workers of one step.
pub struct Lent {
    bufs: Vec<(usize, Store)>,
}

impl CpuBackend {
    /// A worker backend for one row slice of a data-parallel step (its ops run on the calling
    /// thread inside a [`crate::backend::host::SerialSection`]).
    pub fn worker() -> CpuBackend {
        CpuBackend { base: WORKER_BASE, ..CpuBackend::new() }
    }

    pub(super) fn slot(&self, buf: usize) -> &Store {
        if buf >= self.base {
            &self.bufs[buf - self.base]
        } else {
            self.outer.get(&buf).unwrap_or(&Store::Freed)
        }
    }

    pub(super) fn slot_mut(&mut self, buf: usize) -> &mut Store {
        if buf >= self.base {
            &mut self.bufs[buf - self.base]
        } else {
            self.outer.entry(buf).or_default()
        }
    }

    pub(super) fn push(&mut self, s: Store) -> usize {
        self.bufs.push(s);
        self.base + self.bufs.len() - 1
    }

    /// Move an f32 buffer out (to hold it mutably beside others); put it back with
    /// [`CpuBackend::put`]. A lent buffer comes back out of its `Arc` without a copy once no
    /// worker holds it; a worker writing a buffer it was lent gets a copy, and the write is
    /// recorded so the step can refuse it.
    pub(super) fn take(&mut self, buf: usize) -> Vec<f32> {
        match std::mem::take(self.slot_mut(buf)) {
            Store::F32(v) => v,
            Store::SharedF32(a) => Arc::try_unwrap(a).unwrap_or_else(|a| {
                self.foreign_writes.push(buf);
                a.to_vec()
            }),
            _ => panic!("buffer {buf} is not a live f32 buffer (or is bound twice)"),
        }
    }

    pub(super) fn put(&mut self, buf: usize, v: Vec<f32>) {
        *self.slot_mut(buf) = Store::F32(v);
    }

    pub(super) fn vec(&self, buf: usize) -> &[f32] {
        self.slot(buf).f32s().unwrap_or_else(|| panic!("buffer {buf} is not a live f32 buffer"))
    }

    /// Entries `start..start + count` of a byte buffer of little-endian u32 indices (a gather's
    /// row list).
    pub(super) fn indices(&self, buf: usize, start: usize, count: usize) -> Vec<usize> {
        self.bytes(buf)[start * 4..(start + count) * 4]
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .collect()
    }

    pub(super) fn bytes(&self, buf: usize) -> &[u8] {
        self.slot(buf).bytes().unwrap_or_else(|| panic!("buffer {buf} is not a byte buffer"))
    }

    /// The values of `v` (for summing workers' gradients into the main device).
    pub fn values(&self, v: View) -> &[f32] {
        &self.vec(v.buf)[v.range()]
    }

    /// Length of a live f32 buffer, `None` if `buf` is not one.
    pub fn buffer_len(&self, buf: usize) -> Option<usize> {
        self.slot(buf).f32s().map(|v| v.len())
    }

    /// Lend every live buffer except `private` (the buffers the workers write) to the workers
    /// of one step.
    pub fn lend(&mut self, private: &[usize]) -> Lent {
        let bufs = (0..self.bufs.len())
            .filter(|i| !private.contains(&(self.base + i)))
            .filter_map(|i| self.bufs[i].lend().map(|s| (self.base + i, s)))
            .collect();
        Lent { bufs }
    }

    /// A worker: see `lent`, and hold a private buffer of each given length under each id in
    /// `private` (kept from the last step when the length matches), with `zeroed` views
    /// cleared.
    pub fn attach(&mut self, lent: &Lent, private: &[(usize, usize)], zeroed: &[View]) {
        self.outer.retain(|id, s| matches!(s, Store::F32(_)) && private.iter().any(|&(p, _)| p == *id));
        for &(id, len) in private {
            if self.buffer_len(id) != Some(len) {
                self.outer.insert(id, Store::F32(vec![0.0; len]));
            }
        }
        for (id, s) in &lent.bufs {
            let handle = match s {
                Store::SharedF32(a) => Store::SharedF32(a.clone()),
                Store::SharedBytes(a) => Store::SharedBytes(a.clone()),
                _ => continue,
            };
            self.outer.insert(*id, handle);
        }
        for v in zeroed {
            let mut o = self.take(v.buf);
            o[v.range()].fill(0.0);
            self.put(v.buf, o);
        }
        self.foreign_writes.clear();
    }

    /// Drop every lent handle; the main-device buffers this worker wrote without owning them.
    pub fn detach(&mut self) -> Vec<usize> {
        let wrote = std::mem::take(&mut self.foreign_writes);
        self.outer.retain(|id, s| matches!(s, Store::F32(_)) && !wrote.contains(id));
        wrote
    }

    /// `dst = Σ weights[s] · parts[s]` (or `dst +=` it with `accumulate`), summed in a fixed
    /// pairwise tree over `s`: the result does not depend on the number of threads.
    pub fn reduce_into(&mut self, dst: View, parts: &[&[f32]], weights: &[f32], accumulate: bool) {
        self.ops += 1;
        let mut o = self.take(dst.buf);
        tree_sum(&mut o[dst.range()], parts, weights, accumulate);
        self.put(dst.buf, o);
    }
}

/// Elements per task of [`tree_sum`], and per pass of its scratch rows.
const REDUCE_CHUNK: usize = 4096;
const REDUCE_ROW: usize = 256;

/// See [`CpuBackend::reduce_into`]. Level by level, part `i` takes in part `i + stride` for
/// strides 1, 2, 4, …: parts (a, b, c, d, e) sum as ((a + b) + (c + d)) + e.
pub fn tree_sum(out: &mut [f32], parts: &[&[f32]], weights: &[f32], accumulate: bool) {
    assert!(parts.len() == weights.len() && parts.iter().all(|p| p.len() == out.len()), "tree_sum operand sizes");
    let k = parts.len();
    let task = |(c, o): (usize, &mut [f32])| {
        let mut scratch = vec![0f32; k.max(1) * REDUCE_ROW];
        for (r, o) in o.chunks_mut(REDUCE_ROW).enumerate() {
            let (at, n) = (c * REDUCE_CHUNK + r * REDUCE_ROW, o.len());
            for (s, (p, &w)) in parts.iter().zip(weights).enumerate() {
                let row = &mut scratch[s * REDUCE_ROW..s * REDUCE_ROW + n];
                row.iter_mut().zip(&p[at..at + n]).for_each(|(d, &x)| *d = w * x);
            }
            let mut stride = 1;
            while stride < k {
                for s in (0..k - stride).step_by(2 * stride) {
                    let (head, tail) = scratch.split_at_mut((s + stride) * REDUCE_ROW);
                    let dst = &mut head[s * REDUCE_ROW..s * REDUCE_ROW + n];
                    dst.iter_mut().zip(&tail[..n]).for_each(|(d, &x)| *d += x);
                }
                stride *= 2;
            }
            let sum = &scratch[..n];
            if k == 0 {
                if !accumulate {
                    o.fill(0.0);
                }
            } else if accumulate {
                o.iter_mut().zip(sum).for_each(|(o, s)| *o += s);
            } else {
                o.copy_from_slice(sum);
            }
        }
    };
    if super::fork(out.len()) {
        crate::backend::host::map_pinned(out.chunks_mut(REDUCE_CHUNK).enumerate().collect(), task);
    } else {
        out.chunks_mut(REDUCE_CHUNK).enumerate().for_each(task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_sum_is_pairwise_and_fixed() {
        let parts: Vec<Vec<f32>> = (0..5).map(|s| (0..9000).map(|i| (i * 7 + s) as f32 * 0.1).collect()).collect();
        let refs: Vec<&[f32]> = parts.iter().map(|p| &p[..]).collect();
        let w = [0.5, 0.25, 1.0, 2.0, 0.125];
        let mut out = vec![f32::NAN; 9000];
        tree_sum(&mut out, &refs, &w, false);
        for i in [0, 4095, 4096, 8999] {
            let t: Vec<f32> = (0..5).map(|s| w[s] * parts[s][i]).collect();
            assert_eq!(out[i], ((t[0] + t[1]) + (t[2] + t[3])) + t[4], "element {i}");
        }
        let before = out.clone();
        tree_sum(&mut out, &refs, &w, true);
        assert_eq!(out[10], before[10] + before[10]);
    }
}
