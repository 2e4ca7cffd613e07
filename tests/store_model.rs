//! The store against a `BTreeMap` model: random puts, removes, batches and reopens. After
//! every step the store answers exactly like the model, and a reopen (replaying the WAL)
//! changes nothing.

use std::collections::BTreeMap;

use proptest::prelude::*;
use softadastra::store::{Change, Store, StoreOptions};

#[derive(Clone, Debug)]
enum Step {
    Put(u8, Vec<u8>),
    Remove(u8),
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    Reopen { durable: bool },
}

fn key(k: u8) -> String {
    // A few shared prefixes so that list(prefix) is exercised.
    format!("{}/{k:03}", ["a", "ab", "b"][k as usize % 3])
}

fn step() -> impl Strategy<Value = Step> {
    let value = proptest::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        6 => (0u8..24, value.clone()).prop_map(|(k, v)| Step::Put(k, v)),
        3 => (0u8..24).prop_map(Step::Remove),
        2 => proptest::collection::vec((0u8..24, proptest::option::of(value)), 1..6)
            .prop_map(Step::Batch),
        1 => any::<bool>().prop_map(|durable| Step::Reopen { durable }),
    ]
}

fn check(store: &Store, model: &BTreeMap<String, Vec<u8>>) {
    assert_eq!(store.len(), model.len());
    for k in 0..24u8 {
        let k = key(k);
        assert_eq!(store.get(&k).as_ref(), model.get(&k), "key {k}");
        assert_eq!(store.contains(&k), model.contains_key(&k));
    }
    for prefix in ["", "a", "ab", "b/", "zz"] {
        let expected: Vec<(String, Vec<u8>)> = model
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(store.list(prefix), expected, "prefix {prefix:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_a_btreemap_across_random_reopens(steps in proptest::collection::vec(step(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let mut options = StoreOptions::new("model-node", Some(dir.path().join("model.wal")), true);
        let mut store = Store::open(&options).unwrap();
        let mut model = BTreeMap::new();
        let mut last_version = store.last_version();
        for step in steps {
            match step {
                Step::Put(k, v) => {
                    let version = store.put(&key(k), &v).unwrap().last_version();
                    prop_assert!(version > last_version);
                    last_version = version;
                    model.insert(key(k), v);
                }
                Step::Remove(k) => {
                    store.remove(&key(k)).unwrap();
                    model.remove(&key(k));
                }
                Step::Batch(changes) => {
                    let changes: Vec<Change> = changes
                        .into_iter()
                        .map(|(k, v)| match v {
                            Some(value) => Change::Put { key: key(k), value },
                            None => Change::Remove { key: key(k) },
                        })
                        .collect();
                    store.write_batch(&changes).unwrap();
                    for c in changes {
                        match c {
                            Change::Put { key, value } => { model.insert(key, value); }
                            Change::Remove { key } => { model.remove(&key); }
                        }
                    }
                }
                Step::Reopen { durable } => {
                    store.close().unwrap();
                    drop(store);
                    options.durable = durable;
                    store = Store::open(&options).unwrap();
                    prop_assert!(store.last_version() >= last_version, "clock went backwards");
                }
            }
            check(&store, &model);
        }
    }
}
