//! IDX files (MNIST, Fashion-MNIST), plain or gzip-compressed, validated field by field.

use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// The bytes of a file, gunzipped when it starts with the gzip magic.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    gunzip_if_gz(raw, &path.display().to_string())
}

/// `raw`, gunzipped when it starts with the gzip magic (a file's bytes, or a page's download).
pub fn gunzip_if_gz(raw: Vec<u8>, what: &str) -> Result<Vec<u8>> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .with_context(|| format!("{what}: corrupt or truncated gzip data"))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parse an IDX file of unsigned bytes with `ndims` dimensions: (dimensions, data).
pub fn parse(bytes: &[u8], ndims: u8, what: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    if bytes.len() < 4 {
        bail!("{what}: file too short for an IDX header ({} bytes)", bytes.len());
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        bail!(
            "{what}: not an IDX file (magic number {:02x}{:02x}{:02x}{:02x})",
            bytes[0],
            bytes[1],
            bytes[2],
            bytes[3]
        );
    }
    if bytes[2] != 0x08 {
        bail!("{what}: IDX element type 0x{:02x} is not unsigned bytes (0x08)", bytes[2]);
    }
    if bytes[3] != ndims {
        bail!("{what}: expected {ndims} dimensions, the header says {}", bytes[3]);
    }
    let header = 4 + 4 * ndims as usize;
    if bytes.len() < header {
        bail!("{what}: truncated header");
    }
    let dims: Vec<usize> = (0..ndims as usize)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let expected = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).context("dimensions overflow")?;
    let data = &bytes[header..];
    if data.len() != expected {
        bail!(
            "{what}: header says {dims:?} = {expected} bytes of data, the file has {} (truncated or corrupt)",
            data.len()
        );
    }
    Ok((dims, data.to_vec()))
}

/// Images ([n, rows, cols]) and labels of one split, checked against each other.
pub fn load_split(images: &Path, labels: &Path, classes: usize) -> Result<(Vec<u8>, Vec<u8>, usize, usize)> {
    let (what_i, what_l) = (images.display().to_string(), labels.display().to_string());
    split_from_bytes(read_maybe_gz(images)?, read_maybe_gz(labels)?, classes, &what_i, &what_l)
}

/// [`load_split`] from the files' (gunzipped) bytes, named `what_images` and `what_labels` in
/// errors: (images, labels, rows, bytes per image).
pub fn split_from_bytes(
    images: Vec<u8>,
    labels: Vec<u8>,
    classes: usize,
    what_images: &str,
    what_labels: &str,
) -> Result<(Vec<u8>, Vec<u8>, usize, usize)> {
    let (idims, idata) = parse(&images, 3, what_images)?;
    let (ldims, ldata) = parse(&labels, 1, what_labels)?;
    if idims[0] != ldims[0] {
        bail!("{what_images} holds {} images but {what_labels} holds {} labels", idims[0], ldims[0]);
    }
    if let Some(pos) = ldata.iter().position(|&l| l as usize >= classes) {
        bail!("{what_labels}: label {} at index {pos} is not below {classes}", ldata[pos]);
    }
    Ok((idata, ldata, idims[0], idims[1] * idims[2]))
}

/// Write an IDX file of unsigned bytes (used to make the embedded subset and test files).
pub fn encode(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let f = encode(&[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8]);
        let (d, v) = parse(&f, 3, "t").unwrap();
        assert_eq!(d, vec![2, 2, 2]);
        assert_eq!(v.len(), 8);
        assert!(parse(&f[..f.len() - 1], 3, "t").unwrap_err().to_string().contains("truncated"));
        assert!(parse(&f, 1, "t").unwrap_err().to_string().contains("dimensions"));
        let mut bad = f.clone();
        bad[0] = 7;
        assert!(parse(&bad, 3, "t").unwrap_err().to_string().contains("magic"));
        assert!(parse(&[0, 0], 3, "t").is_err());
    }
}
