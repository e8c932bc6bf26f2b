//! The plain f64 reference of every optimizer, written the way `torch.optim`'s single-tensor
//! code reads, one coordinate at a time. Used by tests and `descent parity`, never to train.

use super::{OptimConfig, Slot};
use crate::backend::quant::{self, DynamicMap, BLOCK};

/// One step `t` (1-based) at the rates `lrs` of steps 1..=t (this step's is the last: ASGD and
/// Schedule-Free read the earlier ones), updating `p` and the state slots in place
/// (slot order as in [`OptimConfig::slots`]). Schedule-Free's z is the caller's to start as a
/// copy of the parameters before step 1, as the optimizer's init pass does.
pub fn step(c: &OptimConfig, t: u64, lrs: &[f64], p: &mut [f64], g: &[f64], state: &mut [Vec<f64>]) {
    assert_eq!(lrs.len() as u64, t, "one rate per step so far");
    assert!(!matches!(c, OptimConfig::Adafactor(_)), "Adafactor's state is per row and column: use adafactor_step");
    assert!(!matches!(c, OptimConfig::Muon(_)), "Muon steps matrices: use muon_step");
    let lr = lrs[t as usize - 1];
    let slots = c.slots();
    let at = |s: Slot| slots.iter().position(|&x| x == s);
    // PyTorch's `maximize`: `grad = -grad` before anything else.
    let sign = if c.maximize() { -1.0 } else { 1.0 };
    for i in 0..p.len() {
        let mut gi = sign * g[i];
        match c {
            OptimConfig::Sgd(c) => {
                if c.weight_decay != 0.0 {
                    gi += c.weight_decay * p[i];
                }
                if c.momentum != 0.0 {
                    let buf = &mut state[0][i];
                    *buf = if t == 1 { gi } else { c.momentum * *buf + (1.0 - c.dampening) * gi };
                    gi = if c.nesterov { gi + c.momentum * *buf } else { *buf };
                }
                p[i] -= lr * gi;
            }
            OptimConfig::Adagrad(c) => {
                if c.weight_decay != 0.0 {
                    gi += c.weight_decay * p[i];
                }
                let clr = lr / (1.0 + (t as f64 - 1.0) * c.lr_decay);
                state[0][i] += gi * gi;
                p[i] -= clr * gi / (state[0][i].sqrt() + c.eps);
            }
            OptimConfig::Rmsprop(c) => {
                if c.weight_decay != 0.0 {
                    gi += c.weight_decay * p[i];
                }
                let a = c.alpha;
                state[0][i] = a * state[0][i] + (1.0 - a) * gi * gi;
                let avg = match at(Slot::GradAvg) {
                    Some(k) => {
                        let ga = a * state[k][i] + (1.0 - a) * gi;
                        state[k][i] = ga;
                        (state[0][i] - ga * ga).sqrt() + c.eps
                    }
                    None => state[0][i].sqrt() + c.eps,
                };
                match at(Slot::MomentumBuffer) {
                    Some(k) => {
                        let buf = &mut state[k][i];
                        *buf = c.momentum * *buf + gi / avg;
                        p[i] -= lr * *buf;
                    }
                    None => p[i] -= lr * gi / avg,
                }
            }
            OptimConfig::Adam(a) | OptimConfig::Adamw(a) => {
                let (b1, b2) = a.betas;
                if matches!(c, OptimConfig::Adamw(_)) {
                    p[i] *= 1.0 - lr * a.weight_decay;
                } else if a.weight_decay != 0.0 {
                    gi += a.weight_decay * p[i];
                }
                state[0][i] = b1 * state[0][i] + (1.0 - b1) * gi;
                state[1][i] = b2 * state[1][i] + (1.0 - b2) * gi * gi;
                let bc1 = 1.0 - b1.powi(t as i32);
                let bc2_sqrt = (1.0 - b2.powi(t as i32)).sqrt();
                let v = if a.amsgrad {
                    state[2][i] = state[2][i].max(state[1][i]);
                    state[2][i]
                } else {
                    state[1][i]
                };
                let denom = v.sqrt() / bc2_sqrt + a.eps;
                p[i] -= (lr / bc1) * state[0][i] / denom;
            }
            OptimConfig::LectureMomentum(c) => {
                if c.weight_decay != 0.0 {
                    gi += c.weight_decay * p[i];
                }
                let v = &mut state[0][i];
                *v = c.momentum * *v - lr * gi;
                p[i] += *v;
            }
            OptimConfig::Nadam(c) => {
                let (b1, b2) = c.betas;
                if c.decoupled_weight_decay {
                    p[i] *= 1.0 - lr * c.weight_decay;
                } else if c.weight_decay != 0.0 {
                    gi += c.weight_decay * p[i];
                }
                // As PyTorch: μ_s = β1·(1 − ½·0.96^(s·ψ)), and mu_product multiplied step by step.
                let mu_at = |s: u64| b1 * (1.0 - 0.5 * 0.96f64.powf(s as f64 * c.momentum_decay));
                let (mu, mu_next) = (mu_at(t), mu_at(t + 1));
                let product: f64 = (1..=t).map(mu_at).product();
                state[0][i] = b1 * state[0][i] + (1.0 - b1) * gi;
                state[1][i] = b2 * state[1][i] + (1.0 - b2) * gi * gi;
                let denom = (state[1][i] / (1.0 - b2.powi(t as i32))).sqrt() + c.eps;
                p[i] -= lr * (1.0 - mu) / (1.0 - product) * gi / denom;
                p[i] -= lr * mu_next / (1.0 - product * mu_next) * state[0][i] / denom;
            }
            OptimConfig::Radam(c) => {
                let (b1, b2) = c.betas;
                if c.decoupled_weight_decay {
                    p[i] *= 1.0 - lr * c.weight_decay;
                } else if c.weight_decay != 0.0 {
                    gi += c.weight_decay * p[i];
                }
                state[0][i] = b1 * state[0][i] + (1.0 - b1) * gi;
                state[1][i] = b2 * state[1][i] + (1.0 - b2) * gi * gi;
                let m_hat = state[0][i] / (1.0 - b1.powi(t as i32));
                let rho_inf = 2.0 / (1.0 - b2) - 1.0;
                let rho_t = rho_inf - 2.0 * t as f64 * b2.powi(t as i32) / (1.0 - b2.powi(t as i32));
                if rho_t > 5.0 {
                    let r =
                        ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)).sqrt();
                    let adaptive = (1.0 - b2.powi(t as i32)).sqrt() / (state[1][i].sqrt() + c.eps);
                    p[i] -= m_hat * lr * adaptive * r;
                } else {
                    p[i] -= m_hat * lr;
                }
            }
            OptimConfig::Adamax(c) => {
                let (b1, b2) = c.betas;
                if c.weight_decay != 0.0 {
                    gi += c.weight_decay * p[i];
                }
                state[0][i] = b1 * state[0][i] + (1.0 - b1) * gi;
                state[1][i] = (b2 * state[1][i]).max(gi.abs() + c.eps);
                p[i] -= lr / (1.0 - b1.powi(t as i32)) * state[0][i] / state[1][i];
            }
            OptimConfig::Adadelta(c) => {
                if c.weight_decay != 0.0 {
                    gi += c.weight_decay * p[i];
                }
                let rho = c.rho;
                state[0][i] = rho * state[0][i] + (1.0 - rho) * gi * gi;
                let delta = (state[1][i] + c.eps).sqrt() / (state[0][i] + c.eps).sqrt() * gi;
                state[1][i] = rho * state[1][i] + (1.0 - rho) * delta * delta;
                p[i] -= lr * delta;
            }
            OptimConfig::Lion(c) => {
                let (b1, b2) = c.betas;
                p[i] *= 1.0 - lr * c.weight_decay;
                let update = b1 * state[0][i] + (1.0 - b1) * gi;
                // torch's sign: 0 at 0.
                let sign = if update > 0.0 {
                    1.0
                } else if update < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                p[i] -= lr * sign;
                state[0][i] = b2 * state[0][i] + (1.0 - b2) * gi;
            }
            OptimConfig::Rprop(c) => {
                let (prev, size) = (state[0][i], state[1][i]);
                let product = gi * prev;
                let factor = if product > 0.0 {
                    c.etas.1
                } else if product < 0.0 {
                    gi = 0.0;
                    c.etas.0
                } else {
                    1.0
                };
                let size = (size * factor).clamp(c.step_sizes.0, c.step_sizes.1);
                let sign = if gi > 0.0 {
                    1.0
                } else if gi < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                p[i] -= sign * size;
                state[0][i] = gi;
                state[1][i] = size;
            }
            OptimConfig::Asgd(c) => {
                if c.weight_decay != 0.0 {
                    gi += c.weight_decay * p[i];
                }
                // η and μ as PyTorch leaves them after the previous step (step 1: eta = lr, mu = 1).
                let (eta, mu) = if t == 1 {
                    (lrs[0], 1.0)
                } else {
                    let l = lrs[t as usize - 2];
                    let done = (t - 1) as f64;
                    (l / (1.0 + c.lambd * l * done).powf(c.alpha), 1.0 / f64::max(1.0, done - c.t0))
                };
                p[i] *= 1.0 - c.lambd * eta;
                p[i] -= eta * gi;
                let ax = &mut state[0][i];
                if mu != 1.0 {
                    *ax += (p[i] - *ax) * mu;
                } else {
                    *ax = p[i];
                }
            }
            OptimConfig::Ademamix(c) => {
                let (b1, b2, b3) = c.betas;
                let tf = t as f64;
                let alpha = match c.t_alpha {
                    Some(ta) => f64::min(tf * c.alpha / ta as f64, c.alpha),
                    None => c.alpha,
                };
                let beta3 = match c.t_beta3 {
                    Some(tb) => {
                        let (l1, l3, s) = (b1.ln(), b3.ln(), tf / tb as f64);
                        f64::min(((l1 * l3) / ((1.0 - s) * l3 + s * l1)).exp(), b3)
                    }
                    None => b3,
                };
                state[0][i] = b1 * state[0][i] + (1.0 - b1) * gi;
                state[1][i] = beta3 * state[1][i] + (1.0 - beta3) * gi;
                state[2][i] = b2 * state[2][i] + (1.0 - b2) * gi * gi;
                let denom = state[2][i].sqrt() / (1.0 - b2.powi(t as i32)).sqrt() + c.eps;
                let update = (state[0][i] / (1.0 - b1.powi(t as i32)) + alpha * state[1][i]) / denom;
                p[i] -= lr * (update + c.weight_decay * p[i]);
            }
            OptimConfig::Adafactor(_) | OptimConfig::Muon(_) => unreachable!("refused above"),
            OptimConfig::SchedulefreeAdamw(c) => {
                let (b1, b2) = c.betas;
                // The group scalars, from every rate so far (k 0-based).
                let warm = |k: usize| {
                    if (k as u64) < c.warmup_steps {
                        (k + 1) as f64 / c.warmup_steps as f64
                    } else {
                        1.0
                    }
                };
                let (mut lr_max, mut weight, mut weight_sum) = (-1.0f64, 0.0, 0.0);
                for (k, &l) in lrs.iter().enumerate() {
                    lr_max = lr_max.max(l * warm(k));
                    weight = ((k + 1) as f64).powf(c.r) * lr_max.powf(c.weight_lr_power);
                    weight_sum += weight;
                }
                let ckp1 = if weight_sum != 0.0 { weight / weight_sum } else { 0.0 };
                let lr = lr * warm(t as usize - 1);
                let (z, v) = (state[0][i], &mut state[1][i]);
                *v = b2 * *v + (1.0 - b2) * gi * gi;
                let denom = (*v / (1.0 - b2.powi(t as i32))).sqrt() + c.eps;
                let u = gi / denom + c.weight_decay * p[i];
                let y = p[i] + ckp1 * (z - p[i]);
                p[i] = y + lr * (b1 * (1.0 - ckp1) - 1.0) * u;
                state[0][i] = z - lr * u;
            }
        }
    }
}

