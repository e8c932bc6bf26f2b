//! GPU-side timing: two timestamp queries around a span of recorded work.

use super::future::map_and_read;
use super::GpuBackend;
use crate::backend::pending::wait;
use anyhow::Result;

pub(super) struct Timer {
    pub(super) set: wgpu::QuerySet,
    pub(super) resolve: wgpu::Buffer,
    pub(super) readback: wgpu::Buffer,
}

impl GpuBackend {
    /// Write the first timestamp; false when the adapter has no timestamp queries.
    pub(super) fn start_timer(&mut self) -> bool {
        if self.timer.is_none() {
            return false;
        }
        self.encode_queued();
        let Some(t) = &self.timer else { return false };
        let encoder = self
            .encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }));
        encoder.write_timestamp(&t.set, 0);
        true
    }

    /// Write the second timestamp and resolve both into the readback buffer.
    pub(super) fn stop_timer(&mut self) {
        if self.timer.is_none() {
            return;
        }
        self.encode_queued();
        let Some(t) = &self.timer else { return };
        let encoder = self
            .encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }));
        encoder.write_timestamp(&t.set, 1);
        encoder.resolve_query_set(&t.set, 0..2, &t.resolve, 0);
        encoder.copy_buffer_to_buffer(&t.resolve, 0, &t.readback, 0, 16);
    }

    /// Seconds between the two timestamps, after submitting.
    pub(super) fn read_timer(&mut self) -> Result<Option<f64>> {
        if self.timer.is_none() {
            return Ok(None);
        }
        self.submit()?;
        let Some(t) = &self.timer else { return Ok(None) };
        let ticks = wait(map_and_read(&self.device, &self.errors, t.readback.clone(), "timer readback", |b| {
            let v = bytemuck::cast_slice::<u8, u64>(b);
            [v[0], v[1]]
        }))?;
        let period_ns = self.queue.get_timestamp_period() as f64;
        Ok(Some(ticks[1].saturating_sub(ticks[0]) as f64 * period_ns * 1e-9))
    }
}
