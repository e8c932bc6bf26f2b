//! The contract between Rust and WGSL, parsed with naga (the WGSL front end wgpu uses): every
//! optimizer's `#[repr(C)]` parameter struct (`backend::optim_kernel`) and every other kernel's
//! uniform (`backend::gpu::params`) declare the same fields as the WGSL struct of the same name,
//! in the same order with the same types, offsets and size; every kernel has its WGSL entry
//! point, and its storage bindings are those the registry (`backend::gpu::kernels`) declares,
//! with the same access; each module declares exactly the entry points the registry lists;
//! every optimizer name maps to a kernel; doctored copies fail.

use descent::backend::contract::Field;
use descent::backend::gpu::kernels::{self, Access, Entry, Kernel, Module};
use descent::backend::optim_kernel::{KernelInfo, OptimStep, ADAFACTOR};
use descent::optim::{Carried, OptimConfig, Step, OPTIMIZER_NAMES};

fn read(f: &str) -> String {
    let path = format!("{}/shaders/{f}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The WGSL module a kernel is built from, as the GPU backend assembles it.
fn kernel_source(name: &str) -> String {
    format!("{}{}{}", kernels::prelude(), read("optim.wgsl"), read(&format!("optim_{name}.wgsl")))
}

/// A blockwise 8-bit module: its own file, then the optimizer's formula.
fn source_8bit(name: &str) -> String {
    format!("{}{}{}", kernels::prelude(), read("optim8.wgsl"), read(&format!("optim_{name}.wgsl")))
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

/// Every way the WGSL side of `k` differs from the Rust side (empty when they mirror): its
/// module (`source`, as `module` is assembled) must have `module`'s compute entries, an `update`
/// function when `update` is set, and a uniform of `module`'s arena header, then `k`'s struct.
fn differences(k: &KernelInfo, source: &str, module: Module, update: bool) -> Vec<String> {
    let (entries, header) = (module.entries(), module.uniform().size as u32);
    let module = match naga::front::wgsl::parse_str(source) {
        Ok(m) => m,
        Err(e) => return vec![format!("optim_{}.wgsl does not parse: {}", k.name, e.emit_to_string(source))],
    };
    let mut out = Vec::new();
    for entry in entries {
        if !module.entry_points.iter().any(|e| e.name == entry.name() && e.stage == naga::ShaderStage::Compute) {
            out.push(format!("no compute entry point '{}'", entry.name()));
        }
    }
    if update && !module.functions.iter().any(|(_, f)| f.name.as_deref() == Some("update")) {
        out.push(format!("optim_{}.wgsl defines no `update`", k.name));
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
    // The uniform: the arena header the backend writes, then the parameter struct.
    let uniform = k.params.replace("Params", "Uniform");
    match wgsl_struct(&module, &uniform) {
        Some((u, _)) => {
            let want =
                vec![("arena".to_string(), 0, "Arena".to_string()), ("h".to_string(), header, k.params.to_string())];
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
        let diffs = differences(&k, &kernel_source(k.name), Module::for_step(&step), true);
        assert!(diffs.is_empty(), "{}: {}", k.name, diffs.join("; "));
        assert!(k.bindings.len() <= 3, "{}: the kernels bind three state slots at most", k.name);
    }
    // Each blockwise 8-bit module: the same parameter struct, its entry point; its header takes
    // the place of the f32 kernels' arena (32 bytes).
    let mut eight = 0;
    for (step, m) in OptimStep::ALL.iter().filter_map(|s| Some((s, Module::for_step_8bit(s)?))) {
        let k = step.kernel();
        let source = source_8bit(k.name);
        assert_eq!(source, kernels::module_source(m), "{} 8-bit: the backend assembles it so", k.name);
        let diffs = differences(&k, &source, m, true);
        assert!(diffs.is_empty(), "{} 8-bit: {}", k.name, diffs.join("; "));
        let module = naga::front::wgsl::parse_str(&source).unwrap();
        assert_eq!(wgsl_struct(&module, "Arena").map(|(_, span)| span), Some(32));
        eight += 1;
    }
    let eight_bit_modules = Module::ALL.iter().filter(|m| m.entries() == [Entry::Step8bit]).count();
    assert_eq!(eight, eight_bit_modules, "every 8-bit kernel is some step's");
    // Adafactor's own modules (f32 and bfloat16 statistics): its six entry points, its
    // parameters after a 32-byte header.
    for (m, width) in [(Module::Adafactor, "f32"), (Module::AdafactorBf16, "bf16")] {
        let source = format!(
            "{}{}{}",
            kernels::prelude(),
            read("adafactor.wgsl"),
            read(&format!("adafactor_state_{width}.wgsl"))
        );
        assert_eq!(source, kernels::module_source(m), "adafactor {width}: the backend assembles it so");
        let diffs = differences(&ADAFACTOR, &source, m, false);
        assert!(diffs.is_empty(), "adafactor {width}: {}", diffs.join("; "));
    }
}

#[test]
fn the_mirror_check_catches_a_field_added_on_either_side() {
    let step = OptimStep::ALL[3];
    let k = step.kernel();
    assert_eq!(k.params, "AdamParams");
    let source = kernel_source(k.name);
    // A field added in WGSL only.
    let wgsl_extra = source.replace("    amsgrad: u32,\n", "    amsgrad: u32,\n    maximize: u32,\n");
    assert_ne!(wgsl_extra, source);
    assert!(!differences(&k, &wgsl_extra, Module::OptimAdam, true).is_empty());
    // A field added in Rust only (the same struct with one more entry in its table).
    let mut fields = k.fields.to_vec();
    fields.push(Field { name: "maximize", offset: k.size, ty: "u32" });
    let rust_extra = KernelInfo { fields: Box::leak(fields.into_boxed_slice()), size: k.size + 4, ..k };
    assert!(!differences(&rust_extra, &source, Module::OptimAdam, true).is_empty());
    // Two fields swapped in WGSL.
    let swapped = source.replace("    beta1: f32,\n    beta2: f32,\n", "    beta2: f32,\n    beta1: f32,\n");
    assert_ne!(swapped, source);
    assert!(!differences(&k, &swapped, Module::OptimAdam, true).is_empty());
    // A type changed in WGSL.
    // The formula renamed away.
    let no_update = source.replace("fn update(", "fn update_old(");
    assert_ne!(no_update, source);
    assert!(!differences(&k, &no_update, Module::OptimAdam, true).is_empty());
    let retyped = source.replace("    decoupled: u32,\n", "    decoupled: f32,\n");
    assert!(!differences(&k, &retyped, Module::OptimAdam, true).is_empty());
}

#[test]
fn every_optimizer_runs_a_listed_kernel() {
    let entries: Vec<&str> = OptimStep::ALL.iter().map(|s| s.kernel().name).collect();
    for name in OPTIMIZER_NAMES {
        let c = OptimConfig::defaults(name).unwrap();
        assert_eq!(c.name(), name);
        let mut first = Carried::new();
        first.advance(&c, c.lr());
        let entry = match c.kernel_step(1, c.lr(), &first) {
            Step::Fused(k) => k.kernel().name,
            Step::Factored(_) => ADAFACTOR.name,
            // Muon's own pass is its momentum kernel (the rest runs on the matmul, the vector
            // kernels and Adam's).
            Step::Muon(m) => m.momentum.kernel().name,
        };
        let entries: Vec<&str> = entries.iter().copied().chain([ADAFACTOR.name]).collect();
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

/// Every way the uniform struct `name` in `source` differs from its Rust twin.
fn uniform_differences(source: &str, name: &str, fields: &[Field], size: usize) -> Vec<String> {
    let module = match naga::front::wgsl::parse_str(source) {
        Ok(m) => m,
        Err(e) => return vec![format!("does not parse: {}", e.emit_to_string(source))],
    };
    let Some((wgsl, span)) = wgsl_struct(&module, name) else { return vec![format!("no WGSL struct '{name}'")] };
    let rust: Vec<Member> = fields.iter().map(|f| (f.name.to_string(), f.offset as u32, f.ty.to_string())).collect();
    let mut out = Vec::new();
    if wgsl != rust {
        out.push(format!("{name}: WGSL fields {wgsl:?}, Rust fields {rust:?}"));
    }
    if span as usize != size {
        out.push(format!("{name}: WGSL size {span}, Rust size {size}"));
    }
    out
}

/// Every way a kernel's bindings in `source` differ from its Rust declaration: binding 0 the
/// uniform (of type `uniform`, when given), then storage bindings 1, 2, … with the declared
/// access, and nothing else in group 0 that the entry point uses; and its entry point exists.
fn binding_differences(k: &Kernel, source: &str, uniform: Option<&str>) -> Vec<String> {
    declared_binding_differences(k.module().label(), k.name(), k.bindings(), source, uniform)
}

/// [`binding_differences`] for an entry point `entry` of module `label` declared with storage
/// bindings `bindings` (so that a test can doctor the Rust side).
fn declared_binding_differences(
    label: &str,
    entry: &str,
    bindings: &[Access],
    source: &str,
    uniform: Option<&str>,
) -> Vec<String> {
    let module = match naga::front::wgsl::parse_str(source) {
        Ok(m) => m,
        Err(e) => return vec![format!("{label} does not parse: {}", e.emit_to_string(source))],
    };
    let mut out = Vec::new();
    let Some(ep) = module.entry_points.iter().position(|e| e.name == entry && e.stage == naga::ShaderStage::Compute)
    else {
        return vec![format!("{label}: no compute entry point '{entry}'")];
    };
    // The bindings this entry point uses (a module may declare more, for its other entries).
    let info = match naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
        .validate(&module)
    {
        Ok(info) => info,
        Err(e) => return vec![format!("{label} does not validate: {e:?}")],
    };
    let uses = info.get_entry_point(ep);
    // (binding, access, name, used by this entry point)
    let mut storage = Vec::new();
    let mut uniforms = Vec::new();
    for (handle, g) in module.global_variables.iter() {
        let Some(b) = &g.binding else { continue };
        let name = g.name.clone().unwrap_or_default();
        match g.space {
            naga::AddressSpace::Uniform => {
                uniforms.push((b.binding, module.types[g.ty].name.clone().unwrap_or_default()))
            }
            naga::AddressSpace::Storage { access } => {
                let a = if access.contains(naga::StorageAccess::STORE) { Access::ReadWrite } else { Access::Read };
                storage.push((b.binding, a, name, !uses[handle].is_empty()));
            }
            _ => out.push(format!("{name}: a binding that is neither uniform nor storage")),
        }
    }
    match uniforms.as_slice() {
        [(0, ty)] => {
            if let Some(want) = uniform.filter(|w| w != ty) {
                out.push(format!("binding 0 is a {ty}, the backend writes a {want}"));
            }
        }
        other => out.push(format!("expected one uniform at binding 0, found {other:?}")),
    }
    storage.sort_by_key(|s| s.0);
    // The backend's layout: every binding the entry point uses, with its access, and no binding
    // the module does not declare so (a module's entries may share a layout and use part of it).
    let rust: Vec<(u32, Access)> = bindings.iter().enumerate().map(|(i, &a)| (i as u32 + 1, a)).collect();
    let declared: Vec<(u32, Access)> = storage.iter().map(|&(b, a, _, _)| (b, a)).collect();
    let unlisted = storage.iter().any(|&(b, a, _, used)| used && !rust.contains(&(b, a)));
    if unlisted || rust.iter().any(|r| !declared.contains(r)) {
        out.push(format!(
            "{label} {entry}: WGSL storage bindings (binding, access, name, used here) {storage:?}, Rust declares {rust:?}"
        ));
    }
    out
}

/// The WGSL name of a module's uniform, where the whole uniform is that one struct.
fn uniform_name(module: Module) -> Option<&'static str> {
    // An optimizer's uniform is its Arena header then its parameters: checked by the struct test.
    Some(module.uniform().name).filter(|&n| n != "Arena")
}

#[test]
fn every_kernel_uniform_mirrors_its_wgsl_twin() {
    for &module in Module::ALL {
        let u = module.uniform();
        let diffs = uniform_differences(&kernels::module_source(module), u.name, u.fields, u.size);
        assert!(diffs.is_empty(), "{}: {}", module.label(), diffs.join("; "));
    }
}

#[test]
fn every_kernel_binding_has_its_declared_access() {
    for &module in Module::ALL {
        assert!(!module.entries().is_empty(), "{}: no entry points", module.label());
    }
    for k in Kernel::all() {
        let diffs = binding_differences(&k, &kernels::module_source(k.module()), uniform_name(k.module()));
        assert!(diffs.is_empty(), "{}", diffs.join("; "));
    }
}

/// The names of the compute entry points `source` declares, sorted.
fn wgsl_entries(source: &str) -> Vec<String> {
    let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{}", e.emit_to_string(source)));
    let mut names: Vec<String> =
        module.entry_points.iter().filter(|e| e.stage == naga::ShaderStage::Compute).map(|e| e.name.clone()).collect();
    names.sort();
    names
}

/// The registry's entry names for `module`, sorted.
fn registry_entries(module: Module) -> Vec<String> {
    let mut names: Vec<String> = module.entries().iter().map(|e| e.name().to_string()).collect();
    names.sort();
    names
}

#[test]
fn every_module_declares_exactly_the_registry_entries() {
    for &module in Module::ALL {
        assert_eq!(
            wgsl_entries(&kernels::module_source(module)),
            registry_entries(module),
            "{}: the WGSL's compute entry points and Module::entries differ",
            module.label()
        );
    }
    // A WGSL entry point the registry does not list is caught.
    let source = kernels::module_source(Module::Reduce);
    let extra = format!("{source}\n@compute @workgroup_size(1)\nfn stray() {{}}\n");
    assert_ne!(wgsl_entries(&extra), registry_entries(Module::Reduce));
}

#[test]
fn the_uniform_and_binding_checks_catch_a_doctored_copy() {
    let source = kernels::module_source(Module::Elementwise);
    let u = Module::Elementwise.uniform();
    let (name, fields, size) = (u.name, u.fields, u.size);
    assert_eq!(name, "ElementwiseParams");
    assert!(uniform_differences(&source, name, fields, size).is_empty());
    // A field added in WGSL only.
    let wgsl_extra = source.replace("param: f32, pad0: u32,", "param: f32, extra: u32, pad0: u32,");
    assert_ne!(wgsl_extra, source);
    assert!(!uniform_differences(&wgsl_extra, name, fields, size).is_empty());
    // A field added in Rust only.
    let mut more = fields.to_vec();
    more.push(Field { name: "extra", offset: size, ty: "u32" });
    assert!(!uniform_differences(&source, name, &more, size + 4).is_empty());
    // A binding's access changed in WGSL.
    let k = Kernel::new(Module::Elementwise, Entry::Binary);
    assert_eq!(k.name(), "binary");
    assert!(binding_differences(&k, &source, Some(name)).is_empty());
    let writable = source.replace("var<storage, read> Z:", "var<storage, read_write> Z:");
    assert_ne!(writable, source);
    assert!(!binding_differences(&k, &writable, Some(name)).is_empty());
    // And in Rust.
    let flipped = [Access::Read, Access::ReadWrite, Access::ReadWrite];
    assert!(!declared_binding_differences("elementwise", "binary", &flipped, &source, Some(name)).is_empty());
    // A binding dropped from Rust's list.
    let fewer = [Access::Read, Access::ReadWrite];
    assert!(!declared_binding_differences("elementwise", "binary", &fewer, &source, Some(name)).is_empty());
}
