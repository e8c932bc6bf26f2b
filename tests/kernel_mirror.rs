//! The optimizer contract between Rust and WGSL: every kernel's `#[repr(C)]` parameter struct
//! (`backend::optim_kernel`) and the WGSL struct of the same name must declare the same fields
//! in the same order with the same types, offsets and size; every kernel has its WGSL entry
//! point; every optimizer name maps to a kernel. Parsed with naga, the WGSL front end wgpu uses.

use descent::backend::optim_kernel::{KernelInfo, OptimStep};
use descent::optim::{OptimConfig, OPTIMIZER_NAMES};

/// The WGSL module a kernel is built from, as the GPU backend assembles it.
fn kernel_source(entry: &str) -> String {
    let read = |f: &str| {
        let path = format!("{}/shaders/{f}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    format!("{}\n{}{}", read("common.wgsl"), read("optim.wgsl"), read(&format!("optim_{entry}.wgsl")))
}

/// A struct member as (name, byte offset, type name).
type Member = (String, u32, String);

/// A struct's members, and its size, from a parsed WGSL module.
fn wgsl_struct(module: &naga::Module, name: &str) -> Option<(Vec<Member>, u32)> {
    let (_, ty) = module.types.iter().find(|(_, t)| t.name.as_deref() == Some(name))?;
    let naga::TypeInner::Struct { members, span } = &ty.inner else { return None };
    let fields = members
        .iter()
        .map(|m| {
            let t = &module.types[m.ty];
            let ty = match (&t.inner, &t.name) {
                (naga::TypeInner::Scalar(s), _) => match (s.kind, s.width) {
                    (naga::ScalarKind::Float, 4) => "f32".to_string(),
                    (naga::ScalarKind::Uint, 4) => "u32".to_string(),
                    other => format!("{other:?}"),
                },
                (_, Some(n)) => n.clone(),
                (other, None) => format!("{other:?}"),
            };
            (m.name.clone().unwrap_or_default(), m.offset, ty)
        })
        .collect();
    Some((fields, *span))
}

/// Every way the WGSL side of `k` differs from the Rust side (empty when they mirror).
fn differences(k: &KernelInfo, source: &str) -> Vec<String> {
    let module = match naga::front::wgsl::parse_str(source) {
        Ok(m) => m,
        Err(e) => return vec![format!("optim_{}.wgsl does not parse: {}", k.entry, e.emit_to_string(source))],
    };
    let mut out = Vec::new();
    if !module.entry_points.iter().any(|e| e.name == k.entry && e.stage == naga::ShaderStage::Compute) {
        out.push(format!("no compute entry point '{}'", k.entry));
    }
    let Some((fields, span)) = wgsl_struct(&module, k.params) else {
        out.push(format!("no WGSL struct '{}'", k.params));
        return out;
    };
    let rust: Vec<Member> = k.fields.iter().map(|f| (f.name.to_string(), f.offset as u32, f.ty.to_string())).collect();
    if fields != rust {
        out.push(format!("{}: WGSL fields {fields:?}, Rust fields {rust:?}", k.params));
    }
    if span as usize != k.size {
        out.push(format!("{}: WGSL size {span}, Rust size {}", k.params, k.size));
    }
    // The uniform: the 32-byte arena header the backend writes, then the parameter struct.
    let uniform = k.params.replace("Params", "Uniform");
    match wgsl_struct(&module, &uniform) {
        Some((u, _)) => {
            let want = vec![("arena".to_string(), 0, "Arena".to_string()), ("h".to_string(), 32, k.params.to_string())];
            if u != want {
                out.push(format!("{uniform}: {u:?}, expected {want:?}"));
            }
        }
        None => out.push(format!("no WGSL struct '{uniform}'")),
    }
    out
}

#[test]
fn every_kernel_struct_mirrors_its_wgsl_twin() {
    for step in OptimStep::ALL {
        let k = step.kernel();
        let diffs = differences(&k, &kernel_source(k.entry));
        assert!(diffs.is_empty(), "{}: {}", k.entry, diffs.join("; "));
        assert!(k.bindings.len() <= 3, "{}: the kernels bind three state slots at most", k.entry);
    }
}

#[test]
fn the_mirror_check_catches_a_field_added_on_either_side() {
    let step = OptimStep::ALL[3];
    let k = step.kernel();
    assert_eq!(k.params, "AdamParams");
    let source = kernel_source(k.entry);
    // A field added in WGSL only.
    let wgsl_extra = source.replace("    amsgrad: u32,\n", "    amsgrad: u32,\n    maximize: u32,\n");
    assert_ne!(wgsl_extra, source);
    assert!(!differences(&k, &wgsl_extra).is_empty());
    // A field added in Rust only (the same struct with one more entry in its table).
    let mut fields = k.fields.to_vec();
    fields.push(descent::backend::optim_kernel::Field { name: "maximize", offset: k.size, ty: "u32" });
    let rust_extra = KernelInfo { fields: Box::leak(fields.into_boxed_slice()), size: k.size + 4, ..k };
    assert!(!differences(&rust_extra, &source).is_empty());
    // Two fields swapped in WGSL.
    let swapped = source.replace("    beta1: f32,\n    beta2: f32,\n", "    beta2: f32,\n    beta1: f32,\n");
    assert_ne!(swapped, source);
    assert!(!differences(&k, &swapped).is_empty());
    // A type changed in WGSL.
    let retyped = source.replace("    decoupled: u32,\n", "    decoupled: f32,\n");
    assert!(!differences(&k, &retyped).is_empty());
}

#[test]
fn every_optimizer_runs_a_listed_kernel() {
    let entries: Vec<&str> = OptimStep::ALL.iter().map(|s| s.kernel().entry).collect();
    for name in OPTIMIZER_NAMES {
        let c = OptimConfig::defaults(name).unwrap();
        assert_eq!(c.name(), name);
        let entry = c.kernel_step(1, c.lr()).kernel().entry;
        assert!(entries.contains(&entry), "{name} runs '{entry}', which OptimStep::ALL does not list");
        // The JSON form round-trips and names the optimizer.
        assert_eq!(OptimConfig::from_json(&c.to_json(), "o").unwrap(), c);
    }
    // Each kernel in ALL once, each a different variant.
    let mut sorted = entries.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), entries.len());
}
