//! The training loop: the dataset is uploaded once as bytes, each mini-batch is gathered by
//! index on the device, and forward, loss, backward and the optimizer step are issued without
//! reading anything back; loss and accuracy accumulate on the device and are read once per
//! epoch (and at progress updates).

use crate::autograd::Tape;
use crate::backend::{Act, Counters, Device, Gather};
use crate::data::{Dataset, Split};
use crate::nn::Mlp;
use crate::optim::{OptimConfig, Optimizer, Schedule};
use crate::rng::Rng;
use crate::tensor::{Tensor, View};
use anyhow::{bail, ensure, Result};
use serde::Serialize;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    pub hidden: Vec<usize>,
    pub act: Act,
    pub optimizer: OptimConfig,
    pub schedule: Schedule,
    /// Rows per forward pass when evaluating.
    pub eval_batch: usize,
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        ensure!(self.epochs > 0, "--epochs must be at least 1");
        ensure!(self.batch_size > 0, "--batch-size must be at least 1");
        ensure!(self.eval_batch > 0, "the evaluation batch must be at least 1");
        ensure!(
            !self.hidden.is_empty() && self.hidden.iter().all(|&h| h > 0),
            "--hidden needs one or more sizes > 0, e.g. 128,128"
        );
        self.optimizer.validate()?;
        self.schedule.validate()
    }
}

/// One epoch's figures, as `metrics.json` stores them.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    pub seconds: f64,
}

impl EpochMetrics {
    pub fn line(&self, epochs: usize) -> String {
        format!(
            "epoch {:>3}/{epochs}  train loss {:.4}  acc {:.4}  test loss {:.4}  acc {:.4}  {:.2}s",
            self.epoch, self.train_loss, self.train_accuracy, self.test_loss, self.test_accuracy, self.seconds
        )
    }
}

/// A split uploaded to the device as bytes.
struct DeviceSplit {
    images: usize,
    labels: usize,
    rows: usize,
}

impl DeviceSplit {
    fn upload(dev: &mut Device, s: &Split) -> Result<DeviceSplit> {
        Ok(DeviceSplit { images: dev.alloc_bytes(&s.images)?, labels: dev.alloc_bytes(&s.labels)?, rows: s.rows })
    }
}

fn index_bytes(idx: &[u32]) -> Vec<u8> {
    idx.iter().flat_map(|i| i.to_le_bytes()).collect()
}

pub struct Trainer {
    pub dev: Device,
    pub model: Mlp,
    pub opt: Optimizer,
    pub config: TrainConfig,
    pub rng: Rng,
    pub epoch: usize,
    row_len: usize,
    train: DeviceSplit,
    test: DeviceSplit,
    test_order: usize,
    /// [Σ loss, correct] accumulated on the device.
    metrics: View,
    tape: Tape,
}

impl Trainer {
    pub fn new(mut dev: Device, data: &Dataset, config: TrainConfig) -> Result<Trainer> {
        config.validate()?;
        if data.train.rows == 0 || data.test.rows == 0 {
            bail!("dataset {} has an empty split", data.name);
        }
        let mut rng = Rng::new(config.seed);
        let mut sizes = vec![data.row_len];
        sizes.extend(&config.hidden);
        sizes.push(data.classes);
        let model = Mlp::new(&mut dev, &sizes, config.act, &mut rng)?;
        let opt = Optimizer::new(&mut dev, config.optimizer.clone(), config.schedule.clone(), model.arena.len())?;
        let train = DeviceSplit::upload(&mut dev, &data.train)?;
        let test = DeviceSplit::upload(&mut dev, &data.test)?;
        let order: Vec<u32> = (0..data.test.rows as u32).collect();
        let test_order = dev.alloc_bytes(&index_bytes(&order))?;
        let metrics = dev.alloc_zeroed(2)?;
        Ok(Trainer {
            dev,
            model,
            opt,
            config,
            rng,
            epoch: 0,
            row_len: data.row_len,
            train,
            test,
            test_order,
            metrics,
            tape: Tape::new(),
        })
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.train.rows.div_ceil(self.config.batch_size)
    }

    /// Gather rows `order[start..start + count]` of a split into fresh x and y buffers.
    fn gather(&mut self, split: (usize, usize), order: usize, start: usize, count: usize) -> Result<(View, View)> {
        let x = self.dev.alloc(count * self.row_len)?;
        let y = self.dev.alloc(count)?;
        self.dev.gather(&Gather {
            images: split.0,
            labels: split.1,
            indices: order,
            start,
            count,
            row_len: self.row_len,
            scale: 1.0 / 255.0,
            x,
            y,
        });
        Ok((x, y))
    }

