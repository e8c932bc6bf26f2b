//! Property tests (proptest) of every parser that reads user files, beside the mutation
//! fuzzing in `fuzz.rs`: generated *valid* inputs must round-trip exactly, every corruption of
//! them (truncation at any length, a bad field) must be an `Err` that says what was wrong, and
//! arbitrary input must never panic. proptest shrinks a failure to a minimal input and prints
//! it; `PROPTEST_CASES=100000` runs longer than CI's default.

use descent::app::checkpoint::{self, NamedTensor};
use descent::app::replay::ReplaySpec;
use descent::data::{cifar, idx};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// An IDX image file: its dimensions and pixel bytes.
fn idx_images() -> impl Strategy<Value = (Vec<usize>, Vec<u8>)> {
    (0usize..6, 1usize..6, 1usize..6)
        .prop_flat_map(|(n, r, c)| (Just(vec![n, r, c]), prop::collection::vec(any::<u8>(), n * r * c)))
}

/// CIFAR-10 records: labels 0..10 and 3,072 pixel bytes each (a few distinct values suffice).
fn cifar_records() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    prop::collection::vec((0u8..10, any::<u8>()), 1..4).prop_map(|recs| {
        let mut bytes = Vec::new();
        let mut labels = Vec::new();
        for (label, fill) in recs {
            labels.push(label);
            bytes.push(label);
            bytes.extend((0..3072).map(|i| fill.wrapping_add(i as u8)));
        }
        (labels, bytes)
    })
}

/// Named tensors with any f32 bit patterns (NaN payloads included) and small shapes.
fn tensors() -> impl Strategy<Value = Vec<NamedTensor>> {
    prop::collection::vec(prop::collection::vec(1usize..4, 0..3), 0..4).prop_flat_map(|shapes| {
        let parts: Vec<_> = shapes
            .into_iter()
            .enumerate()
            .map(|(i, shape)| {
                let len = shape.iter().product::<usize>();
                prop::collection::vec(any::<u32>().prop_map(f32::from_bits), len)
                    .prop_map(move |bits| NamedTensor::f32(format!("{i}.weight"), shape.clone(), bits))
            })
            .collect();
        parts
    })
}

/// Arbitrary JSON up to a small depth, with the replay spec's key names likely to appear.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (-1e3f64..1e3).prop_map(|f| json!(f)),
        prop_oneof![Just("adam"), Just("sgd"), Just("step"), Just(""), Just("nan")].prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            Just("optimizer"),
            Just("schedule"),
            Just("init"),
            Just("grads"),
            Just("quadratic"),
            Just("steps"),
            Just("name"),
            Just("lr"),
            Just("betas"),
            Just("momentum"),
        ]
        .prop_map(String::from);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

