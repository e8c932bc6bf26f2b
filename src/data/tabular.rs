//! Datasets of f32 features: your own data for classification (class indices) or regression
//! (f32 targets, one or more per row), from `Vec<f32>`s or `.npy` files. Uploaded to the
//! device once; each batch is gathered there by index ([`Device::gather_rows`]), with the
//! same shuffles as the image datasets (`TorchGenerator::randperm`).
//!
//! ```
//! use descent::backend::Device;
//! use descent::data::tabular::F32Dataset;
//! use descent::torch_rng::TorchGenerator;
//!
//! # fn main() -> anyhow::Result<()> {
//! let mut dev = Device::cpu();
//! // Four rows of two features; a regression target per row.
//! let data = F32Dataset::regression(vec![0., 1., 2., 3., 4., 5., 6., 7.], 2, vec![1., 5., 9., 13.], 1)?;
//! let on_device = data.upload(&mut dev)?;
//! let order = on_device.upload_order(&mut dev, &TorchGenerator::new(0).randperm(4))?;
//! let (x, y) = on_device.batch(&mut dev, order, 0, 2)?; // the first two rows of the shuffle
//! assert_eq!(dev.read(x)?.len(), 4);
//! assert_eq!(dev.read(y)?.len(), 2);
//! # Ok(()) }
//! ```

use crate::backend::{check_labels, ByteBuffer, Device, IGNORE_INDEX};
use crate::tensor::View;
use anyhow::{ensure, Context, Result};

/// What a row is trained to predict.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets {
    /// A class index per row (as f32, what `softmax_ce` takes).
    Classes {
        /// One per row.
        labels: Vec<f32>,
        /// Number of classes.
        classes: usize,
    },
    /// `width` f32 values per row (what `mse` and the other regression losses take).
    Values {
        /// `rows × width`, row-major.
        values: Vec<f32>,
        /// Values per row.
        width: usize,
    },
}

impl Targets {
    /// Values per row (1 for class indices).
    pub fn width(&self) -> usize {
        match self {
            Targets::Classes { .. } => 1,
            Targets::Values { width, .. } => *width,
        }
    }

    fn data(&self) -> &[f32] {
        match self {
            Targets::Classes { labels, .. } => labels,
            Targets::Values { values, .. } => values,
        }
    }
}

/// `rows × cols` f32 features and their targets, in host memory.
#[derive(Clone, Debug, PartialEq)]
pub struct F32Dataset {
    /// `rows × cols`, row-major.
    pub features: Vec<f32>,
    /// Features per row.
    pub cols: usize,
    /// Rows.
    pub rows: usize,
    /// What each row predicts.
    pub targets: Targets,
}

impl F32Dataset {
    /// Features with a class index per row (checked as `Device::upload_labels` checks them:
    /// an integer in `[0, classes)`; the error names the row).
    pub fn classification(features: Vec<f32>, cols: usize, labels: Vec<f32>, classes: usize) -> Result<F32Dataset> {
        ensure!(classes > 0, "a classification dataset needs at least one class");
        check_labels(&labels, classes, IGNORE_INDEX)?;
        F32Dataset::new(features, cols, Targets::Classes { labels, classes })
    }

    /// Features with `width` f32 targets per row.
    pub fn regression(features: Vec<f32>, cols: usize, targets: Vec<f32>, width: usize) -> Result<F32Dataset> {
        ensure!(width > 0, "a regression dataset needs at least one target per row");
        F32Dataset::new(features, cols, Targets::Values { values: targets, width })
    }

