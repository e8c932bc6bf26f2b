//! Mutation fuzzing of every parser that reads user files: IDX, CIFAR-10 binary batches,
//! safetensors checkpoints, replay JSON, and images in an image folder. Each starts from the
//! seed inputs in `tests/fuzz-corpus/` (and small generated images), applies thousands of
//! random mutations (bit flips, byte changes, truncation, extension, splices of other seeds) and
//! requires an `Ok` or an `Err`, never a panic. The seed is fixed so failures reproduce; set
//! `DESCENT_FUZZ_ITERS` to run longer.

use descent::data::{cifar, folder, idx};
use descent::rng::Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus").join(name)).unwrap()
}

fn iters() -> usize {
    std::env::var("DESCENT_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(3000)
}

/// One random mutation of `seed` (occasionally spliced with `other`).
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    let edits = 1 + rng.below(4);
    for _ in 0..edits {
        match rng.below(7) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = [0u8, 0xff, 0x7f, 0x80, b'"', b'{', b'-', b'9'][rng.below(8)];
            }
            2 => b.truncate(rng.below(b.len() + 1)),
            3 => {
                let n = rng.below(16);
                for _ in 0..n {
                    b.push(rng.below(256) as u8);
                }
            }
            4 if !b.is_empty() => {
                let i = rng.below(b.len());
                b.remove(i);
            }
            5 if !other.is_empty() => {
                let at = rng.below(b.len() + 1);
                let from = rng.below(other.len());
                let len = rng.below(other.len() - from + 1).min(64);
                b.splice(at..at, other[from..from + len].iter().copied());
            }
            _ if b.len() >= 8 => {
                // Overwrite a 4-byte field with an extreme value (sizes and counts live there).
                let i = rng.below(b.len() - 3);
                let v: u32 = [0, 1, u32::MAX, 0x7fff_ffff, 3072, 1 << 20][rng.below(6)];
                b[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            _ => {}
        }
    }
    b
}

/// Run `parse` on mutations of each seed; any panic fails the test with the input's length.
fn fuzz(name: &str, seeds: &[Vec<u8>], mut parse: impl FnMut(&[u8])) {
    let mut rng = Rng::new(0x5eed ^ name.len() as u64);
    for i in 0..iters() {
        let seed = &seeds[i % seeds.len()];
        let other = &seeds[(i + 1) % seeds.len()];
        let input = mutate(&mut rng, seed, other);
        let r = catch_unwind(AssertUnwindSafe(|| parse(&input)));
        assert!(
            r.is_ok(),
            "{name}: a parser panicked on mutation {i} ({} bytes): {:?}",
            input.len(),
            &input[..input.len().min(64)]
        );
    }
}

#[test]
fn idx_parser_never_panics() {
    let seeds = vec![corpus("images.idx"), corpus("labels.idx")];
    fuzz("idx", &seeds, |b| {
        let _ = idx::parse(b, 3, "fuzz");
        let _ = idx::parse(b, 1, "fuzz");
    });
}

#[test]
fn cifar_parser_never_panics() {
    fuzz("cifar", &[corpus("cifar.bin")], |b| {
        let _ = cifar::parse_batch(b, "fuzz");
    });
}

#[test]
fn safetensors_parser_never_panics() {
    fuzz("safetensors", &[corpus("model.safetensors")], |b| {
        let _ = descent::app::checkpoint::decode(b, "fuzz");
    });
}

#[test]
fn replay_parser_never_panics() {
    let seeds = vec![corpus("replay-grads.json"), corpus("replay-quadratic.json")];
    fuzz("replay", &seeds, |b| {
        if let Ok(text) = std::str::from_utf8(b) {
            let _ = descent::app::replay::ReplaySpec::parse(text);
        }
    });
}

#[test]
fn image_folder_loader_never_panics() {
    let mut png = Vec::new();
    let img = image::RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 30, y as u8 * 30, 128]));
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let mut jpg = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut jpg), image::ImageFormat::Jpeg).unwrap();
    let root = std::env::temp_dir().join(format!("descent-fuzz-folder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for split in ["train", "test"] {
        std::fs::create_dir_all(root.join(split).join("a")).unwrap();
        std::fs::write(root.join(split).join("a/ok.png"), &png).unwrap();
    }
    std::env::set_var("DESCENT_CACHE", root.join("cache"));
    let seeds = [png, jpg];
    let mut k = 0;
    // Decoding goes through the loader (file I/O and a cache write per call): fewer rounds.
    let rounds = (iters() / 10).max(100);
    let mut rng = Rng::new(99);
    for i in 0..rounds {
        let input = mutate(&mut rng, &seeds[i % 2], &seeds[(i + 1) % 2]);
        let ext = if i % 2 == 0 { "png" } else { "jpg" };
        let path = root.join("train/a").join(format!("m.{ext}"));
        let _ = std::fs::remove_file(root.join("train/a/m.png"));
        let _ = std::fs::remove_file(root.join("train/a/m.jpg"));
        std::fs::write(&path, &input).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| folder::load(&root, "fuzz", None).map(|d| d.train.rows)));
        assert!(r.is_ok(), "image loader panicked on mutation {i} ({} bytes)", input.len());
        if let Ok(Ok(_)) = r {
            k += 1;
        }
    }
    assert!(k > 0, "no mutated image decoded at all: the mutations are too destructive to test anything");
    let _ = std::fs::remove_dir_all(&root);
}
