//! PyTorch's CPU random number generator, reproduced draw for draw, so that `--seed S` starts
//! the same experiment as a PyTorch script that calls `torch.manual_seed(S)`, builds the
//! `nn.Linear` stack and iterates `DataLoader(train, batch_size=B, shuffle=True)`: the same
//! initial weights bit for bit and the same mini-batches in the same order. Only f32 rounding
//! order then separates the two runs, which makes a per-seed comparison with PyTorch meaningful.
//!
//! What is reproduced (ATen's `CPUGeneratorImpl` and the kernels that draw from it):
//! - the generator: MT19937 seeded with the low 32 bits of the seed (`mt19937(seed)`);
//!   `random()` is one 32-bit output, `random64()` two of them, the first as the high half;
//! - `tensor.uniform_(from, to)` for f32: `(random() & 0xFFFFFF) / 2^24 * (to - from) + from`,
//!   evaluated in f64 with `from`, `to` and `to - from` in f32;
//! - `torch.randperm(n)` for n below 2^32/20: a forward Fisher–Yates swap of `i` with
//!   `i + random() % (n - i)`;
//! - `torch.empty((), dtype=torch.int64).random_()`: `random64() % 2^63`.
//!
//! `tests/fixtures/torch_rng.json` holds values PyTorch 2.15 drew (made by
//! `tests/fixtures/make_torch_rng_fixture.py`); the tests compare against it.

const N: usize = 624;
const M: usize = 397;

/// MT19937 as PyTorch's CPU generator uses it. `draws` counts 32-bit outputs since seeding, so
/// a checkpoint can store the generator's position as two numbers.
#[derive(Clone)]
pub struct TorchGenerator {
    state: [u32; N],
    index: usize,
    draws: u64,
    /// The second Box-Muller sample of the last small normal draw, which PyTorch's generator
    /// keeps for the next one (`next_double_normal_sample`).
    next_normal: Option<f64>,
}

impl TorchGenerator {
    /// `torch.manual_seed(seed)` / `torch.Generator().manual_seed(seed)`.
    pub fn new(seed: u64) -> TorchGenerator {
        let mut state = [0u32; N];
        state[0] = seed as u32;
        for j in 1..N {
            let prev = state[j - 1];
            state[j] = 1_812_433_253u32.wrapping_mul(prev ^ (prev >> 30)).wrapping_add(j as u32);
        }
        TorchGenerator { state, index: N, draws: 0, next_normal: None }
    }

    /// The generator `draws` outputs after seeding with `seed` (how checkpoints restore it).
    /// A cached second normal sample (see [`TorchGenerator::normal_vec`]) is not part of the
    /// position: restore where no small normal draw is pending, as the trainer does.
    pub fn at(seed: u64, draws: u64) -> TorchGenerator {
        let mut g = TorchGenerator::new(seed);
        for _ in 0..draws {
            g.random();
        }
        g
    }

    /// 32-bit outputs drawn since seeding.
    pub fn draws(&self) -> u64 {
        self.draws
    }

