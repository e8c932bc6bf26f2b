//! CIFAR-10's canonical binary batches (`data_batch_1..5.bin`, `test_batch.bin`): records of
//! one label byte and 3,072 pixel bytes (the red plane, then green, then blue, each 32×32
//! row-major). Rows are kept in that planar layout; the image-folder loader produces the same.

use super::{Dataset, Split};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Bytes per image: 3 colour planes of 32×32.
pub const ROW_LEN: usize = 3 * 32 * 32;
const RECORD: usize = 1 + ROW_LEN;
/// The training batches of the binary release, in order.
pub const TRAIN_FILES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
/// The test batch of the binary release.
pub const TEST_FILE: &str = "test_batch.bin";

/// The folder holding the binary batches: `dir` itself or `dir/cifar-10-batches-bin`.
pub fn binary_dir(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join("cifar-10-batches-bin")]
        .into_iter()
        .find(|d| TRAIN_FILES.iter().chain([&TEST_FILE]).all(|f| d.join(f).is_file()))
}

/// Parse one batch file's bytes into images and labels.
pub fn parse_batch(bytes: &[u8], what: &str) -> Result<Split> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        bail!(
            "{what}: {} bytes is not a whole number of CIFAR-10 records ({RECORD} bytes: 1 label + 3,072 pixels); the file is truncated or not a CIFAR-10 binary batch",
            bytes.len()
        );
    }
    let rows = bytes.len() / RECORD;
    let mut images = Vec::with_capacity(rows * ROW_LEN);
    let mut labels = Vec::with_capacity(rows);
    for (r, rec) in bytes.chunks_exact(RECORD).enumerate() {
        if rec[0] >= 10 {
            bail!("{what}: record {r} has label {}, CIFAR-10 labels are 0 to 9", rec[0]);
        }
        labels.push(rec[0]);
        images.extend_from_slice(&rec[1..]);
    }
    Ok(Split { images, labels, rows })
}

fn read_batch(path: &Path) -> Result<Split> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_batch(&bytes, &path.display().to_string())
}

/// Load the five training batches and the test batch from `dir` (see [`binary_dir`]).
pub fn load(dir: &Path) -> Result<Dataset> {
    let Some(d) = binary_dir(dir) else {
        bail!(
            "{}: expected CIFAR-10's binary batches ({}, {TEST_FILE}) here or in cifar-10-batches-bin/",
            dir.display(),
            TRAIN_FILES.join(", ")
        );
    };
    let mut train = Split { images: Vec::new(), labels: Vec::new(), rows: 0 };
    for f in TRAIN_FILES {
        let s = read_batch(&d.join(f))?;
        train.images.extend(s.images);
        train.labels.extend(s.labels);
        train.rows += s.rows;
    }
    let test = read_batch(&d.join(TEST_FILE))?;
    Ok(Dataset {
        name: "cifar10".into(),
        source: format!("{} (CIFAR-10 binary batches: {} train / {} test images)", d.display(), train.rows, test.rows)
            .into(),
        row_len: ROW_LEN,
        classes: 10,
        train,
        test,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_into_planes_and_labels() {
        let mut bytes = vec![3u8];
        bytes.extend((0..ROW_LEN).map(|i| (i % 251) as u8));
        bytes.push(9);
        bytes.extend(vec![7u8; ROW_LEN]);
        let s = parse_batch(&bytes, "t").unwrap();
        assert_eq!((s.rows, s.labels.clone()), (2, vec![3, 9]));
        assert_eq!(s.images[1024], (1024 % 251) as u8);
        assert_eq!(s.images[ROW_LEN], 7);
    }

    #[test]
    fn bad_batches_are_errors() {
        let err = |b: &[u8]| format!("{:#}", parse_batch(b, "f.bin").unwrap_err());
        assert!(err(&vec![0u8; RECORD - 1]).contains("not a whole number"));
        assert!(err(&[]).contains("not a whole number"));
        let mut b = vec![0u8; RECORD];
        b[0] = 10;
        assert!(err(&b).contains("label 10"));
    }
}