/// Which elements' next step takes the sign of a value within rounding of 0 (Lion's
/// β1·m + (1 − β1)·g, its terms cancelling to within [`crate::reference::SIGN_TIE_TOL`]): f32
/// and f64 may move them in opposite directions, by 2·lr. All false for other optimizers.
pub fn sign_ties(c: &OptimConfig, g: &[f64], state: &[Vec<f64>]) -> Vec<bool> {
    let OptimConfig::Lion(l) = c else { return vec![false; g.len()] };
    let sign = if l.maximize { -1.0 } else { 1.0 };
    let b1 = l.betas.0;
    (0..g.len())
        .map(|i| {
            let (m, gi) = (b1 * state[0][i], (1.0 - b1) * sign * g[i]);
            (m + gi).abs() <= crate::reference::SIGN_TIE_TOL * (m.abs() + gi.abs())
        })
        .collect()
}

/// One Adafactor step `t` at rate `lr` of one tensor of `shape` (PyTorch's
/// `_single_tensor_adafactor`, in f64): `state` holds R then C of each matrix of the batch when
/// the tensor has two or more dimensions (factored over the last two), else V.
pub fn adafactor_step(c: &OptimConfig, t: u64, lr: f64, shape: &[usize], p: &mut [f64], g: &[f64], state: &mut [f64]) {
    let OptimConfig::Adafactor(c) = c else { panic!("adafactor_step takes an Adafactor configuration") };
    let n = p.len();
    let g: Vec<f64> = g.iter().map(|&x| if c.maximize { -x } else { x }).collect();
    let eps1 = c.eps.0.unwrap_or(f32::EPSILON as f64);
    let tf = t as f64;
    let w = tf.powf(c.beta2_decay);
    let lerp = |a: f64, b: f64| a + w * (b - a);
    let rho = lr.min(1.0 / tf.sqrt());
    let rms = |v: &[f64]| (v.iter().map(|x| x * x).sum::<f64>()).sqrt() / (n as f64).sqrt();
    let alpha = c.eps.1.max(rms(p)) * rho;
    for x in p.iter_mut() {
        *x *= 1.0 - lr * c.weight_decay;
    }
    let mut update = vec![0.0; n];
    if shape.len() >= 2 {
        let (rows, cols) = (shape[shape.len() - 2], shape[shape.len() - 1]);
        let batch = n / (rows * cols).max(1);
        for b in 0..batch {
            let (r0, c0, at) = (b * rows, batch * rows + b * cols, b * rows * cols);
            for i in 0..rows {
                let mean = (0..cols).map(|j| g[at + i * cols + j].powi(2)).sum::<f64>() / cols as f64;
                state[r0 + i] = lerp(state[r0 + i], mean);
            }
            for j in 0..cols {
                let mean = (0..rows).map(|i| g[at + i * cols + j].powi(2)).sum::<f64>() / rows as f64;
                state[c0 + j] = lerp(state[c0 + j], mean);
            }
            let mean_r = (0..rows).map(|i| state[r0 + i]).sum::<f64>() / rows as f64;
            for i in 0..rows {
                for j in 0..cols {
                    let v = state[r0 + i] * state[c0 + j] / mean_r.max(eps1);
                    update[at + i * cols + j] = g[at + i * cols + j] / v.max(eps1 * eps1).sqrt();
                }
            }
        }
    } else {
        for i in 0..n {
            state[i] = lerp(state[i], g[i] * g[i]);
            update[i] = g[i] / state[i].max(eps1 * eps1).sqrt();
        }
    }
    let den = f64::max(1.0, rms(&update) / c.d);
    for (x, u) in p.iter_mut().zip(&update) {
        *x -= alpha / den * u;
    }
}

