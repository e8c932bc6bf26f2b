//! What parity checks: the shapes, lengths and optimizer configurations, and the memory check
//! that refuses sizes the machine cannot hold before anything is allocated.

use crate::backend::Device;
use crate::message::Setting;
use crate::optim::{
    Adadelta, Adafactor, Adagrad, Adam, Adamax, Ademamix, AdjustLr, Asgd, LectureMomentum, Lion, Muon, Nadam,
    OptimBits, OptimConfig, Radam, Rmsprop, Rprop, SchedulefreeAdamw, Sgd,
};
use crate::said;
use anyhow::Result;

#[derive(Clone, Debug)]
pub struct ParityConfig {
    pub seed: u64,
    /// Matmul shapes m×k×n; the other matrix kernels use m×n.
    pub shapes: Vec<(usize, usize, usize)>,
    /// Vector lengths for the elementwise kernels and the optimizers.
    pub lengths: Vec<usize>,
    /// Optimizer steps per check.
    pub optim_steps: u64,
    /// Tensor lengths for the blockwise 8-bit optimizers (each alone in an arena, then all in one).
    pub blockwise_lengths: Vec<usize>,
}

impl Default for ParityConfig {
    fn default() -> Self {
        ParityConfig {
            seed: 0,
            shapes: vec![(1, 1, 1), (3, 5, 7), (63, 65, 129), (257, 784, 128)],
            // The last is over 65,535 workgroups of 256: the 2-D grid path.
            lengths: vec![1, 7, 1023, 65_537, 65_535 * 256 + 1],
            optim_steps: 3,
            blockwise_lengths: BLOCKWISE_LENGTHS.to_vec(),
        }
    }
}

/// An upper bound on the bytes one parity check holds at once per element of its largest
/// operand: on the host, the random inputs (f32), their f64 reference results and the readback;
/// on a CPU device, also the device's buffers (an optimizer check holds parameters, gradients
/// and three state slots on the device and in f64). Measured with `/usr/bin/time` on the CPU
/// backend: about 106 bytes per element for the vector checks (lengths 1e6 and 4e6), 78 for
/// the blockwise ones and 14 for a matmul's three operands.
pub const PEAK_BYTES_PER_ELEMENT: u64 = 128;

/// Products in parity's batched matmul rows.
pub const PARITY_BATCH: usize = 2;

impl ParityConfig {
    /// Refuse, with a [`crate::backend::TooLarge`] error and before anything is allocated, a
    /// size the host or `dev` cannot hold (a length past a kernel's 32-bit element index, a
    /// buffer past the device's largest, or more memory than is available).
    pub fn check_fits(&self, dev: &Device) -> Result<()> {
        // Element counts in u64, saturating: the sizes come from the user.
        let mul = |a: usize, b: usize| (a as u64).saturating_mul(b as u64);
        let matrix = self.shapes.iter().map(|&(m, k, n)| {
            // The batched rows hold PARITY_BATCH of each operand.
            let operands = [mul(m, k), mul(k, n), mul(m, n)].map(|x| x.saturating_mul(PARITY_BATCH as u64));
            let total = operands.iter().fold(0u64, |t, &x| t.saturating_add(x));
            (format!("matmul {m}x{k}x{n}"), total, operands.into_iter().max().unwrap_or(0))
        });
        let vector = self.lengths.iter().map(|&n| (format!("length {n}"), n as u64, n as u64));
        let total = self.blockwise_lengths.iter().fold(0u64, |t, &n| t.saturating_add(n as u64));
        let blockwise = (!self.blockwise_lengths.is_empty())
            .then(|| (format!("blockwise lengths totalling {total}"), total, total));
        // The CPU device's check already covers the host; on a GPU the host holds the inputs
        // and reference results too.
        let host = if dev.is_gpu() { crate::backend::host::host_available_bytes() } else { None };
        let fix = said!["use smaller ", Setting::Lengths, ", ", Setting::Shapes, " or ", Setting::BlockwiseLengths];
        for (what, elements, largest) in matrix.chain(vector).chain(blockwise) {
            let what = format!("parity at {what}");
            let too_large = |needs: u64, limit: &str, fits: u64| -> anyhow::Error {
                crate::backend::TooLarge { what: what.clone(), needs, limit: limit.into(), fits, fix: fix.clone() }
                    .into()
            };
            let bytes = elements.saturating_mul(PEAK_BYTES_PER_ELEMENT);
            if dev.is_gpu() && largest > u32::MAX as u64 {
                let index_bytes = u32::MAX as u64 * 4;
                return Err(too_large(largest.saturating_mul(4), "the kernels' 32-bit element index", index_bytes));
            }
            dev.check_fits(&what, bytes, largest.saturating_mul(4), fix.clone())?;
            if let Some(free) = host.filter(|&free| bytes > free) {
                return Err(too_large(bytes, "the host's available memory", free));
            }
        }
        Ok(())
    }
}

