//! The matmul (`shaders/matmul*.wgsl`): three forms, a fused bias/activation epilogue and the
//! TN form's column sums, with vec4 loads where every operand allows them; and the choice, per
//! product, between the one-pass tiled kernel, the large-tile kernel and split-K ([`plan`]: the
//! rule, in one place).

use super::dispatch::Binding;
use super::kernels::{Kernel, K_MATMUL, K_MATMUL_LARGE, K_MATMUL_LARGE_VEC4, K_MATMUL_SPLIT_SUM, K_MATMUL_VEC4};
use super::params::{words_of, MatmulParams, MatmulSplitParams};
use super::{u, GpuBackend};
use crate::backend::ops::{Act, Axis, Dims, Epilogue, Form};
use crate::tensor::View;
use anyhow::{bail, Result};
use std::fmt;

/// Rows and columns of C one workgroup of the tiled kernel computes.
const TILE: usize = 64;
/// Rows and columns of C one workgroup of the large-tile kernel computes.
const LARGE_TILE: usize = 128;
/// Under [`MatmulKernels::Auto`], the large-tile kernel runs products with at least this many
/// 128×128 tiles (1024×1024 has 64): enough workgroups for a large GPU even at 8×8 outputs
/// per invocation. On lavapipe it took 0.35–0.36× the tiled kernel's time at 1024³ (README);
/// on a real GPU its speed is a prediction until `benches/gpu-check.sh` measures it.
const LARGE_MIN_WORKGROUPS: usize = 64;
/// The inner elements one k-step of the tiled kernel loads (`TK` in `matmul.wgsl`).
const TK: usize = 16;
/// Workgroups a split product aims for: about one per streaming multiprocessor of a large GPU
/// (an H200 has 132).
const FILL_WORKGROUPS: usize = 128;
/// Under [`MatmulKernels::Auto`], split only products whose one-pass grid has fewer
/// workgroups than this (it leaves most of a large GPU idle) …
const SPLIT_BELOW_WORKGROUPS: usize = 64;
/// … and whose workgroups each walk at least this many k-steps in sequence. issue 22's cost
/// model of the H200 (about 11.6 µs a dispatch, 9.1 µs a k-step walked in sequence) says a
/// split pays from two saved k-steps; 16 leaves room for the trusted kernels' cheaper k-steps.
/// A prediction until a real GPU measures it (`benches/gpu-check.sh` times both kernels).
const SPLIT_MIN_KSTEPS: usize = 16;

/// Which matmul kernel a GPU device runs: chosen per product by [`plan`] (the default), or one
/// forced for every product, for tests, parity and benchmarks. The environment's
/// `DESCENT_GPU_MATMUL` (`auto`, `tiled` or `split-k`) sets it when the device opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MatmulKernels {
    /// [`plan`]'s rule: the large-tile kernel for large products; on a hardware GPU split-K for
    /// skinny ones; tiled otherwise.
    #[default]
    Auto,
    /// The one-pass tiled kernel everywhere.
    Tiled,
    /// Split-K wherever the product has at least two k-steps to split.
    SplitK,
    /// The large-tile kernel everywhere.
    Large,
}

impl MatmulKernels {
    /// Every choice, in the order `DESCENT_GPU_MATMUL` names them.
    pub const ALL: [MatmulKernels; 4] =
        [MatmulKernels::Auto, MatmulKernels::Tiled, MatmulKernels::SplitK, MatmulKernels::Large];

    /// Its name in `DESCENT_GPU_MATMUL`.
    pub const fn name(self) -> &'static str {
        match self {
            MatmulKernels::Auto => "auto",
            MatmulKernels::Tiled => "tiled",
            MatmulKernels::SplitK => "split-k",
            MatmulKernels::Large => "large",
        }
    }

    /// The choice [`MatmulKernels::name`] names, if any.
    pub fn from_name(name: &str) -> Option<MatmulKernels> {
        MatmulKernels::ALL.into_iter().find(|k| k.name() == name)
    }

    /// `DESCENT_GPU_MATMUL`: `auto` (or unset), `tiled`, `split-k` or `large`; anything else is
    /// an error.
    pub fn from_env() -> Result<MatmulKernels> {
        match std::env::var("DESCENT_GPU_MATMUL").as_deref() {
            Err(_) | Ok("") => Ok(MatmulKernels::Auto),
            Ok(name) => match MatmulKernels::from_name(name) {
                Some(k) => Ok(k),
                None => bail!("DESCENT_GPU_MATMUL={name}: use auto, tiled, split-k or large"),
            },
        }
    }
}