/// One Muon step `t` at rate `lr` of one `rows` × `cols` matrix `p` with its momentum buffer
/// `buf` (PyTorch's `_single_tensor_muon`, with its bfloat16 Newton–Schulz replaced by f64, as
/// the fixtures are made): the momentum lerps, the iteration on the transpose of a tall
/// matrix, the decay at the unadjusted rate and the update at the adjusted one.
pub fn muon_step(c: &OptimConfig, lr: f64, rows: usize, cols: usize, p: &mut [f64], g: &[f64], buf: &mut [f64]) {
    let config = c;
    let OptimConfig::Muon(c) = c else { panic!("muon_step takes a Muon configuration") };
    let n = rows * cols;
    let lerp = |a: f64, b: f64, w: f64| a + w * (b - a);
    let mut u = vec![0.0; n];
    for i in 0..n {
        let gi = if c.maximize { -g[i] } else { g[i] };
        buf[i] = lerp(buf[i], gi, 1.0 - c.momentum);
        u[i] = if c.nesterov { lerp(gi, buf[i], c.momentum) } else { buf[i] };
    }
    let x = newton_schulz(&u, rows, cols, config);
    let ratio = c.adjust_lr_fn.ratio(rows, cols);
    for i in 0..rows {
        for j in 0..cols {
            let o = x[i * cols + j];
            let q = &mut p[i * cols + j];
            *q *= 1.0 - lr * c.weight_decay;
            *q -= lr * ratio * o;
        }
    }
}

