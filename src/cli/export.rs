//! `descent export --checkpoint FILE --out model.safetensors`: the weights alone, under
//! `nn.Sequential`'s names, for `model.load_state_dict(safetensors.torch.load_file(…))`
//! (Schedule-Free's in eval mode: x, as its reference evaluates).

use super::usage;
use anyhow::Result;
use clap::Args;
use descent::app::checkpoint;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args)]
pub struct ExportArgs {
    /// A checkpoint written by `descent train --checkpoint`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Where to write the weights (safetensors).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: ExportArgs) -> Result<()> {
    let (tensors, meta) = usage(checkpoint::read(&a.checkpoint))?;
    // Schedule-Free's stored y becomes x, the parameters it evaluates with.
    let weights = checkpoint::export_weights(&tensors, &meta, &a.checkpoint.display().to_string())?;
    let mut out_meta = BTreeMap::new();
    out_meta.insert("format".to_string(), "pt".to_string());
    for k in ["sizes", "activation", "dataset"] {
        if let Some(v) = meta.get(k) {
            out_meta.insert(k.to_string(), v.clone());
        }
    }
    checkpoint::write_atomic(&a.out, &checkpoint::encode(&weights, &out_meta)?)?;
    let names: Vec<_> = weights.iter().map(|t| format!("{} {:?}", t.name, t.shape)).collect();
    println!("wrote {}: {}", a.out.display(), names.join(", "));
    Ok(())
}
