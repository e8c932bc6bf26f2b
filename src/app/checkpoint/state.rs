//! The weights `export` writes from a training checkpoint. (The optimizer's state tensors are
//! named per width in `optim::state_dict`.)

use super::*;

/// The model's weights from a checkpoint's tensors and metadata, as evaluation wants them:
/// the parameters as stored, except Schedule-Free's in train mode, which are y and become
/// x = y + (1 − 1/β1)·(z − y) (what `optimizer.eval()` makes, computed as its f32 pass does).
pub fn export_weights(
    tensors: &[NamedTensor],
    meta: &BTreeMap<String, String>,
    what: &str,
) -> Result<Vec<NamedTensor>> {
    let mut weights: Vec<NamedTensor> = tensors.iter().filter(|t| !t.name.starts_with("optimizer.")).cloned().collect();
    ensure!(!weights.is_empty(), "{what}: no model tensors in the checkpoint");
    let config = match meta.get("optimizer") {
        Some(text) => {
            let v: Value = serde_json::from_str(text).with_context(|| format!("{what}: the optimizer entry"))?;
            Some(OptimConfig::from_json(&v, "optimizer").with_context(|| what.to_string())?)
        }
        None => None,
    };
    let mode = meta.get("optimizer_mode").map_or(Ok(Mode::Train), |m| Mode::from_name(m))?;
    if let (Some(OptimConfig::SchedulefreeAdamw(c)), Mode::Train) = (&config, mode) {
        let weight = (1.0 - 1.0 / c.betas.0) as f32;
        for w in &mut weights {
            let zname = format!("optimizer.z.{}", w.name);
            let z = tensors.iter().find(|t| t.name == zname).with_context(|| format!("{what}: {zname} is missing"))?;
            ensure!(
                z.data.len() == w.data.len(),
                "{what}: {zname} has {} values, {} has {}",
                z.data.len(),
                w.name,
                w.data.len()
            );
            for (y, &z) in w.data.iter_mut().zip(&z.data) {
                *y += weight * (z - *y);
            }
        }
    }
    Ok(weights)
}