/// The kernel one product runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulPlan {
    /// One pass: a 64×64 tile of C per workgroup, walking all of k.
    Tiled,
    /// One pass: a 128×128 tile of C per workgroup, 8×8 outputs per invocation, the next
    /// k-step loaded while this one is multiplied.
    Large,
    /// Two passes: `splits` workgroups per tile, each summing `k_per_split` inner elements
    /// (a multiple of 16) into a slab of partial sums, then one pass that adds the slabs in
    /// split order and applies the epilogue. Deterministic: the same inputs give the same bits.
    SplitK {
        /// Workgroups per 64×64 tile (slabs of partial sums).
        splits: usize,
        /// Inner elements each sums.
        k_per_split: usize,
    },
}

impl fmt::Display for MatmulPlan {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            MatmulPlan::Tiled => write!(f, "tiled"),
            MatmulPlan::Large => write!(f, "large"),
            MatmulPlan::SplitK { splits, k_per_split } => write!(f, "split-k {splits}×{k_per_split}"),
        }
    }
}

/// The rule that picks a product's kernel, in one place. `hardware`: the adapter is a real GPU
/// (a software one runs workgroups on a few CPU threads, which two tiles already fill, so it
/// never splits).
/// `max_scratch_bytes`: the most the partial sums may take (one storage binding). The partial
/// sums take `splits·(m·n + m)` floats.
pub fn plan(kernels: MatmulKernels, hardware: bool, d: Dims, max_scratch_bytes: u64) -> MatmulPlan {
    let tiles = d.m.div_ceil(TILE) * d.n.div_ceil(TILE);
    let ksteps = d.k.div_ceil(TK);
    let large_tiles = d.m.div_ceil(LARGE_TILE) * d.n.div_ceil(LARGE_TILE);
    if kernels == MatmulKernels::Large || (kernels == MatmulKernels::Auto && large_tiles >= LARGE_MIN_WORKGROUPS) {
        return MatmulPlan::Large;
    }
    let wanted = match kernels {
        MatmulKernels::Tiled | MatmulKernels::Large => false,
        MatmulKernels::SplitK => true,
        MatmulKernels::Auto => hardware && tiles < SPLIT_BELOW_WORKGROUPS && ksteps >= SPLIT_MIN_KSTEPS,
    };
    if !wanted || tiles == 0 {
        return MatmulPlan::Tiled;
    }
    let steps_per_split = (ksteps * tiles).div_ceil(FILL_WORKGROUPS).max(1);
    let splits = ksteps.div_ceil(steps_per_split);
    let scratch = split_layout(splits, d, 256).0;
    if splits < 2 || scratch > max_scratch_bytes {
        return MatmulPlan::Tiled;
    }
    MatmulPlan::SplitK { splits, k_per_split: steps_per_split * TK }
}

/// Bytes of the partial sums of a split product: the slabs of C, then (from an `align`ed
/// offset) the slabs of the column sums. Returns (total, where the column sums start).
fn split_layout(splits: usize, d: Dims, align: u64) -> (u64, u64) {
    let parts = (splits * d.m * d.n * 4) as u64;
    let colsums_at = parts.next_multiple_of(align);
    (colsums_at + (splits * d.m * 4) as u64, colsums_at)
}