/// Muon's Newton–Schulz iteration of the `rows × cols` matrix `u` (row-major; the result in
/// the same shape), in f64, or with `ns_dtype` bfloat16 with PyTorch's roundings: the matrix,
/// its norm, the quotient and each op's result rounded to bfloat16.
pub fn newton_schulz(u: &[f64], rows: usize, cols: usize, c: &OptimConfig) -> Vec<f64> {
    let OptimConfig::Muon(c) = c else { panic!("newton_schulz takes a Muon configuration") };
    let n = rows * cols;
    let bf16 = c.ns_dtype.is_bfloat16();
    let rd = |v: f64| if bf16 { round_bf16(v) } else { v };
    // X: the wide orientation (r ≤ k), row-major.
    let tall = rows > cols;
    let (r, k) = if tall { (cols, rows) } else { (rows, cols) };
    let mut x = vec![0.0; n];
    for i in 0..rows {
        for j in 0..cols {
            if tall {
                x[j * rows + i] = rd(u[i * cols + j]);
            } else {
                x[i * cols + j] = rd(u[i * cols + j]);
            }
        }
    }
    let norm = rd(rd(x.iter().map(|v| v * v).sum::<f64>().sqrt()).max(c.eps));
    x.iter_mut().for_each(|v| *v = rd(*v / norm));
    let (a, b, cc) = c.ns_coefficients;
    for _ in 0..c.ns_steps {
        let mut s = vec![0.0; r * r];
        for i in 0..r {
            for j in 0..r {
                s[i * r + j] = rd((0..k).map(|l| x[i * k + l] * x[j * k + l]).sum());
            }
        }
        let mut t = vec![0.0; r * r];
        for i in 0..r {
            for j in 0..r {
                let ss: f64 = (0..r).map(|l| s[i * r + l] * s[l * r + j]).sum();
                t[i * r + j] = rd(b * s[i * r + j] + cc * ss);
            }
        }
        let mut next = vec![0.0; r * k];
        for i in 0..r {
            for j in 0..k {
                let tx: f64 = (0..r).map(|l| t[i * r + l] * x[l * k + j]).sum();
                next[i * k + j] = rd(a * x[i * k + j] + tx);
            }
        }
        x = next;
    }
    let mut out = vec![0.0; n];
    for i in 0..rows {
        for j in 0..cols {
            out[i * cols + j] = if tall { x[j * rows + i] } else { x[i * cols + j] };
        }
    }
    out
}