/// Around the block size (256) and `min_8bit_size` (4096), and one tensor of many blocks with a
/// partial last one.
pub const BLOCKWISE_LENGTHS: [usize; 8] = [1, 255, 256, 257, 4095, 4096, 4097, 65_537];

/// The configurations blockwise 8-bit state covers: Adam (with and without L2 decay), AdamW
/// (and maximized), and bitsandbytes' other 8-bit optimizers.
pub fn blockwise_cases() -> Vec<(String, OptimConfig)> {
    [
        ("adam", OptimConfig::Adam(Adam::default())),
        ("adam_wd", OptimConfig::Adam(Adam { weight_decay: 0.01, ..Adam::default() })),
        ("adamw", OptimConfig::Adamw(Adam::adamw())),
        ("adamw_maximize", OptimConfig::Adamw(Adam { maximize: true, ..Adam::adamw() })),
        // bitsandbytes' other 8-bit optimizers: one, two or three slots, each on its map.
        ("sgd_momentum", OptimConfig::Sgd(Sgd { momentum: 0.9, ..Sgd::default() })),
        ("rmsprop", OptimConfig::Rmsprop(Rmsprop::default())),
        (
            "rmsprop_centered_momentum",
            OptimConfig::Rmsprop(Rmsprop { centered: true, momentum: 0.9, ..Rmsprop::default() }),
        ),
        ("adagrad", OptimConfig::Adagrad(Adagrad::default())),
        ("lion", OptimConfig::Lion(Lion { weight_decay: 0.1, ..Lion::default() })),
        ("ademamix", OptimConfig::Ademamix(Ademamix { t_alpha: Some(2), ..Ademamix::default() })),
    ]
    .into_iter()
    .map(|(l, c)| (l.to_string(), c.with_optim_bits(OptimBits::B8)))
    .collect()
}

