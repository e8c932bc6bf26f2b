//! Each optimizer kernel's scalars: one `#[repr(C)]` struct per kernel, mirrored by the WGSL
//! struct of the same name and fields in `shaders/optim_<kernel>.wgsl` (Adafactor's in
//! `shaders/adafactor.wgsl`); `tests/kernel_mirror.rs` compares the two field by field. The host
//! fills one per step (`optim::step`), bias corrections included.

use super::contract::kernel_params;

kernel_params!(
    /// `torch.optim.SGD`: momentum, dampening, Nesterov and L2 weight decay.
    SgdParams {
        /// Learning rate of this step.
        lr: f32,
        /// Momentum factor; 0 keeps no state.
        momentum: f32,
        /// Dampening of the gradient's share of the momentum buffer.
        dampening: f32,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
        /// 1: Nesterov momentum.
        nesterov: u32,
        /// 1 on the first step, when the buffer starts as the gradient.
        first_step: u32,
    }
);

kernel_params!(
    /// `torch.optim.Adagrad`.
    AdagradParams {
        /// The step's decayed learning rate, lr / (1 + (t − 1)·lr_decay).
        clr: f32,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
        /// Added to the denominator.
        eps: f32,
    }
);

kernel_params!(
    /// `torch.optim.RMSprop`, optionally centered and with momentum.
    RmspropParams {
        /// Learning rate of this step.
        lr: f32,
        /// Smoothing constant of the averages.
        alpha: f32,
        /// Added to the denominator.
        eps: f32,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
        /// Momentum factor; 0 keeps no momentum buffer.
        momentum: f32,
        /// 1: normalise by the centered second moment (keeps `grad_avg`).
        centered: u32,
    }
);

kernel_params!(
    /// `torch.optim.Adam` and `AdamW`, optionally AMSGrad.
    AdamParams {
        /// Learning rate of this step.
        lr: f32,
        /// Decay of the first moment.
        beta1: f32,
        /// Decay of the second moment.
        beta2: f32,
        /// Added to the denominator.
        eps: f32,
        /// L2 penalty (Adam) or decoupled decay (AdamW).
        weight_decay: f32,
        /// lr / (1 − β1^t).
        step_size: f32,
        /// √(1 − β2^t).
        bc2_sqrt: f32,
        /// 1: AdamW's decoupled decay, p ← p·(1 − lr·wd) before the update.
        decoupled: u32,
        /// 1: keep the maximum of past second moments.
        amsgrad: u32,
    }
);

kernel_params!(
    /// The lecture's momentum: v ← m·v − lr·g; θ ← θ + v.
    LectureMomentumParams {
        /// Learning rate of this step.
        lr: f32,
        /// Momentum factor.
        momentum: f32,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
    }
);

kernel_params!(
    /// `torch.optim.NAdam` (NAdamW when decoupled).
    NadamParams {
        /// Learning rate of this step (for the decoupled decay).
        lr: f32,
        /// Decay of the first moment.
        beta1: f32,
        /// Decay of the second moment.
        beta2: f32,
        /// Added to the denominator.
        eps: f32,
        /// L2 penalty or decoupled decay.
        weight_decay: f32,
        /// The gradient's coefficient, lr·(1 − μ_t)/(1 − Π_t).
        grad_step: f32,
        /// The first moment's coefficient, lr·μ_{t+1}/(1 − Π_t·μ_{t+1}).
        avg_step: f32,
        /// √(1 − β2^t).
        bc2_sqrt: f32,
        /// 1: decoupled decay, p ← p·(1 − lr·wd) before the update.
        decoupled: u32,
    }
);

kernel_params!(
    /// `torch.optim.RAdam` (RAdamW when decoupled).
    RadamParams {
        /// Learning rate of this step (for the decoupled decay).
        lr: f32,
        /// Decay of the first moment.
        beta1: f32,
        /// Decay of the second moment.
        beta2: f32,
        /// Added to √v.
        eps: f32,
        /// L2 penalty or decoupled decay.
        weight_decay: f32,
        /// lr / (1 − β1^t).
        step_size: f32,
        /// r_t·√(1 − β2^t), the rectified step's scale (0 while unrectified).
        adaptive_scale: f32,
        /// 1 once ρ_t > 5: the adaptive step; 0: the unadapted momentum step.
        rectified: u32,
        /// 1: decoupled decay, p ← p·(1 − lr·wd) before the update.
        decoupled: u32,
    }
);

kernel_params!(
    /// `torch.optim.Adamax`.
    AdamaxParams {
        /// Decay of the first moment.
        beta1: f32,
        /// Decay of the infinity norm.
        beta2: f32,
        /// Added to |g| inside the max.
        eps: f32,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
        /// lr / (1 − β1^t).
        clr: f32,
    }
);

