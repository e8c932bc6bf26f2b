//! The layering ARCHITECTURE.md describes, checked on the source: the op set (`backend`,
//! `tensor`) imports nothing above it, no engine module imports the application, inside
//! `backend/` the two backends never import each other and the shared vocabulary imports
//! neither backend nor the `Device` facade (no module circle), and the f64 references see only
//! the op vocabulary, the quantization facts and the optimizer config.

use std::path::Path;

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

/// Fails listing every reference from `files` to a top-level module not in `allowed`.
fn check(files: &[std::path::PathBuf], allowed: &[&str], layer: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bad = Vec::new();
    for f in files {
        for (line, path) in module_refs(&src, f) {
            let top = path.split("::").next().unwrap_or_default();
            if !allowed.contains(&top) {
                bad.push(format!("{}:{line} uses crate::{path}", f.display()));
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
    check(&files, &["backend", "tensor", "message", "said"], "the op set (backend, tensor)");
}

/// Messages sit below everything that raises them: `message.rs` imports nothing of the crate.
#[test]
fn messages_import_nothing() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    check(&[src.join("message.rs")], &["message", "said"], "message.rs");
}

#[test]
fn the_engine_never_imports_the_application() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let engine: Vec<_> = rust_files(&src)
        .into_iter()
        .filter(|p| !p.starts_with(src.join("app")) && !p.starts_with(src.join("cli")) && !p.ends_with("main.rs"))
        .collect();
    let allowed = [
        "autograd",
        "backend",
        "data",
        "message",
        "nn",
        "optim",
        "reference",
        "rng",
        "said",
        "state_dict",
        "tensor",
        "torch_rng",
    ];
    check(&engine, &allowed, "the engine");
}

/// The module path of a source file: `src/backend/gpu/chunk.rs` is `backend::gpu::chunk`,
/// `src/backend/gpu/mod.rs` is `backend::gpu`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut m: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
    if m.last().is_some_and(|l| l == "mod" || l == "lib") {
        m.pop();
    }
    m
}

/// Every module path a file names outside its `#[cfg(test)]` section, made absolute:
/// `crate::a::b`, `super::…` and `self::…` (a `super::{a, b}` group gives both), as `a::b`.
fn module_refs(src: &Path, file: &Path) -> Vec<(usize, String)> {
    let here = module_of(src, file);
    let text = std::fs::read_to_string(file).unwrap();
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim_start();
        if l.starts_with("#[cfg(") && l.contains("test") {
            break;
        }
        if l.starts_with("//") {
            continue;
        }
        for (at, _) in
            line.match_indices("crate::").chain(line.match_indices("super::")).chain(line.match_indices("self::"))
        {
            if line[..at].ends_with('$') || line[..at].ends_with("super::") {
                continue;
            }
            let mut base = here.clone();
            let mut rest = &line[at..];
            if let Some(r) = rest.strip_prefix("crate::") {
                base.clear();
                rest = r;
            } else if let Some(r) = rest.strip_prefix("self::") {
                rest = r;
            } else {
                while let Some(r) = rest.strip_prefix("super::") {
                    base.pop();
                    rest = r;
                }
            }
            // The path's lower-case segments, then a `{…}` group's items (each `a` or `a::…`).
            let mut path = Vec::new();
            let mut r = rest;
            loop {
                let name = ident(r);
                if name.is_empty() || !r[name.len()..].starts_with("::") {
                    if !name.is_empty() {
                        path.push(name);
                    }
                    break;
                }
                r = &r[name.len() + 2..];
                path.push(name);
            }
            let heads: Vec<String> = match r.strip_prefix('{') {
                Some(group) => group
                    .split([',', '}'])
                    .map(|g| ident(g.trim()))
                    .filter(|g| !g.is_empty())
                    .map(|g| if g == "self" { path.join("::") } else { [path.join("::"), g].join("::") })
                    .collect(),
                None => vec![path.join("::")],
            };
            for h in heads.into_iter().filter(|h| !h.is_empty()) {
                let h = h.trim_start_matches(':').to_string();
                let mut full = base.clone();
                full.push(h);
                out.push((i + 1, full.join("::")));
            }
        }
    }
    out
}

/// Fails listing every reference from `files` to a module under one of `forbidden`.
fn forbid(src: &Path, files: &[std::path::PathBuf], forbidden: &[&str], rule: &str) {
    let mut bad = Vec::new();
    for f in files {
        for (line, path) in module_refs(src, f) {
            if forbidden.iter().any(|x| path == *x || path.starts_with(&format!("{x}::"))) {
                bad.push(format!("{}:{line} uses {path}", f.display()));
            }
        }
    }
    assert!(bad.is_empty(), "{rule}:\n{}", bad.join("\n"));
}

#[test]
fn the_backends_never_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let gpu = rust_files(&src.join("backend/gpu"));
    let cpu = rust_files(&src.join("backend/cpu"));
    assert!(gpu.len() > 5 && cpu.len() > 2, "the backend folders moved: update this test");
    forbid(&src, &gpu, &["backend::cpu", "backend::device"], "the WGSL backend imports the CPU backend or the facade");
    forbid(&src, &cpu, &["backend::gpu", "backend::device"], "the CPU backend imports the WGSL backend or the facade");
}

#[test]
fn the_shared_vocabulary_imports_neither_backend() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let shared: Vec<_> = [
        "ops",
        "op_set",
        "pending",
        "host",
        "contract",
        "quant",
        "optim_kernel",
        "optim_params",
        "factored",
        "owner",
        "grouped_step",
    ]
    .iter()
    .map(|m| src.join("backend").join(format!("{m}.rs")))
    .collect();
    assert!(shared.iter().all(|f| f.exists()), "a shared backend file moved: update this test");
    forbid(
        &src,
        &shared,
        &["backend::cpu", "backend::gpu", "backend::device"],
        "the op vocabulary imports a backend or the Device facade (a module circle)",
    );
}

#[test]
fn the_reference_sees_only_the_op_vocabulary_and_the_config() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let reference = [src.join("optim/reference.rs"), src.join("reference.rs")];
    assert!(reference.iter().all(|f| f.exists()), "a reference file moved: update this test");
    let mut bad = Vec::new();
    for f in &reference {
        for (line, path) in module_refs(&src, f) {
            // The optimizer reference reads a config and names its slots; nothing else of `optim`.
            // `reference` is the other reference file (the tolerances, stated once).
            let allowed = ["backend::ops", "backend::quant", "rng", "optim::OptimConfig", "optim::Slot", "reference"];
            if !allowed.iter().any(|a| path == *a || path.starts_with(&format!("{a}::"))) {
                bad.push(format!("{}:{line} uses {path}", f.display()));
            }
        }
    }
    assert!(bad.is_empty(), "the f64 reference imports engine code it is meant to check:\n{}", bad.join("\n"));
}
