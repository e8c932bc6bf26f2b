//! Buffers and submission: allocation against the adapter's limits, writes, copies, readbacks
//! and the submit that uploads the uniform ring.

use super::future::{callback, check_errors, map_and_read};
use super::GpuBackend;
use crate::backend::pending::Pending;
use crate::tensor::View;
use anyhow::{bail, Result};

impl GpuBackend {
    /// Errors wgpu reported since the last check, as one error.
    pub(super) fn check(&self) -> Result<()> {
        check_errors(&self.device, &self.errors)
    }

    pub(super) fn buffer(&self, id: usize) -> &wgpu::Buffer {
        self.bufs[id].as_ref().expect("live GPU buffer")
    }

    pub(super) fn new_buffer(&mut self, bytes: u64, what: &str) -> Result<usize> {
        let max = self.limits.max_buffer_size;
        if bytes > max {
            bail!(crate::said![
                format!(
                    "{what} needs a buffer of {} MiB, over this adapter's max_buffer_size of {} MiB ({}); use a smaller size or ",
                    bytes >> 20,
                    max >> 20,
                    self.info.name
                ),
                crate::message::Setting::DeviceCpu
            ]);
        }
        let b = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.bufs.push(Some(b));
        Ok(self.bufs.len() - 1)
    }

    /// A zeroed buffer of `len` f32 values.
    pub(super) fn alloc_buffer(&mut self, len: usize) -> Result<usize> {
        self.new_buffer(len as u64 * 4, &format!("a tensor of {len} values"))
    }

    /// A buffer holding `data`, padded to a multiple of 4 bytes.
    pub(super) fn alloc_data(&mut self, data: &[u8]) -> Result<usize> {
        let size = (data.len() as u64).max(4).next_multiple_of(4);
        let id = self.new_buffer(size, &format!("{} bytes of data", data.len()))?;
        let mut padded = data.to_vec();
        padded.resize(size as usize, 0);
        self.queue.write_buffer(self.buffer(id), 0, &padded);
        Ok(id)
    }

    /// Drop a buffer (after submitting work that may use it) and the bind groups that name it.
    /// A scratch buffer of at least `need` bytes: `held` (buffer, bytes) when it is large
    /// enough, else a new one, the old one dropped after the work recorded so far. None, with
    /// the error logged and `held` kept, when the new one cannot be made.
    pub(super) fn grown(&mut self, held: Option<(usize, u64)>, need: u64, what: &str) -> Option<(usize, u64)> {
        if let Some((buf, bytes)) = held.filter(|&(_, bytes)| bytes >= need) {
            return Some((buf, bytes));
        }
        match self.new_buffer(need, what) {
            Ok(buf) => {
                if let Some((old, _)) = held {
                    self.free_buffer(old);
                }
                Some((buf, need))
            }
            Err(e) => {
                self.errors.lock().map(|mut v| v.push(crate::message::Message::of_error(&e))).ok();
                None
            }
        }
    }

    pub(super) fn free_buffer(&mut self, buf: usize) {
        if self.encoder.is_some() || !self.queued.is_empty() {
            let _ = self.submit();
        }
        self.bind_groups.retain(|k, _| !k.2.iter().any(|b| b.0 == buf));
        self.bufs[buf] = None;
    }

    /// Write `data` into `dst`, after the recorded work that reads the old contents.
    pub(super) fn write_f32(&mut self, dst: View, data: &[f32]) -> Result<()> {
        if data.len() != dst.len {
            bail!("write of {} values into a view of {}", data.len(), dst.len);
        }
        // Recorded work must see the old contents: submit it first.
        self.submit()?;
        self.queue.write_buffer(self.buffer(dst.buf), dst.offset as u64 * 4, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Write `words` into `dst` in order with the recorded work, without a submit: the words
    /// go to a fresh staging buffer (the queue writes it before the next submit's commands run)
    /// and a copy into `dst` is recorded, so dispatches recorded before still read the old
    /// contents and those recorded after the new ones.
    pub(super) fn record_write(&mut self, dst: View, words: &[u32]) {
        let bytes = words.len() as u64 * 4;
        if bytes == 0 {
            return;
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("in-order write"),
            size: bytes,
            usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&staging, 0, bytemuck::cast_slice(words));
        self.encode_queued();
        let encoder = self
            .encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }));
        encoder.copy_buffer_to_buffer(
            &staging,
            0,
            self.bufs[dst.buf].as_ref().expect("live"),
            dst.offset as u64 * 4,
            bytes,
        );
    }

    /// Copy `src` to a staging buffer, submit, and map it.
    pub(super) fn read_back(&mut self, src: View) -> Pending<Vec<f32>> {
        let bytes = (src.len as u64 * 4).max(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.encode_queued();
        let encoder = self
            .encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }));
        if src.len > 0 {
            encoder.copy_buffer_to_buffer(
                self.bufs[src.buf].as_ref().expect("live"),
                src.offset as u64 * 4,
                &staging,
                0,
                bytes,
            );
        }
        if let Err(e) = self.submit() {
            return Pending::ready(Err(e));
        }
        self.counters.bytes_read_back += src.len as u64 * 4;
        let len = src.len;
        map_and_read(&self.device, &self.errors, staging, "readback", move |b| {
            bytemuck::cast_slice::<u8, f32>(b)[..len].to_vec()
        })
    }

    /// Record a buffer-to-buffer copy.
    pub(super) fn record_copy(&mut self, src: View, dst: View) {
        self.encode_queued();
        let encoder = self
            .encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }));
        encoder.copy_buffer_to_buffer(
            self.bufs[src.buf].as_ref().expect("live"),
            src.offset as u64 * 4,
            self.bufs[dst.buf].as_ref().expect("live"),
            dst.offset as u64 * 4,
            src.len as u64 * 4,
        );
    }

    /// A future that completes when every submitted dispatch has run.
    pub(super) fn finish_work(&mut self) -> Pending<()> {
        if let Err(e) = self.submit() {
            return Pending::ready(Err(e));
        }
        let (done, fire) = callback(&self.device);
        self.queue.on_submitted_work_done(move || fire(()));
        let (device, errors) = (self.device.clone(), self.errors.clone());
        Pending::new(async move {
            done.await?;
            check_errors(&device, &errors)
        })
    }

    /// Submit the recorded encoder, uploading the uniform ring first; then report any device error.
    pub(super) fn submit(&mut self) -> Result<()> {
        self.encode_queued();
        if let Some(encoder) = self.encoder.take() {
            if !self.uniforms.is_empty() {
                self.queue.write_buffer(&self.ring, 0, &self.uniforms);
                self.uniforms.clear();
            }
            self.queue.submit([encoder.finish()]);
            self.counters.submits += 1;
        }
        self.check()
    }
}