    fn new(features: Vec<f32>, cols: usize, targets: Targets) -> Result<F32Dataset> {
        ensure!(cols > 0, "a dataset needs at least one feature per row");
        ensure!(features.len().is_multiple_of(cols), "{} feature values are not whole rows of {cols}", features.len());
        let rows = features.len() / cols;
        ensure!(rows > 0, "the dataset has no rows");
        let (got, width) = (targets.data().len(), targets.width());
        ensure!(got == rows * width, "{rows} rows of features but {got} target values ({width} per row expected)");
        if let Some(i) = features.iter().position(|v| !v.is_finite()) {
            anyhow::bail!("feature {} of row {} is {}: features must be finite", i % cols, i / cols, features[i]);
        }
        if let Some(i) = targets.data().iter().position(|v| !v.is_finite()) {
            anyhow::bail!("target {} of row {} is not finite", i % width, i / width);
        }
        Ok(F32Dataset { features, cols, rows, targets })
    }

    /// Copy the features and targets to `dev` once.
    pub fn upload(&self, dev: &mut Device) -> Result<DeviceF32Dataset> {
        let x = dev.upload(&self.features)?;
        let y = dev.upload(self.targets.data())?;
        Ok(DeviceF32Dataset { x, y, rows: self.rows, cols: self.cols, width: self.targets.width() })
    }
}

/// An [`F32Dataset`] on a device: its features and targets, and how to gather a batch.
#[derive(Clone, Copy, Debug)]
pub struct DeviceF32Dataset {
    /// `rows × cols` features.
    pub x: View,
    /// `rows × width` targets (class indices: width 1).
    pub y: View,
    /// Rows.
    pub rows: usize,
    /// Features per row.
    pub cols: usize,
    /// Targets per row.
    pub width: usize,
}

impl DeviceF32Dataset {
    /// A visiting order (an epoch's shuffle, or `0..rows`) on the device, every index checked
    /// against the dataset's rows here, so the gather reads only this dataset.
    pub fn upload_order(&self, dev: &mut Device, order: &[u32]) -> Result<ByteBuffer> {
        if let Some(i) = order.iter().position(|&r| r as usize >= self.rows) {
            anyhow::bail!("position {i} of the order is row {}, past the dataset's {} rows", order[i], self.rows);
        }
        let bytes: Vec<u8> = order.iter().flat_map(|r| r.to_le_bytes()).collect();
        dev.upload_bytes(&bytes)
    }

    /// Rows `order[start..start + count]` as a `[count, cols]` input and `[count, width]`
    /// targets (class indices: `[count]`), gathered on the device into new buffers (release
    /// them, or give them to a tape with `input_owned` / `adopt`). `order` comes from
    /// [`DeviceF32Dataset::upload_order`]; `start + count` must lie within it.
    pub fn batch(&self, dev: &mut Device, order: ByteBuffer, start: usize, count: usize) -> Result<(View, View)> {
        ensure!(count > 0, "an empty batch");
        let x = dev.alloc(count * self.cols).context("the batch's features")?;
        let y = dev.alloc(count * self.width).context("the batch's targets")?;
        dev.gather_rows(self.x, self.cols, order, start, x);
        dev.gather_rows(self.y, self.width, order, start, y);
        Ok((x, y))
    }

    /// Give the dataset's buffers back to the device's pool.
    pub fn release(self, dev: &mut Device) {
        dev.release(self.x);
        dev.release(self.y);
    }
}

/// Read a dataset from two `.npy` files (numpy's format, read with the `npyz` crate): `x`, a
/// 2-D float32 array of features, and `y`: with `classes` given, a 1-D integer (int8–int64,
/// uint8–uint64) or float32 array of class indices; without, a 1-D or 2-D float32 array of
/// regression targets. Shapes, dtypes and C order are checked; errors name the file.
#[cfg(not(target_arch = "wasm32"))]
pub fn from_npy(x: &std::path::Path, y: &std::path::Path, classes: Option<usize>) -> Result<F32Dataset> {
    let (xshape, features) = read_f32(x)?;
    ensure!(xshape.len() == 2, "{}: features must be a 2-D array, got shape {xshape:?}", x.display());
    let (yshape, targets) = match classes {
        Some(_) => read_labels(y)?,
        None => read_f32(y)?,
    };
    let yrows = yshape.first().copied().unwrap_or(0);
    ensure!(yrows == xshape[0], "{} has {} rows, {} has {yrows}", x.display(), xshape[0], y.display());
    let what = || format!("{} and {}", x.display(), y.display());
    match classes {
        Some(c) => {
            ensure!(yshape.len() == 1, "{}: class indices must be a 1-D array, got shape {yshape:?}", y.display());
            F32Dataset::classification(features, xshape[1], targets, c).with_context(what)
        }
        None => {
            ensure!(yshape.len() <= 2, "{}: targets must be 1-D or 2-D, got shape {yshape:?}", y.display());
            let width = yshape.get(1).copied().unwrap_or(1);
            F32Dataset::regression(features, xshape[1], targets, width).with_context(what)
        }
    }
}

