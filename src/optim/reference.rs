//! The plain f64 reference of every optimizer, written the way `torch.optim`'s single-tensor
//! code reads, one coordinate at a time. Used by tests and `descent parity`, never to train.

use super::{OptimConfig, Slot};

/// One step `t` (1-based) at learning rate `lr`, updating `p` and the state slots in place
/// (slot order as in [`OptimConfig::slots`]).
pub fn step(c: &OptimConfig, t: u64, lr: f64, p: &mut [f64], g: &[f64], state: &mut [Vec<f64>]) {
    let slots = c.slots();
    let at = |s: Slot| slots.iter().position(|&x| x == s);
    for i in 0..p.len() {
        let mut gi = g[i];
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
        }
    }
}
