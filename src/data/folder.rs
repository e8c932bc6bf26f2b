//! Image folders: `ROOT/train/<class>/*.{png,jpg,jpeg}` and `ROOT/test/<class>/…`, classes
//! sorted by name (CIFAR-10's JPEG tree sorts into CIFAR-10's label order) or given as a list.
//!
//! Images are decoded in parallel and stored as bytes in planar order (all of channel 0, then
//! channel 1, …), the layout of CIFAR-10's binary batches. Every image must have the size and
//! channel count of the first one. The decoded dataset is cached in one flat file, keyed by the
//! folder's listing (names, sizes, modification times), so the second load is a single read.

use super::{Dataset, Split};
use crate::message::Message;
use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The class folders of `root/train`, sorted by name.
pub fn class_names(root: &Path) -> Result<Vec<String>> {
    let train = root.join("train");
    let mut names: Vec<String> = std::fs::read_dir(&train)
        .with_context(|| format!("{}: cannot list the class folders", train.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("{}: no class folders (expected train/<class>/*.jpg or *.png)", train.display());
    }
    Ok(names)
}

/// Whether `root` looks like an image folder dataset.
pub fn is_image_folder(root: &Path) -> bool {
    root.join("train").is_dir() && root.join("test").is_dir()
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

/// Every image of one split, with its class index, in a fixed order (class, then file name).
fn list_split(root: &Path, split: &str, classes: &[String]) -> Result<Vec<(PathBuf, u8)>> {
    let mut files = Vec::new();
    for (c, name) in classes.iter().enumerate() {
        let dir = root.join(split).join(name);
        let mut mine: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("{}: missing class folder", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_image(p))
            .collect();
        if mine.is_empty() {
            bail!("{}: the class folder has no .png or .jpg images", dir.display());
        }
        mine.sort();
        files.extend(mine.into_iter().map(|p| (p, c as u8)));
    }
    Ok(files)
}

/// Components in a JPEG's frame header (1 gray, 3 YCbCr/RGB, 4 CMYK/YCCK), if it has one.
fn jpeg_components(bytes: &[u8]) -> Option<u8> {
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        let is_sof = (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            return bytes.get(i + 9).copied();
        }
        i += 2 + len;
    }
    None
}

/// One decoded image: (width, height, channels, planar bytes).
type Decoded = (u32, u32, usize, Vec<u8>);

fn decode(path: &Path) -> Result<Decoded> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if jpeg_components(&bytes) == Some(4) {
        bail!("{}: a CMYK JPEG; convert it to RGB (e.g. `convert in.jpg -colorspace sRGB out.jpg`)", path.display());
    }
    let img = image::load_from_memory(&bytes).map_err(|e| anyhow!("{}: cannot decode: {e}", path.display()))?;
    let (w, h) = (img.width(), img.height());
    let (channels, interleaved) = match img.color() {
        image::ColorType::L8 => (1, img.into_bytes()),
        image::ColorType::La8 => (1, img.to_luma8().into_raw()),
        image::ColorType::Rgb8 => (3, img.into_bytes()),
        image::ColorType::Rgba8 => (3, img.to_rgb8().into_raw()),
        other => bail!("{}: {other:?} pixels; use 8-bit grayscale or RGB images", path.display()),
    };
    let px = (w * h) as usize;
    let mut planar = vec![0u8; px * channels];
    for (i, v) in interleaved.iter().enumerate() {
        planar[(i % channels) * px + i / channels] = *v;
    }
    Ok((w, h, channels, planar))
}

fn decode_split(files: &[(PathBuf, u8)], shape: &mut Option<(u32, u32, usize, PathBuf)>) -> Result<Split> {
    let decoded: Vec<Result<Decoded>> = files.par_iter().map(|(p, _)| decode(p)).collect();
    let mut images = Vec::new();
    let mut labels = Vec::with_capacity(files.len());
    for ((path, label), d) in files.iter().zip(decoded) {
        let (w, h, c, px) = d?;
        match shape {
            None => *shape = Some((w, h, c, path.clone())),
            Some((w0, h0, c0, first)) => {
                if (w, h) != (*w0, *h0) {
                    bail!(
                        "{}: {w}×{h} pixels, but {} is {w0}×{h0}; every image must have one size",
                        path.display(),
                        first.display()
                    );
                }
                if c != *c0 {
                    let kind = |c: usize| if c == 1 { "grayscale" } else { "colour" };
                    bail!(
                        "{}: a {} image in a {} dataset (the first image, {}, is {}); convert it",
                        path.display(),
                        kind(c),
                        kind(*c0),
                        first.display(),
                        kind(*c0)
                    );
                }
            }
        }
        images.extend_from_slice(&px);
        labels.push(*label);
    }
    Ok(Split { images, labels, rows: files.len() })
}