impl GpuBackend {
    /// The kernel [`plan`] picks for a product of these sizes on this adapter.
    pub fn matmul_plan(&self, d: Dims) -> MatmulPlan {
        let max = self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size);
        plan(self.matmul_kernels, !self.is_software(), d, max)
    }

    /// Which matmul kernels this device runs (see [`MatmulKernels`]).
    pub fn matmul_kernels(&self) -> MatmulKernels {
        self.matmul_kernels
    }

    /// Run [`plan`]'s choice, or force one kernel, from the next product on.
    pub fn set_matmul_kernels(&mut self, kernels: MatmulKernels) {
        self.matmul_kernels = kernels;
    }

    /// `out = epilogue(op(a) · op(b))` for the three forms, by the kernel [`plan`] picks.
    pub(super) fn launch_matmul(&mut self, form: Form, d: Dims, a: View, b: View, out: View, epi: &Epilogue) {
        let (c_bind, cs_bind, out_o, cs_o, fused_colsum) = self.output_bindings(form, d, out, epi);
        // The epilogue's operands, read by the pass that writes C.
        let (bias_b, bias_o) = epi.bias.map_or((self.dummy_read, 0), |v| (v.buf, v.offset));
        let (y_b, y_o) = epi.act_grad.map_or((self.dummy_read, 0), |(_, v)| (v.buf, v.offset));
        match self.matmul_plan(d) {
            plan @ (MatmulPlan::Tiled | MatmulPlan::Large) => {
                let bindings = [(a.buf, None), (b.buf, None), (bias_b, None), (y_b, None), c_bind, cs_bind];
                let params = MatmulParams {
                    bias_off: u(bias_o),
                    y_off: u(y_o),
                    has_bias: epi.bias.is_some() as u32,
                    act: epi.act.unwrap_or(Act::Identity).code(),
                    grad_act: epi.act_grad.map_or(0, |(act, _)| act.code() + 1),
                    ..matmul_params(form, d, a, b, out_o, cs_o, fused_colsum, 0)
                };
                let (kern, grid) = one_pass(plan == MatmulPlan::Large, form, d, a, b);
                self.dispatch_ranged(kern, &words_of(&params), &bindings, grid);
            }
            MatmulPlan::SplitK { splits, k_per_split } => {
                let Some(scratch) = self.split_scratch(splits, d) else { return };
                let align = self.limits.min_storage_buffer_offset_alignment as u64;
                let (total, colsums_at) = split_layout(splits, d, align);
                // Pass 1: raw partial sums into the scratch's two ranges (no epilogue).
                let parts = (scratch, Some((0, colsums_at.max(4))));
                let colsum_parts = if fused_colsum {
                    (scratch, Some((colsums_at, total - colsums_at)))
                } else {
                    (self.dummy_write[0], None)
                };
                let bindings = [
                    (a.buf, None),
                    (b.buf, None),
                    (self.dummy_read, None),
                    (self.dummy_read, None),
                    parts,
                    colsum_parts,
                ];
                let params = matmul_params(form, d, a, b, 0, 0, fused_colsum, u(k_per_split));
                let (kern, _) = one_pass(false, form, d, a, b);
                self.dispatch_ranged(kern, &words_of(&params), &bindings, grid(d, splits));
                // Pass 2: the slabs added in split order, then the epilogue.
                let params = MatmulSplitParams {
                    m: u(d.m),
                    n: u(d.n),
                    splits: u(splits),
                    part_off: 0,
                    part_colsum_off: u(colsums_at as usize / 4),
                    out_off: out_o,
                    bias_off: u(bias_o),
                    y_off: u(y_o),
                    colsum_off: cs_o,
                    has_bias: epi.bias.is_some() as u32,
                    act: epi.act.unwrap_or(Act::Identity).code(),
                    grad_act: epi.act_grad.map_or(0, |(act, _)| act.code() + 1),
                    has_colsum: fused_colsum as u32,
                    pad0: 0,
                    pad1: 0,
                    pad2: 0,
                };
                let bindings = [(scratch, None), (bias_b, None), (y_b, None), c_bind, cs_bind];
                let grid = self.grid((d.m * d.n).max(d.m));
                self.dispatch_ranged(K_MATMUL_SPLIT_SUM, &words_of(&params), &bindings, grid);
            }
        }
        if let (Some(cs), false) = (epi.a_colsum, fused_colsum) {
            self.launch_sum_axis(a, cs, d.m, Axis::Rows, 1.0);
        }
    }

    /// `batch` products with no epilogue, members one after another in each operand (see
    /// [`Backend::matmul_batched`](crate::backend::Backend::matmul_batched)): one dispatch of
    /// the tiled or large-tile kernel, as [`plan`] picks for one member (never split), with
    /// workgroup z running member z. Each member's bits are those of its own product.
    pub(super) fn launch_matmul_batched(&mut self, form: Form, d: Dims, batch: usize, a: View, b: View, out: View) {
        let (kern, tiles) = one_pass(self.matmul_plan(d) == MatmulPlan::Large, form, d, a, b);
        let Dims { m, k, n } = d;
        let most = self.limits.max_compute_workgroups_per_dimension as usize;
        let mut first = 0;
        while first < batch {
            let count = (batch - first).min(most);
            let (a, b) = (a.slice(first * m * k, count * m * k), b.slice(first * k * n, count * k * n));
            let out = out.slice(first * m * n, count * m * n);
            let params = matmul_params(form, d, a, b, u(out.offset), 0, false, 0);
            let bindings = [
                (a.buf, None),
                (b.buf, None),
                (self.dummy_read, None),
                (self.dummy_read, None),
                (out.buf, None),
                (self.dummy_write[0], None),
            ];
            self.dispatch_ranged(kern, &words_of(&params), &bindings, [tiles[0], tiles[1], u(count)]);
            first += count;
        }
    }

    /// Where the product's last pass writes C and the column sums: (C's binding, the column
    /// sums' binding, C's offset and the column sums' offset in them, whether the column sums
    /// are written in that pass). They are bound as the ranges they write when they share the
    /// output's buffer (a gradient arena): WebGPU forbids two writable bindings of one buffer
    /// whose ranges overlap. If even those ranges overlap, a separate pass sums them.
    fn output_bindings(&self, form: Form, d: Dims, out: View, epi: &Epilogue) -> (Binding, Binding, u32, u32, bool) {
        let unfused = ((out.buf, None), (self.dummy_write[0], None), u(out.offset), 0, false);
        match epi.a_colsum {
            Some(cs) if form == Form::TN && cs.buf != out.buf => {
                ((out.buf, None), (cs.buf, None), u(out.offset), u(cs.offset), true)
            }
            Some(cs) if form == Form::TN => {
                let (ob, o_into) = self.sub_range(out.buf, out.offset as u64 * 4, (d.m * d.n) as u64 * 4);
                let (cb, c_into) = self.sub_range(cs.buf, cs.offset as u64 * 4, d.m as u64 * 4);
                let (o, c) = (ob.1.unwrap_or_default(), cb.1.unwrap_or_default());
                if o.0 + o.1 <= c.0 || c.0 + c.1 <= o.0 {
                    (ob, cb, u(o_into as usize / 4), u(c_into as usize / 4), true)
                } else {
                    unfused
                }
            }
            _ => unfused,
        }
    }

    /// The buffer for a split product's partial sums, grown when too small (the old one is
    /// dropped after the work recorded so far). None, with the error logged, when it cannot
    /// be made.
    fn split_scratch(&mut self, splits: usize, d: Dims) -> Option<usize> {
        let align = self.limits.min_storage_buffer_offset_alignment as u64;
        let need = split_layout(splits, d, align).0;
        let held = self.grown(self.split_parts, need, "a split-K product's partial sums")?;
        self.split_parts = Some(held);
        Some(held.0)
    }
}

