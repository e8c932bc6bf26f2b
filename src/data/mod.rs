//! Datasets held in memory as bytes (u8 pixels, u8 labels), as the devices keep them too:
//! a batch is gathered and scaled to [0, 1] by a kernel.

pub mod cifar;
pub mod folder;
pub mod idx;
pub mod tabular;

use crate::message::{Message, Setting};
use crate::said;
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One split: `rows` images of `row_len` bytes and their labels.
#[derive(Clone, Debug)]
pub struct Split {
    /// `rows × row_len` bytes, row-major (pixels as stored: 0–255).
    pub images: Vec<u8>,
    /// One class index per row.
    pub labels: Vec<u8>,
    /// Images in the split.
    pub rows: usize,
}

/// A classification dataset held as bytes, ready to upload once and gather on the device.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// What [`load_dataset`] was asked for (`fashion-mnist`, `cifar10`, …).
    pub name: String,
    /// Where the data came from, for the user.
    pub source: Message,
    /// Bytes per image (784 for 28×28 grayscale, 3072 for 32×32 colour).
    pub row_len: usize,
    /// Number of classes.
    pub classes: usize,
    /// The training images.
    pub train: Split,
    /// The test images.
    pub test: Split,
}

/// The names [`load_dataset`] accepts.
pub const DATASET_NAMES: [&str; 4] = ["fashion-mnist", "mnist", "cifar10", "folder:PATH"];

/// CIFAR-10's classes in label order (also their sorted folder names in the JPEG tree).
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// Check a dataset name before anything is loaded.
pub fn check_dataset_name(name: &str) -> Result<()> {
    match name.strip_prefix("folder:") {
        Some("") => bail!(said![Setting::Dataset, " folder:PATH needs the folder, e.g. folder:/data/pets"]),
        Some(_) => Ok(()),
        None if ["fashion-mnist", "mnist", "cifar10"].contains(&name) => Ok(()),
        None if name.starts_with("npy:") => bail!(said![
            Setting::Dataset,
            " npy:DIR is f32 data, which only `descent train` trains on (app::tabular); use an image dataset here"
        ]),
        None => bail!(
            "unknown dataset '{name}': use one of {} (or, for `descent train`, npy:DIR)",
            DATASET_NAMES.join(", ")
        ),
    }
}

/// Load a dataset by name: `fashion-mnist`, `mnist`, `cifar10` or `folder:PATH`.
pub fn load_dataset(name: &str, data_dir: Option<&Path>) -> Result<Dataset> {
    check_dataset_name(name)?;
    if let Some(root) = name.strip_prefix("folder:") {
        return folder::load(Path::new(root), "folder", None);
    }
    match name {
        "cifar10" => load_cifar10(data_dir),
        _ => load_idx_dataset(name, data_dir),
    }
}

/// CIFAR-10 from `data_dir` (or `$DESCENT_DATA/cifar10`, `$DESCENT_DATA`), as binary batches or
/// as an image-folder tree, whichever is there.
pub fn load_cifar10(data_dir: Option<&Path>) -> Result<Dataset> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(d) = data_dir {
        if !d.is_dir() {
            bail!(said![Setting::DataDir, format!(" {}: no such directory", d.display())]);
        }
        candidates.push(d.to_path_buf());
    } else if let Some(env) = std::env::var_os("DESCENT_DATA") {
        let env = PathBuf::from(env);
        candidates.push(env.join("cifar10"));
        candidates.push(env);
    }
    for d in &candidates {
        if cifar::binary_dir(d).is_some() {
            return cifar::load(d);
        }
        if folder::is_image_folder(d) {
            let classes = CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect();
            let ds = folder::load(d, "cifar10", Some(classes))?;
            if ds.row_len != cifar::ROW_LEN {
                bail!(
                    "{}: CIFAR-10 images are 32×32 RGB ({} bytes), these have {}",
                    d.display(),
                    cifar::ROW_LEN,
                    ds.row_len
                );
            }
            return Ok(ds);
        }
    }
    let looked = if candidates.is_empty() {
        said!["no ", Setting::DataDir, " or DESCENT_DATA given"]
    } else {
        said![format!(
            "looked in {}",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )]
    };
    bail!(said!["no CIFAR-10 data found ("].then(looked).then(said![
        "): pass ",
        Setting::DataDir,
        " DIR holding either the binary batches \
         (cifar-10-batches-bin/data_batch_1.bin … test_batch.bin, from the CIFAR-10 download page) or an image \
         tree train/<class>/*.jpg and test/<class>/*.jpg (e.g. extracted from cifar10-jpg.tar.gz)"
    ]))
}

/// Where the Debian package `dataset-fashion-mnist` installs the files.
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// The small real subset of Fashion-MNIST kept in the repository.
pub fn embedded_subset_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/fashion-mnist-subset")
}

