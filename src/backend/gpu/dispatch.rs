//! Recording dispatches: the pipeline and bind-group caches, the uniform ring (one 256-byte slot
//! per dispatch, uploaded once per submit), scratch copies for aliased reads, and the grid.
//! Dispatches are queued and encoded together, one compute pass for every run of dispatches
//! between other commands (a copy, a timestamp, the submit): a training step is one pass.

use super::kernels::{Access, Entry, Kernel, Module};
use super::{GpuBackend, RING_SLOTS, SLOT, WG};

/// A storage binding: a buffer, bound whole (`None`) or as `(byte offset, byte size)`.
pub(super) type Binding = (usize, Option<(u64, u64)>);

/// A dispatch recorded but not yet encoded: its bind group's key (the kernel and its
/// bindings, which also name its pipeline), uniform slot and grid.
pub(super) struct Queued {
    key: (Module, Entry, Vec<Binding>),
    offset: u32,
    grid: [u32; 3],
}

fn words(v: &[u32]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

impl GpuBackend {
    pub(super) fn pipeline(&mut self, kern: Kernel) -> &wgpu::ComputePipeline {
        let key = (kern.module(), kern.entry());
        if !self.pipelines.contains_key(&key) {
            let device = &self.device;
            let module = self.modules.get(&kern.module()).expect("every module is compiled when the device opens");
            let (_, layout) = self.layouts.entry(kern.bindings()).or_insert_with(|| {
                let mut entries = vec![wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: true,
                        min_binding_size: None,
                    },
                    count: None,
                }];
                for (i, &access) in kern.bindings().iter().enumerate() {
                    entries.push(wgpu::BindGroupLayoutEntry {
                        binding: i as u32 + 1,
                        visibility: wgpu::ShaderStages::COMPUTE,
                        ty: wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Storage { read_only: access == Access::Read },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                        count: None,
                    });
                }
                let bgl = device
                    .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: None, entries: &entries });
                let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: None,
                    bind_group_layouts: &[Some(&bgl)],
                    immediate_size: 0,
                });
                (bgl, pl)
            });
            let p = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kern.name()),
                layout: Some(layout),
                module,
                entry_point: Some(kern.name()),
                // A trusted module writes every workgroup element before reading it.
                compilation_options: wgpu::PipelineCompilationOptions {
                    zero_initialize_workgroup_memory: !(self.checks == super::ShaderChecks::Trusted
                        && kern.module().trusted_ok()),
                    ..Default::default()
                },
                cache: None,
            });
            self.pipelines.insert(key, p);
        }
        &self.pipelines[&key]
    }

    /// Record one dispatch: `uniform` words, storage buffers in binding order (each bound
    /// whole), and the workgroup grid.
    pub(super) fn dispatch(&mut self, kern: Kernel, uniform: &[u32], buffers: &[usize], grid: [u32; 3]) {
        let bindings: Vec<Binding> = buffers.iter().map(|&b| (b, None)).collect();
        self.dispatch_ranged(kern, uniform, &bindings, grid)
    }

    /// [`GpuBackend::dispatch`] with each storage buffer bound whole or as a byte range
    /// (offset aligned to `min_storage_buffer_offset_alignment`, size within
    /// `max_storage_buffer_binding_size`): how work past one binding is split into chunks.
    pub(super) fn dispatch_ranged(&mut self, kern: Kernel, uniform: &[u32], bindings: &[Binding], grid: [u32; 3]) {
        if self.uniforms.len() / SLOT >= RING_SLOTS {
            if let Err(e) = self.submit() {
                self.errors.lock().map(|mut v| v.push(crate::message::Message::of_error(&e))).ok();
            }
        }
        let max = self.limits.max_compute_workgroups_per_dimension;
        if grid.iter().any(|&g| g > max) {
            let msg =
                format!("{}: a grid of {grid:?} workgroups exceeds the adapter's {max} per dimension", kern.name())
                    .into();
            self.errors.lock().map(|mut v| v.push(msg)).ok();
            return;
        }
        if grid.contains(&0) {
            return;
        }
        let max_bind = self.limits.max_storage_buffer_binding_size;
        if let Some(&(b, _)) = bindings.iter().find(|(b, r)| r.is_none() && self.buffer(*b).size() > max_bind) {
            let msg = crate::said![
                format!(
                    "{}: a buffer of {} MiB bound whole, over this adapter's max_storage_buffer_binding_size of {} MiB ({}); this operation does not split its work into chunks: use smaller sizes or ",
                    kern.name(),
                    self.buffer(b).size() >> 20,
                    max_bind >> 20,
                    self.info.name
                ),
                crate::message::Setting::DeviceCpu
            ];
            self.errors.lock().map(|mut v| v.push(msg)).ok();
            return;
        }
        let mut bindings = bindings.to_vec();
        // A buffer must not be bound for reading and writing at once: read from a copy.
        let written: Vec<usize> =
            bindings.iter().zip(kern.bindings()).filter(|(_, &a)| a == Access::ReadWrite).map(|(b, _)| b.0).collect();
        for (i, &access) in kern.bindings().iter().enumerate() {
            if access == Access::Read && bindings[i].1.is_none() && written.contains(&bindings[i].0) {
                bindings[i].0 = self.scratch_copy(bindings[i].0);
            }
        }
        self.pipeline(kern);
        let key = (kern.module(), kern.entry(), bindings.clone());
        if !self.bind_groups.contains_key(&key) {
            let (bgl, _) = &self.layouts[kern.bindings()];
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &self.ring,
                    offset: 0,
                    size: std::num::NonZeroU64::new(SLOT as u64),
                }),
            }];
            for (i, &(b, range)) in bindings.iter().enumerate() {
                let resource = match range {
                    None => self.buffer(b).as_entire_binding(),
                    Some((offset, size)) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: self.buffer(b),
                        offset,
                        size: std::num::NonZeroU64::new(size),
                    }),
                };
                entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource });
            }
            let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: bgl,
                entries: &entries,
            });
            self.bind_groups.insert(key.clone(), bg);
        }
        let offset = self.uniforms.len() as u32;
        let mut slot = words(uniform);
        slot.resize(SLOT, 0);
        self.uniforms.extend_from_slice(&slot);
        self.queued.push(Queued { key, offset, grid });
        self.counters.dispatches += 1;
    }

    /// Encode the queued dispatches, in order, as one compute pass (wgpu places the barriers
    /// between dispatches that one writes and another reads). Every other command is recorded
    /// after this, so it sees them done.
    pub(super) fn encode_queued(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        let queued = std::mem::take(&mut self.queued);
        let encoder = self
            .encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }));
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
        self.counters.compute_passes += 1;
        for q in &queued {
            pass.set_pipeline(&self.pipelines[&(q.key.0, q.key.1)]);
            pass.set_bind_group(0, &self.bind_groups[&q.key], &[q.offset]);
            pass.dispatch_workgroups(q.grid[0], q.grid[1], q.grid[2]);
        }
    }

    /// A copy of a whole buffer in a scratch buffer of the same size (recorded in order).
    pub(super) fn scratch_copy(&mut self, src: usize) -> usize {
        let size = self.buffer(src).size();
        let dst = match self.scratch.get(&size) {
            Some(&d) => d,
            None => match self.new_buffer(size, "a scratch copy") {
                Ok(d) => {
                    self.scratch.insert(size, d);
                    d
                }
                Err(e) => {
                    self.errors.lock().map(|mut v| v.push(crate::message::Message::of_error(&e))).ok();
                    return src;
                }
            },
        };
        self.encode_queued();
        let encoder = self
            .encoder
            .get_or_insert_with(|| self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }));
        encoder.copy_buffer_to_buffer(
            self.bufs[src].as_ref().expect("live"),
            0,
            self.bufs[dst].as_ref().expect("live"),
            0,
            size,
        );
        dst
    }

    /// A 1-D grid of 256-wide workgroups covering n, folded into 2-D past the per-dimension
    /// limit.
    pub(super) fn grid(&self, n: usize) -> [u32; 3] {
        let groups = n.div_ceil(WG as usize) as u64;
        let max = self.limits.max_compute_workgroups_per_dimension as u64;
        if groups <= max {
            [groups as u32, 1, 1]
        } else {
            let x = max;
            [x as u32, groups.div_ceil(x) as u32, 1]
        }
    }
}