/// The class count a `.npy` file of class indices implies: its largest label plus one. Each
/// label must be a non-negative integer (or the ignore index, −100); the error names the row.
#[cfg(not(target_arch = "wasm32"))]
pub fn classes_in_npy(y: &std::path::Path) -> Result<usize> {
    let (_, labels) = read_labels(y)?;
    let mut most = None;
    for (row, &l) in labels.iter().enumerate() {
        if l == IGNORE_INDEX as f32 {
            continue;
        }
        ensure!(
            l >= 0.0 && l.fract() == 0.0 && l < (1u32 << 24) as f32,
            "{}: label {l} at row {row} is not a class index (a non-negative integer)",
            y.display()
        );
        most = Some(most.map_or(l, |m: f32| m.max(l)));
    }
    Ok(most.map_or(0, |m| m as usize + 1))
}

#[cfg(not(target_arch = "wasm32"))]
fn open_npy(path: &std::path::Path) -> Result<(npyz::NpyFile<std::io::BufReader<std::fs::File>>, Vec<usize>, String)> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let npy = npyz::NpyFile::new(std::io::BufReader::new(file))
        .with_context(|| format!("{}: not a .npy file", path.display()))?;
    ensure!(
        npy.order() == npyz::Order::C,
        "{}: Fortran-ordered arrays are not read; save it in C order",
        path.display()
    );
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    let dtype = match npy.dtype() {
        npyz::DType::Plain(t) => t.to_string(),
        other => {
            anyhow::bail!("{}: a structured or nested dtype ({other:?}); a plain numeric array is read", path.display())
        }
    };
    Ok((npy, shape, dtype))
}

#[cfg(not(target_arch = "wasm32"))]
fn read_f32(path: &std::path::Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let (npy, shape, dtype) = open_npy(path)?;
    ensure!(
        dtype == "<f4",
        "{}: dtype {dtype}, but float32 ('<f4') is read (convert with .astype(np.float32))",
        path.display()
    );
    Ok((shape, npy.into_vec::<f32>().with_context(|| format!("{}: truncated or unreadable data", path.display()))?))
}

#[cfg(not(target_arch = "wasm32"))]
fn read_labels(path: &std::path::Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let (npy, shape, dtype) = open_npy(path)?;
    let bad = |e| anyhow::anyhow!("{}: truncated or unreadable data ({e})", path.display());
    let as_f32 = |v: Vec<i64>| v.into_iter().map(|l| l as f32).collect::<Vec<f32>>();
    let labels = match dtype.as_str() {
        "<f4" => npy.into_vec::<f32>().map_err(bad)?,
        "<i8" => as_f32(npy.into_vec::<i64>().map_err(bad)?),
        "<i4" => as_f32(npy.into_vec::<i32>().map_err(bad)?.into_iter().map(i64::from).collect()),
        "|i1" => as_f32(npy.into_vec::<i8>().map_err(bad)?.into_iter().map(i64::from).collect()),
        "|u1" => as_f32(npy.into_vec::<u8>().map_err(bad)?.into_iter().map(i64::from).collect()),
        other => anyhow::bail!(
            "{}: class indices of dtype {other}; int64, int32, int8, uint8 or float32 are read",
            path.display()
        ),
    };
    Ok((shape, labels))
}