    /// One optimizer step on rows `order[start..start + count]`.
    pub fn step(&mut self, order: usize, start: usize, count: usize) -> Result<()> {
        let (x, y) = self.gather((self.train.images, self.train.labels), order, start, count)?;
        let xv = self.tape.input(Tensor::new(x, &[count, self.row_len]));
        let logits = self.model.forward(&mut self.tape, &mut self.dev, xv)?;
        let loss = self.tape.softmax_ce(&mut self.dev, logits, y, Some(self.metrics))?;
        self.tape.backward(&mut self.dev, loss)?;
        self.opt.step(&mut self.dev, self.model.arena.params, self.model.arena.grads);
        self.tape.reset(&mut self.dev);
        self.dev.release(x);
        self.dev.release(y);
        self.dev.flush()
    }

    /// A shuffled order of the training rows for one epoch, uploaded as a device index buffer.
    pub fn epoch_order(&mut self) -> Result<usize> {
        let mut order: Vec<u32> = (0..self.train.rows as u32).collect();
        self.rng.shuffle(&mut order);
        self.dev.alloc_bytes(&index_bytes(&order))
    }

    /// The training loss summed over the rows seen since the last epoch report (a readback).
    pub fn loss_sum(&mut self) -> Result<f64> {
        Ok(self.dev.read(self.metrics)?[0] as f64)
    }

    /// Read and reset the device-side [Σ loss, correct] pair.
    fn take_metrics(&mut self) -> Result<(f64, f64)> {
        let m = self.dev.read(self.metrics)?;
        self.dev.fill(self.metrics, 0.0);
        Ok((m[0] as f64, m[1] as f64))
    }

    /// Train one epoch; `progress` is called every `progress_every` steps with (step, steps,
    /// running mean loss) (that reads the device's loss sum back).
    pub fn train_epoch(
        &mut self,
        mut progress: impl FnMut(usize, usize, f64),
        progress_every: usize,
    ) -> Result<(f64, f64, f64)> {
        let start = Instant::now();
        let order_buf = self.epoch_order()?;
        let steps = self.steps_per_epoch();
        let bs = self.config.batch_size;
        for s in 0..steps {
            let from = s * bs;
            let count = bs.min(self.train.rows - from);
            self.step(order_buf, from, count)?;
            if progress_every > 0 && (s + 1) % progress_every == 0 && s + 1 < steps {
                let m = self.dev.read(self.metrics)?;
                progress(s + 1, steps, m[0] as f64 / ((s + 1) * bs) as f64);
            }
        }
        let (loss, correct) = self.take_metrics()?;
        self.dev.free(order_buf);
        self.epoch += 1;
        let n = self.train.rows as f64;
        if !loss.is_finite() {
            bail!("training diverged in epoch {}: the loss is {loss} (try a smaller --lr)", self.epoch);
        }
        Ok((loss / n, correct / n, start.elapsed().as_secs_f64()))
    }

    /// Mean loss and accuracy on the test split.
    pub fn evaluate(&mut self) -> Result<(f64, f64)> {
        let rows = self.test.rows;
        let mut from = 0;
        while from < rows {
            let count = self.config.eval_batch.min(rows - from);
            let (x, y) = self.gather((self.test.images, self.test.labels), self.test_order, from, count)?;
            let xv = self.tape.input(Tensor::new(x, &[count, self.row_len]));
            let logits = self.model.forward_no_grad(&mut self.tape, &mut self.dev, xv)?;
            self.tape.softmax_ce(&mut self.dev, logits, y, Some(self.metrics))?;
            self.tape.reset(&mut self.dev);
            self.dev.release(x);
            self.dev.release(y);
            from += count;
        }
        let (loss, correct) = self.take_metrics()?;
        Ok((loss / rows as f64, correct / rows as f64))
    }

    /// Train one epoch and evaluate.
    pub fn run_epoch(
        &mut self,
        progress: impl FnMut(usize, usize, f64),
        progress_every: usize,
    ) -> Result<EpochMetrics> {
        let (train_loss, train_accuracy, seconds) = self.train_epoch(progress, progress_every)?;
        let (test_loss, test_accuracy) = self.evaluate()?;
        Ok(EpochMetrics { epoch: self.epoch, train_loss, train_accuracy, test_loss, test_accuracy, seconds })
    }

    pub fn counters(&self) -> Counters {
        self.dev.counters()
    }
}
