//! The layering ARCHITECTURE.md describes, checked on the source: the op set (`backend`,
//! `tensor`) imports nothing above it, and no engine module imports the application.

use std::path::Path;

/// Every `crate::NAME` a file refers to outside its `#[cfg(test)]` section.
fn crate_refs(path: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim_start();
        if l.starts_with("#[cfg(") && l.contains("test") {
            break;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let name: String = rest[at + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            out.push((i + 1, name));
            rest = &rest[at + 7..];
        }
    }
    out
}

fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            files.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            files.push(p);
        }
    }
    files
}

fn check(files: &[std::path::PathBuf], allowed: &[&str], layer: &str) {
    let mut bad = Vec::new();
    for f in files {
        for (line, name) in crate_refs(f) {
            if !allowed.contains(&name.as_str()) {
                bad.push(format!("{}:{line} uses crate::{name}", f.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{layer} imports from above it:\n{}", bad.join("\n"));
}

#[test]
fn the_op_set_imports_nothing_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = rust_files(&src.join("backend"));
    files.push(src.join("tensor.rs"));
    check(&files, &["backend", "tensor"], "the op set (backend, tensor)");
}

#[test]
fn the_engine_never_imports_the_application() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let engine: Vec<_> = rust_files(&src)
        .into_iter()
        .filter(|p| !p.starts_with(src.join("app")) && !p.starts_with(src.join("cli")) && !p.ends_with("main.rs"))
        .collect();
    let allowed = ["autograd", "backend", "data", "nn", "optim", "reference", "rng", "tensor", "torch_rng"];
    check(&engine, &allowed, "the engine");
}