/// A stable fingerprint of the listing: paths, sizes and modification times.
fn fingerprint(files: &[(PathBuf, u8)], classes: &[String]) -> u64 {
    // FNV-1a: stable across runs and platforms (unlike the std hasher).
    let mut h: u64 = 0xcbf29ce484222325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    };
    for c in classes {
        eat(c.as_bytes());
    }
    for (p, l) in files {
        eat(p.to_string_lossy().as_bytes());
        eat(&[*l]);
        if let Ok(m) = std::fs::metadata(p) {
            eat(&m.len().to_le_bytes());
            if let Ok(t) =
                m.modified().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).map_err(std::io::Error::other))
            {
                eat(&t.as_nanos().to_le_bytes());
            }
        }
    }
    h
}

/// Where decoded datasets are cached: `$DESCENT_CACHE`, else `$XDG_CACHE_HOME/descent`, else
/// `~/.cache/descent`, else the system's temporary folder.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DESCENT_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("descent");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache/descent");
    }
    std::env::temp_dir().join("descent-cache")
}

const CACHE_MAGIC: &[u8; 8] = b"DSCNTIF1";

fn write_cache(path: &Path, d: &Dataset) -> Result<()> {
    let mut out = Vec::with_capacity(48 + d.train.images.len() + d.test.images.len() + d.train.rows + d.test.rows);
    out.extend_from_slice(CACHE_MAGIC);
    for v in [d.row_len, d.classes, d.train.rows, d.test.rows] {
        out.extend_from_slice(&(v as u64).to_le_bytes());
    }
    for s in [&d.train, &d.test] {
        out.extend_from_slice(&s.images);
        out.extend_from_slice(&s.labels);
    }
    // Atomic, so a concurrent or interrupted run never leaves a torn cache.
    super::write_atomic(path, &out)
}

fn read_cache(path: &Path) -> Option<(usize, usize, Split, Split)> {
    let b = std::fs::read(path).ok()?;
    if b.len() < 40 || &b[..8] != CACHE_MAGIC {
        return None;
    }
    let num = |i: usize| u64::from_le_bytes(b[8 + 8 * i..16 + 8 * i].try_into().expect("8 bytes")) as usize;
    let (row_len, classes, tr, te) = (num(0), num(1), num(2), num(3));
    let need = 40usize.checked_add(row_len.checked_add(1)?.checked_mul(tr.checked_add(te)?)?)?;
    if b.len() != need {
        return None;
    }
    let mut at = 40;
    let mut take = |rows: usize| {
        let images = b[at..at + rows * row_len].to_vec();
        at += rows * row_len;
        let labels = b[at..at + rows].to_vec();
        at += rows;
        Split { images, labels, rows }
    };
    let train = take(tr);
    let test = take(te);
    if train.labels.iter().chain(&test.labels).any(|&l| l as usize >= classes) {
        return None;
    }
    Some((row_len, classes, train, test))
}

/// Load an image folder; `classes` fixes the class order (default: sorted folder names).
pub fn load(root: &Path, name: &str, classes: Option<Vec<String>>) -> Result<Dataset> {
    if !is_image_folder(root) {
        bail!("{}: expected train/<class>/ and test/<class>/ folders of .png or .jpg images", root.display());
    }
    let classes = match classes {
        Some(c) => c,
        None => class_names(root)?,
    };
    if classes.len() > 256 {
        bail!("{}: {} classes; at most 256 are supported", root.display(), classes.len());
    }
    let train_files = list_split(root, "train", &classes)?;
    let test_files = list_split(root, "test", &classes)?;
    let all: Vec<(PathBuf, u8)> = train_files.iter().chain(&test_files).cloned().collect();
    let key = fingerprint(&all, &classes);
    let cache = cache_dir().join(format!("{name}-{key:016x}.bin"));
    let describe = |how: &str, tr: usize, te: usize| {
        Message::from(format!(
            "{} (image folder, {} classes: {tr} train / {te} test images; {how})",
            root.display(),
            classes.len()
        ))
    };
    if let Some((row_len, n, train, test)) = read_cache(&cache) {
        if n == classes.len() && train.rows == train_files.len() && test.rows == test_files.len() {
            let source = describe(&format!("decoded copy from {}", cache.display()), train.rows, test.rows);
            return Ok(Dataset { name: name.into(), source, row_len, classes: n, train, test });
        }
    }
    let mut shape = None;
    let train = decode_split(&train_files, &mut shape)?;
    let test = decode_split(&test_files, &mut shape)?;
    let (w, h, c, _) = shape.expect("at least one image");
    let row_len = (w * h) as usize * c;
    let mut d = Dataset { name: name.into(), source: Message::default(), row_len, classes: classes.len(), train, test };
    let how = match write_cache(&cache, &d) {
        Ok(()) => format!("decoded, cached in {}", cache.display()),
        Err(e) => format!("decoded; not cached: {e}"),
    };
    d.source = describe(&how, d.train.rows, d.test.rows);
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_frame_header_components() {
        // SOI, APP0 of length 4, SOF0 with 4 components.
        let b = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0, 0, 0xFF, 0xC0, 0x00, 0x0B, 8, 0, 1, 0, 1, 4];
        assert_eq!(jpeg_components(&b), Some(4));
        assert_eq!(jpeg_components(&[0xFF, 0xD8, 0x00]), None);
    }
}