    fn twist(&mut self) {
        let s = &mut self.state;
        for i in 0..N {
            let y = (s[i] & 0x8000_0000) | (s[(i + 1) % N] & 0x7fff_ffff);
            let mut v = s[(i + M) % N] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= 0x9908_b0df;
            }
            s[i] = v;
        }
        self.index = 0;
    }

    /// ATen's `random()`: the next 32-bit output.
    pub fn random(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        self.draws += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// ATen's `random64()`: two outputs, the first as the high half.
    pub fn random64(&mut self) -> u64 {
        let hi = self.random() as u64;
        (hi << 32) | self.random() as u64
    }

    /// One element of `tensor.uniform_(from, to)` for an f32 tensor.
    pub fn uniform_f32(&mut self, from: f32, to: f32) -> f32 {
        let x = (self.random() & 0x00ff_ffff) as f64 / (1u32 << 24) as f64;
        (x * (to - from) as f64 + from as f64) as f32
    }

    /// `n` elements of `tensor.uniform_(from, to)`; the bounds arrive as Python floats (f64)
    /// and are rounded to f32 first, as the kernel does.
    pub fn uniform_vec(&mut self, n: usize, from: f64, to: f64) -> Vec<f32> {
        (0..n).map(|_| self.uniform_f32(from as f32, to as f32)).collect()
    }

    /// ATen's `uniform_real_distribution<double>(0, 1)`: 53 bits of `random64()`.
    fn uniform_f64(&mut self) -> f64 {
        (self.random64() & ((1u64 << 53) - 1)) as f64 / (1u64 << 53) as f64
    }

    /// `n` elements of `tensor.normal_(mean, std)` for a contiguous f32 tensor, drawn as
    /// PyTorch's CPU kernel draws them. From 16 elements: every element's uniform first, then
    /// Box-Muller over blocks of 16 (`u1 = 1 − x[j]`, `u2 = x[j + 8]`, radius and angle in f32),
    /// the last 16 drawn again when `n` is not a multiple of 16. Under 16: one
    /// `normal_distribution<double>` per element, each pair's second sample kept in the
    /// generator for the next call, as ATen keeps it. PyTorch's vectorized (AVX2) path computes
    /// log, sin and cos with Sleef, within an ulp or two of these.
    pub fn normal_vec(&mut self, n: usize, mean: f64, std: f64) -> Vec<f32> {
        if n < 16 {
            return (0..n).map(|_| (self.normal_f64() * std + mean) as f32).collect();
        }
        let (mean, std) = (mean as f32, std as f32);
        let mut data: Vec<f32> = (0..n).map(|_| self.uniform_f32(0.0, 1.0)).collect();
        let fill16 = |d: &mut [f32]| {
            for j in 0..8 {
                let u1 = 1.0 - d[j];
                let u2 = d[j + 8];
                let radius = (-2.0 * u1.ln()).sqrt();
                // 2π rounded to f32 times u2 in f32, as the vectorized kernel computes θ.
                let theta = (2.0 * std::f64::consts::PI) as f32 * u2;
                d[j] = radius * theta.cos() * std + mean;
                d[j + 8] = radius * theta.sin() * std + mean;
            }
        };
        for block in data.chunks_exact_mut(16) {
            fill16(block);
        }
        if !n.is_multiple_of(16) {
            let tail = &mut data[n - 16..];
            for v in tail.iter_mut() {
                *v = self.uniform_f32(0.0, 1.0);
            }
            fill16(tail);
        }
        data
    }

    /// ATen's `normal_distribution<double>` with mean 0 and std 1: the cached second sample if
    /// there is one, else a new pair from two uniform doubles (`r = √(−2·log1p(−u2))`,
    /// `θ = 2π·u1`), returning `r·cos θ` and keeping `r·sin θ`.
    fn normal_f64(&mut self) -> f64 {
        if let Some(v) = self.next_normal.take() {
            return v;
        }
        let u1 = self.uniform_f64();
        let u2 = self.uniform_f64();
        let r = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u1;
        self.next_normal = Some(r * theta.sin());
        r * theta.cos()
    }

    /// `torch.randperm(n, generator=self)`.
    pub fn randperm(&mut self, n: u32) -> Vec<u32> {
        let mut r: Vec<u32> = (0..n).collect();
        for i in 0..n.saturating_sub(1) {
            let z = self.random() % (n - i);
            r.swap(i as usize, (i + z) as usize);
        }
        r
    }

    /// The order `DataLoader(…, shuffle=True)` visits `n` rows in for its next epoch, drawing
    /// from the global generator as it does: the iterator's base seed (unused without worker
    /// processes), then the sampler's seed for a fresh generator that runs `randperm(n)`.
    pub fn dataloader_epoch_order(&mut self, n: u32) -> Vec<u32> {
        let _base_seed = self.random64() % (1 << 63);
        let sampler_seed = self.random64() % (1 << 63);
        TorchGenerator::new(sampler_seed).randperm(n)
    }
}

/// `nn.Linear(fan_in, …)`'s bounds: kaiming-uniform with a = √5 for the weight, computed as
/// PyTorch computes it in f64 (gain √(2 / (1 + a²)), std = gain / √fan_in, bound = √3 · std),
/// and 1/√fan_in for the bias. Both are 1/√fan_in up to rounding.
pub fn linear_init_bounds(fan_in: usize) -> (f64, f64) {
    let a = 5f64.sqrt();
    let gain = (2.0 / (1.0 + a * a)).sqrt();
    let std = gain / (fan_in as f64).sqrt();
    (3f64.sqrt() * std, 1.0 / (fan_in as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_mt19937() {
        // C++'s std::mt19937 is required to give 4123659995 as its 10000th output for the
        // default seed 5489.
        let mut g = TorchGenerator::new(5489);
        let mut last = 0;
        for _ in 0..10_000 {
            last = g.random();
        }
        assert_eq!(last, 4_123_659_995);
        assert_eq!(g.draws(), 10_000);
    }

    #[test]
    fn only_the_low_32_bits_of_the_seed_count_and_positions_restore() {
        let mut a = TorchGenerator::new(7);
        let mut b = TorchGenerator::new(7 + (1 << 32));
        assert_eq!(a.random64(), b.random64());
        let mut c = TorchGenerator::at(7, a.draws());
        assert_eq!(a.random(), c.random());
    }

    #[test]
    fn randperm_is_a_permutation_and_uniform_stays_in_bounds() {
        let mut g = TorchGenerator::new(3);
        for n in [0u32, 1, 2, 7, 1000] {
            let mut p = g.randperm(n);
            p.sort_unstable();
            assert_eq!(p, (0..n).collect::<Vec<_>>());
        }
        assert!(g.uniform_vec(1000, -0.25, 0.25).iter().all(|x| (-0.25..=0.25).contains(x)));
    }
}