/// `x` rounded to the nearest bfloat16 (through f32; ties to even).
pub fn round_bf16(x: f64) -> f64 {
    quant::bf16_to_f32(quant::bf16_from_f32(x as f32)) as f64
}

/// One step with bfloat16 state: [`step`] from the stored state, then each slot rounded to
/// bfloat16 (the parameter update uses the unrounded state, as the kernels do).
pub fn step_bf16(c: &OptimConfig, t: u64, lrs: &[f64], p: &mut [f64], g: &[f64], state: &mut [Vec<f64>]) {
    step(c, t, lrs, p, g, state);
    for s in state.iter_mut() {
        for x in s.iter_mut() {
            *x = round_bf16(*x);
        }
    }
}

/// Blockwise 8-bit state of one quantized tensor, as the reference keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    /// Each kept slot's codes, one per element.
    pub codes: Vec<Vec<u8>>,
    /// Each kept slot's absmax, one per block of `quant::BLOCK`.
    pub absmax: Vec<Vec<f64>>,
}

/// The nearest code to `x` in `map` by exact distances in f64 (ties to the larger code), then
/// bitsandbytes' sign rule for the signed map: written independently of the kernels' bucket
/// and threshold search.
pub fn nearest_code(map: &DynamicMap, x: f64) -> u8 {
    let v: Vec<f64> = map.values.iter().map(|&v| v as f64).collect();
    // The last value at or below x, then whichever neighbour is nearer.
    let below = v.partition_point(|&m| m <= x).saturating_sub(1);
    let mut c = if below + 1 < v.len() && (v[below + 1] - x).abs() <= (x - v[below]).abs() { below + 1 } else { below };
    if map.signed {
        if x > 0.0 && v[c] < 0.0 {
            c += 1;
        } else if x < 0.0 && v[c] > 0.0 {
            c -= 1;
        }
    }
    c as u8
}