kernel_params!(
    /// `torch.optim.Adadelta`.
    AdadeltaParams {
        /// Scale of the update.
        lr: f32,
        /// Decay of both running averages.
        rho: f32,
        /// Added inside both square roots.
        eps: f32,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
    }
);

kernel_params!(
    /// Lion: p ← p·(1 − lr·wd) − lr·sign(β1·m + (1 − β1)·g); m ← β2·m + (1 − β2)·g.
    LionParams {
        /// Learning rate of this step.
        lr: f32,
        /// Interpolation of the update's direction.
        beta1: f32,
        /// Decay of the kept momentum.
        beta2: f32,
        /// Decoupled weight decay.
        weight_decay: f32,
    }
);

kernel_params!(
    /// `torch.optim.Rprop`: the step size grows by η+ while the gradient keeps its sign and
    /// shrinks by η− when it flips (then the element does not move and forgets the gradient).
    RpropParams {
        /// η−: the factor when the sign flips.
        eta_minus: f32,
        /// η+: the factor when the sign holds.
        eta_plus: f32,
        /// Smallest step size.
        step_min: f32,
        /// Largest step size.
        step_max: f32,
    }
);

kernel_params!(
    /// `torch.optim.ASGD`: η and μ as PyTorch computed them at the end of the previous step.
    AsgdParams {
        /// This step's rate η.
        eta: f32,
        /// Decay term λ.
        lambd: f32,
        /// This step's averaging weight μ.
        mu: f32,
        /// L2 penalty added to the gradient.
        weight_decay: f32,
        /// 1 while μ is exactly 1: `ax` copies the parameters.
        copy: u32,
    }
);

kernel_params!(
    /// AdEMAMix (bitsandbytes): α and β3 with their warm-ups applied by the host.
    AdemamixParams {
        /// Learning rate of this step.
        lr: f32,
        /// Decay of the fast average.
        beta1: f32,
        /// Decay of the second moment.
        beta2: f32,
        /// This step's decay of the slow average.
        beta3: f32,
        /// 1 − β3, from f64: with β3 near 1 (0.9999), 1 − f32(β3) is off by 1.7e-4 relative.
        one_minus_beta3: f32,
        /// This step's weight of the slow average.
        alpha: f32,
        /// Added to the denominator.
        eps: f32,
        /// Decoupled decay, with the update.
        weight_decay: f32,
        /// 1 − β1^t.
        bc1: f32,
        /// √(1 − β2^t).
        bc2_sqrt: f32,
    }
);

kernel_params!(
    /// Muon's momentum pass (PyTorch's code, not its docstring): buf ← lerp(buf, g, 1 − μ), and
    /// the matrix to orthogonalize, lerp(g, buf, μ) with Nesterov, else buf, written in the
    /// place of the parameters (the launch binds a scratch matrix there).
    MuonMomentumParams {
        /// μ.
        momentum: f32,
        /// 1: Nesterov.
        nesterov: u32,
    }
);

kernel_params!(
    /// Schedule-Free AdamW's step (schedulefree 1.4.1): the parameters hold y.
    SchedulefreeParams {
        /// This step's rate: lr times the optimizer's own warm-up.
        lr: f32,
        /// Interpolation between x and z.
        beta1: f32,
        /// Decay of the second moment.
        beta2: f32,
        /// Added to the denominator.
        eps: f32,
        /// Decay, evaluated at y.
        weight_decay: f32,
        /// The averaging weight c = w_t / Σ w.
        ckp1: f32,
        /// √(1 − β2^t).
        bc2_sqrt: f32,
    }
);

kernel_params!(
    /// Schedule-Free's passes that are not steps: the switch between y (train) and x (eval),
    /// p ← p + weight·(z − p); and, before the first step, z ← p.
    SchedulefreeModeParams {
        /// 1 − 1/β1 to evaluate, 1 − β1 to train again.
        weight: f32,
        /// 1: z starts as a copy of the parameters (which are left as they are).
        init: u32,
    }
);

kernel_params!(
    /// `torch.optim.Adafactor`'s scalars for one step (`shaders/adafactor.wgsl` and
    /// `backend::cpu::adafactor` read them).
    AdafactorParams {
        /// 1 − β2 of this step: t^beta2_decay (1 on the first step).
        beta2_t: f32,
        /// The relative step size ρ = min(lr, 1/√t).
        rho: f32,
        /// Floor of the second-moment estimate (squared) and of the mean of R.
        eps1: f32,
        /// Floor of the parameters' RMS in the step size.
        eps2: f32,
        /// The update's RMS is clipped to d.
        d: f32,
        /// 1 − lr·weight_decay.
        decay: f32,
        /// Padding.
        pad0: u32,
        /// Padding.
        pad1: u32,
    }
);