// proptest's default: 256 cases per property, or PROPTEST_CASES.
proptest! {
    #[test]
    fn idx_round_trips((dims, data) in idx_images()) {
        let bytes = idx::encode(&dims, &data);
        let (d, out) = idx::parse(&bytes, 3, "gen").unwrap();
        prop_assert_eq!(d, dims);
        prop_assert_eq!(out, data);
    }

    #[test]
    fn idx_truncated_anywhere_is_an_error((dims, data) in idx_images(), cut in any::<prop::sample::Index>()) {
        let bytes = idx::encode(&dims, &data);
        let cut = cut.index(bytes.len());
        let err = idx::parse(&bytes[..cut], 3, "gen").unwrap_err().to_string();
        prop_assert!(err.starts_with("gen: "), "{}", err);
    }

    #[test]
    fn idx_wrong_dimension_count_is_an_error((dims, data) in idx_images()) {
        let err = idx::parse(&idx::encode(&dims, &data), 1, "gen").unwrap_err().to_string();
        prop_assert!(err.contains("expected 1 dimensions, the header says 3"), "{}", err);
    }

    /// Any header byte changed: an error, or (when the new sizes still match the file) data
    /// whose length is the product of the dimensions the header now states.
    #[test]
    fn idx_header_changes_never_mislead((dims, data) in idx_images(), at in 0usize..16, value in any::<u8>()) {
        let mut bytes = idx::encode(&dims, &data);
        bytes[at] = value;
        if let Ok((d, out)) = idx::parse(&bytes, 3, "gen") {
            prop_assert_eq!(d.iter().product::<usize>(), out.len());
            prop_assert_eq!(out.len() + 16, bytes.len());
        }
    }

    #[test]
    fn idx_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = idx::parse(&bytes, 3, "gen");
        let _ = idx::parse(&bytes, 1, "gen");
    }

    #[test]
    fn cifar_round_trips((labels, bytes) in cifar_records()) {
        let split = cifar::parse_batch(&bytes, "gen").unwrap();
        prop_assert_eq!(split.rows, labels.len());
        prop_assert_eq!(&split.labels, &labels);
        let pixels: Vec<u8> = bytes.chunks_exact(3073).flat_map(|r| r[1..].to_vec()).collect();
        prop_assert_eq!(split.images, pixels);
    }

    #[test]
    fn cifar_bad_label_names_the_record((_, mut bytes) in cifar_records(), which in any::<prop::sample::Index>(), bad in 10u8..) {
        let rec = which.index(bytes.len() / 3073);
        bytes[rec * 3073] = bad;
        let err = cifar::parse_batch(&bytes, "gen").unwrap_err().to_string();
        prop_assert!(err.contains(&format!("record {rec} has label {bad}")), "{}", err);
    }

    #[test]
    fn cifar_partial_record_is_an_error((_, bytes) in cifar_records(), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(bytes.len());
        prop_assume!(cut % 3073 != 0 || cut == 0);
        let err = cifar::parse_batch(&bytes[..cut], "gen").unwrap_err().to_string();
        prop_assert!(err.contains("not a whole number of CIFAR-10 records"), "{}", err);
    }

    #[test]
    fn safetensors_round_trips_bit_exactly(ts in tensors(), step in any::<u32>()) {
        let meta = BTreeMap::from([("step".to_string(), step.to_string())]);
        let (back, m) = checkpoint::decode(&checkpoint::encode(&ts, &meta).unwrap(), "gen").unwrap();
        prop_assert_eq!(m, meta);
        prop_assert_eq!(back.len(), ts.len());
        // Stored (and read back) in name order.
        let mut ts = ts;
        ts.sort_by(|a, b| a.name.cmp(&b.name));
        for (a, b) in back.iter().zip(&ts) {
            prop_assert_eq!(&a.name, &b.name);
            prop_assert_eq!(&a.shape, &b.shape);
            let bits = |t: &NamedTensor| t.data.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(a), bits(b));
        }
    }

    #[test]
    fn safetensors_truncated_anywhere_is_an_error(ts in tensors(), cut in any::<prop::sample::Index>()) {
        let bytes = checkpoint::encode(&ts, &BTreeMap::new()).unwrap();
        let cut = cut.index(bytes.len());
        prop_assert!(checkpoint::decode(&bytes[..cut], "gen").is_err());
    }

    #[test]
    fn safetensors_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let _ = checkpoint::decode(&bytes, "gen");
    }

    #[test]
    fn replay_arbitrary_json_never_panics(v in json_value()) {
        let _ = ReplaySpec::parse(&v.to_string());
    }

    #[test]
    fn replay_valid_grads_parse_and_ragged_rows_are_named(
        init in prop::collection::vec(-10.0f32..10.0, 1..4),
        rows in 1usize..5,
        ragged in any::<prop::sample::Index>(),
    ) {
        let row = vec![0.5f32; init.len()];
        let mut spec = json!({"optimizer": {"name": "sgd", "lr": 0.1}, "init": init, "grads": vec![row.clone(); rows]});
        prop_assert_eq!(ReplaySpec::parse(&spec.to_string()).unwrap().steps(), rows);
        let bad = ragged.index(rows);
        spec["grads"][bad] = json!(vec![0.5f32; init.len() + 1]);
        let err = ReplaySpec::parse(&spec.to_string()).unwrap_err().to_string();
        prop_assert!(err.starts_with(&format!("$.grads[{bad}]: has {} values but init has {}", init.len() + 1, init.len())), "{}", err);
    }
}