/// The tiled kernel's uniform with no epilogue (the caller adds it), C and the column sums at
/// `out_o` and `cs_o`, split every `k_split` inner elements (0: not split).
#[allow(clippy::too_many_arguments)]
fn matmul_params(
    form: Form,
    d: Dims,
    a: View,
    b: View,
    out_o: u32,
    cs_o: u32,
    colsum: bool,
    k_split: u32,
) -> MatmulParams {
    MatmulParams {
        m: u(d.m),
        k: u(d.k),
        n: u(d.n),
        form: form.code(),
        a_off: u(a.offset),
        b_off: u(b.offset),
        out_off: out_o,
        bias_off: 0,
        y_off: 0,
        colsum_off: cs_o,
        has_bias: 0,
        act: Act::Identity.code(),
        grad_act: 0,
        has_colsum: colsum as u32,
        k_split,
        pad1: 0,
    }
}

/// Whether every operand's contiguous dimension and offset allow vec4 loads.
fn vec4_loads(form: Form, d: Dims, a: View, b: View) -> bool {
    let (a_run, b_run) = match form {
        Form::NN => (d.k, d.n),
        Form::NT => (d.k, d.k),
        Form::TN => (d.m, d.n),
    };
    [a_run, b_run, a.offset, b.offset].iter().all(|x| x % 4 == 0)
}