/// The IDX file `stem` in `dir`, as `.gz` or plain.
fn idx_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()].into_iter().map(|f| dir.join(f)).find(|p| p.is_file())
}

fn has_idx(dir: &Path) -> bool {
    IDX_FILES.iter().all(|s| idx_file(dir, s).is_some())
}

/// Load an IDX dataset (Fashion-MNIST or MNIST) from the first place that has it: `data_dir`,
/// then `$DESCENT_DATA`, then (Fashion-MNIST) the Debian package's folder, then the embedded
/// subset.
pub fn load_idx_dataset(name: &str, data_dir: Option<&Path>) -> Result<Dataset> {
    if !["fashion-mnist", "mnist"].contains(&name) {
        bail!("unknown dataset '{name}': use one of {}", DATASET_NAMES.join(", "));
    }
    let dir = if let Some(d) = data_dir {
        if !d.is_dir() {
            bail!(said![Setting::DataDir, format!(" {}: no such directory", d.display())]);
        }
        if !has_idx(d) {
            bail!(said![
                Setting::DataDir,
                format!(
                    " {}: expected train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each may end in .gz)",
                    d.display()
                )
            ]);
        }
        d.to_path_buf()
    } else {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(env) = std::env::var_os("DESCENT_DATA") {
            let env = PathBuf::from(env);
            candidates.push(env.join(name));
            candidates.push(env);
        }
        if name == "fashion-mnist" {
            candidates.push(PathBuf::from(DEBIAN_FASHION_MNIST));
            candidates.push(embedded_subset_dir());
        }
        match candidates.into_iter().find(|d| has_idx(d)) {
            Some(d) => d,
            None => bail!(said![
                format!("no {name} data found: pass "),
                Setting::DataDir,
                " DIR with the four IDX files, set DESCENT_DATA, or (Fashion-MNIST) run `apt-get install dataset-fashion-mnist`"
            ]),
        }
    };
    let read = |stem: &str| -> Result<(Vec<u8>, String)> {
        let path = idx_file(&dir, stem).expect("checked by has_idx");
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok((bytes, path.display().to_string()))
    };
    let files = [read(IDX_FILES[0])?, read(IDX_FILES[1])?, read(IDX_FILES[2])?, read(IDX_FILES[3])?];
    let mut data = idx_dataset_from_bytes(name, &dir.display().to_string(), files)?;
    if dir == embedded_subset_dir() {
        data.source = said![
            format!(
                "{} (the embedded subset: {} train / {} test images; for the full set run `apt-get install dataset-fashion-mnist` or pass ",
                dir.display(),
                data.train.rows,
                data.test.rows
            ),
            Setting::DataDir,
            ")"
        ];
    }
    Ok(data)
}

/// The four IDX files of a split dataset, in the order [`idx_dataset_from_bytes`] takes them.
pub const IDX_FILES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// An IDX dataset (10 classes) from the bytes of its four files in [`IDX_FILES`] order, each
/// with the name errors give it (plain or gzip-compressed: a web page's downloads, say).
/// `origin` says where they came from.
pub fn idx_dataset_from_bytes(name: &str, origin: &str, files: [(Vec<u8>, String); 4]) -> Result<Dataset> {
    let [ti, tl, vi, vl] = files.map(|(bytes, what)| idx::gunzip_if_gz(bytes, &what).map(|b| (b, what)));
    let ((ti, wti), (tl, wtl), (vi, wvi), (vl, wvl)) = (ti?, tl?, vi?, vl?);
    let (ti, tl, tn, row_len) = idx::split_from_bytes(ti, tl, 10, &wti, &wtl)?;
    let (vi, vl, vn, vrow) = idx::split_from_bytes(vi, vl, 10, &wvi, &wvl)?;
    if vrow != row_len {
        bail!("{origin}: train images have {row_len} pixels, test images {vrow}");
    }
    Ok(Dataset {
        name: name.to_string(),
        source: format!("{origin} ({tn} train / {vn} test images)").into(),
        row_len,
        classes: 10,
        train: Split { images: ti, labels: tl, rows: tn },
        test: Split { images: vi, labels: vl, rows: vn },
    })
}

/// Replace `path` with `bytes` so that a crash leaves either the old or the new contents.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create the folder {}", dir.display()))?;
    let name = path.file_name().with_context(|| format!("{}: not a file name", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
    let written = (|| {
        {
            let mut f = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
            f.write_all(bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
            f.sync_all().with_context(|| format!("cannot sync {}", tmp.display()))?;
        }
        std::fs::rename(&tmp, path).with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
    })();
    if let Err(e) = written {
        // A full disk or a failed rename leaves the old file as it was and no partial copy.
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("{} was not written (any previous version is unchanged)", path.display())));
    }
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