/// The optimizer configurations parity covers: every kernel and every flag that changes it.
pub fn optimizer_cases() -> Vec<(String, OptimConfig)> {
    use OptimConfig as O;
    let cases = [
        ("sgd", O::Sgd(Sgd { lr: 0.1, ..Sgd::default() })),
        (
            "sgd_momentum_dampening_wd",
            O::Sgd(Sgd { momentum: 0.9, dampening: 0.1, weight_decay: 0.01, ..Sgd::default() }),
        ),
        ("sgd_nesterov", O::Sgd(Sgd { momentum: 0.9, nesterov: true, ..Sgd::default() })),
        (
            "adagrad_lr_decay_init",
            O::Adagrad(Adagrad {
                lr_decay: 0.01,
                initial_accumulator_value: 0.1,
                weight_decay: 0.01,
                ..Adagrad::default()
            }),
        ),
        ("rmsprop", O::Rmsprop(Rmsprop::default())),
        (
            "rmsprop_centered_momentum",
            O::Rmsprop(Rmsprop { centered: true, momentum: 0.9, weight_decay: 0.01, ..Rmsprop::default() }),
        ),
        ("rmsprop_centered", O::Rmsprop(Rmsprop { centered: true, ..Rmsprop::default() })),
        ("adam", O::Adam(Adam::default())),
        ("adam_amsgrad_wd", O::Adam(Adam { amsgrad: true, weight_decay: 0.01, ..Adam::default() })),
        ("adamw", O::Adamw(Adam::adamw())),
        ("lecture_momentum", O::LectureMomentum(LectureMomentum::default())),
        ("nadam", O::Nadam(Nadam::default())),
        ("nadamw", O::Nadam(Nadam { weight_decay: 0.01, decoupled_weight_decay: true, ..Nadam::default() })),
        ("nadam_l2", O::Nadam(Nadam { weight_decay: 0.01, ..Nadam::default() })),
        // Steps 1 to 5 are unrectified, the later ones rectified (see `case_steps`).
        ("radam", O::Radam(Radam::default())),
        ("radam_l2", O::Radam(Radam { weight_decay: 0.01, ..Radam::default() })),
        ("radamw", O::Radam(Radam { weight_decay: 0.01, decoupled_weight_decay: true, ..Radam::default() })),
        ("adamax_wd", O::Adamax(Adamax { weight_decay: 0.01, ..Adamax::default() })),
        ("adadelta_wd", O::Adadelta(Adadelta { weight_decay: 0.01, ..Adadelta::default() })),
        ("lion_wd", O::Lion(Lion { weight_decay: 0.1, ..Lion::default() })),
        // maximize: the gradient read negated, in every kernel's shared entry points.
        ("adam_amsgrad_maximize", O::Adam(Adam { amsgrad: true, maximize: true, ..Adam::default() })),
        ("lion_maximize", O::Lion(Lion { maximize: true, ..Lion::default() })),
        ("rprop", O::Rprop(Rprop { step_sizes: (1e-3, 0.05), ..Rprop::default() })),
        // t0 = 1: ax copies on step 1, then averages with μ = 1/(t − 2) from step 4 on.
        ("asgd_averaging", O::Asgd(Asgd { t0: 1.0, lambd: 0.01, weight_decay: 0.01, ..Asgd::default() })),
        ("ademamix", O::Ademamix(Ademamix::default())),
        ("ademamix_warmups", O::Ademamix(Ademamix { t_alpha: Some(3), t_beta3: Some(5), ..Ademamix::default() })),
        (
            "schedulefree_adamw",
            O::SchedulefreeAdamw(SchedulefreeAdamw {
                warmup_steps: 2,
                r: 0.5,
                weight_decay: 0.01,
                ..SchedulefreeAdamw::default()
            }),
        ),
    ];
    cases.into_iter().map(|(label, c)| (label.to_string(), c)).collect()
}

/// The Adafactor configurations parity covers: PyTorch's defaults, and decay with a clipping
/// threshold, explicit eps and maximize.
pub fn adafactor_cases() -> Vec<(String, OptimConfig)> {
    let tuned =
        Adafactor { weight_decay: 0.1, d: 2.0, eps: (Some(1e-6), 1e-3), maximize: true, ..Adafactor::default() };
    [("adafactor", Adafactor::default()), ("adafactor_wd_d_maximize", tuned)]
        .into_iter()
        .map(|(l, c)| (l.to_string(), OptimConfig::Adafactor(c)))
        .collect()
}

/// The Muon configurations parity covers: every matrix to Muon (PyTorch's defaults, with a
/// larger rate so the updates are well above rounding), and the first and last to AdamW with
/// another rate adjustment, no Nesterov and maximize. (Its bfloat16 momentum is checked as every
/// kernel's bfloat16 state is: bit for bit against the f32 kernel.)
pub fn muon_cases() -> Vec<(String, OptimConfig)> {
    let all = Muon { lr: 0.02, aux_first_last: false, ..Muon::default() };
    let routed = Muon {
        lr: 0.02,
        nesterov: false,
        adjust_lr_fn: AdjustLr::MatchRmsAdamw,
        maximize: true,
        aux_weight_decay: 0.01,
        ..Muon::default()
    };
    [("muon", OptimConfig::Muon(all)), ("muon_routed_maximize", OptimConfig::Muon(routed))]
        .into_iter()
        .map(|(l, c)| (l.to_string(), c))
        .collect()
}

/// Steps an optimizer case runs: `steps`, or more where a branch starts later (RAdam's
/// rectified step from step 6 on, for every β2 PyTorch users pick; ASGD's averaging).
pub fn case_steps(cfg: &OptimConfig, steps: u64) -> u64 {
    match cfg {
        OptimConfig::Radam(_) => steps.max(7),
        // ASGD averages from step t0 + 2 on (μ < 1 from step 4 with t0 = 1).
        OptimConfig::Asgd(_) => steps.max(5),
        _ => steps,
    }
}