/// A one-pass product's kernel (large-tile or tiled, vec4 loads where the operands allow
/// them) and its grid: one workgroup per 128×128 or 64×64 tile of C.
fn one_pass(large: bool, form: Form, d: Dims, a: View, b: View) -> (Kernel, [u32; 3]) {
    match (large, vec4_loads(form, d, a, b)) {
        (true, vec4) => {
            let kern = if vec4 { K_MATMUL_LARGE_VEC4 } else { K_MATMUL_LARGE };
            (kern, [u(d.n.div_ceil(LARGE_TILE)), u(d.m.div_ceil(LARGE_TILE)), 1])
        }
        (false, vec4) => (if vec4 { K_MATMUL_VEC4 } else { K_MATMUL }, grid(d, 1)),
    }
}

/// One workgroup per 64×64 tile of C, times `splits`.
fn grid(d: Dims, splits: usize) -> [u32; 3] {
    [u(d.n.div_ceil(TILE)), u(d.m.div_ceil(TILE)), u(splits)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: u64 = 1 << 30;

    fn d(m: usize, k: usize, n: usize) -> Dims {
        Dims { m, k, n }
    }

    #[test]
    fn auto_splits_skinny_products_on_hardware_only() {
        // The MLP's first layer at batch 64: two tiles walking 49 k-steps.
        let first = d(64, 784, 128);
        assert_eq!(plan(MatmulKernels::Auto, true, first, BIG), MatmulPlan::SplitK { splits: 49, k_per_split: 16 });
        assert_eq!(plan(MatmulKernels::Auto, false, first, BIG), MatmulPlan::Tiled);
        // Enough tiles already, or too few k-steps to be worth a second pass.
        assert_eq!(plan(MatmulKernels::Auto, true, d(512, 1024, 512), BIG), MatmulPlan::Tiled);
        assert_eq!(plan(MatmulKernels::Auto, true, d(64, 128, 128), BIG), MatmulPlan::Tiled);
        assert_eq!(plan(MatmulKernels::Tiled, true, first, BIG), MatmulPlan::Tiled);
    }

    #[test]
    fn auto_takes_the_large_tiles_for_large_products() {
        for side in [1024, 2048, 4096] {
            for hardware in [true, false] {
                assert_eq!(plan(MatmulKernels::Auto, hardware, d(side, side, side), BIG), MatmulPlan::Large);
            }
        }
        // 63 tiles of 128×128 are not enough; forced, any shape runs on them.
        assert_eq!(plan(MatmulKernels::Auto, true, d(1024, 1024, 896), BIG), MatmulPlan::Tiled);
        assert_eq!(plan(MatmulKernels::Large, false, d(1, 1, 1), BIG), MatmulPlan::Large);
        assert_eq!(plan(MatmulKernels::Large, true, d(64, 784, 128), BIG), MatmulPlan::Large);
    }

    #[test]
    fn forced_splits_cover_every_k_step_once() {
        for (m, k, n) in [(1, 4099, 1), (63, 65, 129), (2049, 33, 65), (64, 784, 128), (1, 17, 1), (700, 5000, 3)] {
            match plan(MatmulKernels::SplitK, false, d(m, k, n), BIG) {
                MatmulPlan::SplitK { splits, k_per_split } => {
                    assert!(splits >= 2 && k_per_split % TK == 0, "{m}x{k}x{n}");
                    // The last split starts inside k, and together they reach its end.
                    assert!((splits - 1) * k_per_split < k && splits * k_per_split >= k, "{m}x{k}x{n}");
                }
                other => panic!("{m}x{k}x{n} was not split: {other}"),
            }
        }
        // One k-step has nothing to split.
        assert_eq!(plan(MatmulKernels::SplitK, true, d(130, 7, 4097), BIG), MatmulPlan::Tiled);
        assert_eq!(plan(MatmulKernels::SplitK, true, d(5, 16, 5), BIG), MatmulPlan::Tiled);
    }

    #[test]
    fn a_split_that_does_not_fit_one_binding_stays_tiled() {
        let first = d(64, 784, 128);
        let need = split_layout(49, first, 256).0;
        assert_eq!(plan(MatmulKernels::SplitK, true, first, need - 1), MatmulPlan::Tiled);
        assert!(matches!(plan(MatmulKernels::SplitK, true, first, need), MatmulPlan::SplitK { .. }));
    }

    #[test]
    fn the_environment_names_each_choice() {
        for k in MatmulKernels::ALL {
            assert_eq!(MatmulKernels::from_name(k.name()), Some(k));
        }
    }
}
