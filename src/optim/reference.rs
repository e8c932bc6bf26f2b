//! The plain f64 reference of every optimizer, written the way `torch.optim`'s single-tensor
//! code reads, one coordinate at a time. Used by tests and `descent parity`, never to train.

use super::{OptimConfig, OptimKind};

/// One step `t` (1-based) at learning rate `lr`, updating `p` and the state slots in place
/// (slot order as in [`OptimConfig::state_names`]).
pub fn step(c: &OptimConfig, t: u64, lr: f64, p: &mut [f64], g: &[f64], state: &mut [Vec<f64>]) {
    let wd = c.weight_decay;
    for i in 0..p.len() {
        let mut gi = g[i];
        match c.kind() {
            OptimKind::Sgd => {
                if wd != 0.0 {
                    gi += wd * p[i];
                }
                if c.momentum != 0.0 {
                    let buf = &mut state[0][i];
                    *buf = if t == 1 { gi } else { c.momentum * *buf + (1.0 - c.dampening) * gi };
                    gi = if c.nesterov { gi + c.momentum * *buf } else { *buf };
                }
                p[i] -= lr * gi;
            }
            OptimKind::Adagrad => {
                if wd != 0.0 {
                    gi += wd * p[i];
                }
                let clr = lr / (1.0 + (t as f64 - 1.0) * c.lr_decay);
                state[0][i] += gi * gi;
                p[i] -= clr * gi / (state[0][i].sqrt() + c.eps);
            }
            OptimKind::Rmsprop => {
                if wd != 0.0 {
                    gi += wd * p[i];
                }
                let a = c.alpha;
                state[0][i] = a * state[0][i] + (1.0 - a) * gi * gi;
                let ga_slot = if c.momentum > 0.0 { 2 } else { 1 };
                let avg = if c.centered {
                    let ga = a * state[ga_slot][i] + (1.0 - a) * gi;
                    state[ga_slot][i] = ga;
                    (state[0][i] - ga * ga).sqrt() + c.eps
                } else {
                    state[0][i].sqrt() + c.eps
                };
                if c.momentum > 0.0 {
                    let buf = &mut state[1][i];
                    *buf = c.momentum * *buf + gi / avg;
                    p[i] -= lr * *buf;
                } else {
                    p[i] -= lr * gi / avg;
                }
            }
            OptimKind::Adam => {
                let (b1, b2) = c.betas;
                if c.name == "adamw" {
                    p[i] *= 1.0 - lr * wd;
                } else if wd != 0.0 {
                    gi += wd * p[i];
                }
                state[0][i] = b1 * state[0][i] + (1.0 - b1) * gi;
                state[1][i] = b2 * state[1][i] + (1.0 - b2) * gi * gi;
                let bc1 = 1.0 - b1.powi(t as i32);
                let bc2_sqrt = (1.0 - b2.powi(t as i32)).sqrt();
                let v = if c.amsgrad {
                    state[2][i] = state[2][i].max(state[1][i]);
                    state[2][i]
                } else {
                    state[1][i]
                };
                let denom = v.sqrt() / bc2_sqrt + c.eps;
                p[i] -= (lr / bc1) * state[0][i] / denom;
            }
            OptimKind::LectureMomentum => {
                if wd != 0.0 {
                    gi += wd * p[i];
                }
                let v = &mut state[0][i];
                *v = c.momentum * *v - lr * gi;
                p[i] += *v;
            }
        }
    }
}
