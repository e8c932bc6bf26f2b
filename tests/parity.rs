//! Every kernel on both backends against the f64 reference, on fresh random inputs with odd
//! sizes; outputs are poisoned with NaN first (see `descent::parity`).

mod common;

use descent::backend::Device;
use descent::parity::{run, table, ParityConfig};

fn assert_all_pass(dev: &mut Device, cfg: &ParityConfig) {
    let rows = run(dev, cfg).expect("parity run");
    assert!(rows.len() > 40, "parity covered only {} checks", rows.len());
    let failed: Vec<_> = rows.iter().filter(|r| !r.pass).cloned().collect();
    assert!(failed.is_empty(), "failed:\n{}", table(&failed));
}

#[test]
fn cpu_backend_matches_reference() {
    let cfg = ParityConfig {
        seed: 1,
        shapes: vec![(1, 1, 1), (3, 5, 7), (63, 65, 129), (65, 63, 1), (129, 784, 128)],
        lengths: vec![1, 7, 63, 65, 129, 1023, 65_537],
        optim_steps: 4,
    };
    assert_all_pass(&mut Device::cpu(), &cfg);
}

#[test]
fn gpu_kernels_match_reference() {
    let mut dev = common::gpu();
    let cfg = ParityConfig {
        seed: 2,
        shapes: vec![(1, 1, 1), (3, 5, 7), (63, 65, 129), (65, 63, 1), (70, 784, 128)],
        lengths: vec![1, 7, 1023, 65_537],
        optim_steps: 4,
    };
    assert_all_pass(&mut dev, &cfg);
}

#[test]
fn gpu_two_dimensional_grid_covers_every_element() {
    // 65,535 workgroups of 256 is the per-dimension limit: one more element needs a 2-D grid.
    let mut dev = common::gpu();
    let cfg = ParityConfig { seed: 3, shapes: vec![], lengths: vec![65_535 * 256 + 1], optim_steps: 2 };
    assert_all_pass(&mut dev, &cfg);
}