/// One step of `c` with blockwise 8-bit state over one tensor of at least
/// `quant::MIN_8BIT_SIZE` elements: per block of `quant::BLOCK`, dequantize each slot with its
/// map (bitsandbytes' rule: signed, but for a second moment), [`step`] in f64, the new absmax,
/// the nearest codes. Returns the normalized values the codes were chosen for (value /
/// absmax), per slot.
pub fn step_8bit(c: &OptimConfig, t: u64, lrs: &[f64], p: &mut [f64], g: &[f64], q: &mut Quantized) -> Vec<Vec<f64>> {
    let maps: Vec<&DynamicMap> = c.slots().iter().map(|s| quant::map_8bit(s.signed_8bit())).collect();
    let mut normalized = vec![Vec::with_capacity(p.len()); maps.len()];
    for (b, at) in (0..p.len()).step_by(BLOCK).enumerate() {
        let r = at..(at + BLOCK).min(p.len());
        let mut state: Vec<Vec<f64>> = maps
            .iter()
            .enumerate()
            .map(|(k, map)| {
                q.codes[k][r.clone()].iter().map(|&code| map.values[code as usize] as f64 * q.absmax[k][b]).collect()
            })
            .collect();
        step(c, t, lrs, &mut p[r.clone()], &g[r.clone()], &mut state);
        for (k, map) in maps.iter().enumerate() {
            let top = state[k].iter().fold(0f64, |a, x| a.max(x.abs()));
            q.absmax[k][b] = top;
            for (code, &x) in q.codes[k][r.clone()].iter_mut().zip(&state[k]) {
                let x = if top > 0.0 { x / top } else { 0.0 };
                *code = nearest_code(map, x);
                normalized[k].push(x);
            }
        }
    }
    normalized
}
