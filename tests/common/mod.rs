//! Helpers shared by the seeded, randomized test files. Each test binary uses a part of
//! them, hence the allowance for unused items.
#![allow(dead_code)]

/// splitmix64: small, fast, and the same everywhere, so a printed seed replays exactly.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A number in `low..=high`.
    pub(crate) fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    /// True `p` times out of 100.
    pub(crate) fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

/// A numeric environment variable, if set and valid.
pub(crate) fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The seed of a kill test: `SOFTADASTRA_KILL_SEED`, or one from the clock; printed with
/// how to replay it.
pub(crate) fn kill_seed(test: &str) -> u64 {
    let seed = env_u64("SOFTADASTRA_KILL_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            % 1_000_000_000
    });
    println!("{test}: seed {seed} (replay with SOFTADASTRA_KILL_SEED={seed})");
    seed
}

use std::collections::BTreeMap;

use softadastra::store::{Change, Store, StoreError};

/// Live keys and their values: what a store should hold.
pub(crate) type Model = BTreeMap<String, Vec<u8>>;

/// One write made by a test workload.
#[derive(Clone, Debug)]
pub(crate) enum Action {
    Put(String, Vec<u8>),
    Remove(String),
    Batch(Vec<Change>),
}

impl Action {
    /// What the write does to the model.
    pub(crate) fn apply(&self, model: &mut Model) {
        let changes = match self {
            Action::Put(key, value) => vec![Change::Put {
                key: key.clone(),
                value: value.clone(),
            }],
            Action::Remove(key) => vec![Change::Remove { key: key.clone() }],
            Action::Batch(changes) => changes.clone(),
        };
        for change in changes {
            match change {
                Change::Put { key, value } => {
                    model.insert(key, value);
                }
                Change::Remove { key } => {
                    model.remove(&key);
                }
            }
        }
    }

    /// Makes the write on a store.
    pub(crate) fn perform(&self, store: &Store) -> Result<(), StoreError> {
        match self {
            Action::Put(key, value) => store.put(key, value).map(drop),
            Action::Remove(key) => store.remove(key).map(drop),
            Action::Batch(changes) => store.write_batch(changes).map(drop),
        }
    }
}

/// A client opened with `options`, given a transport on 127.0.0.1 on a port the system
/// picks (`ephemeral_transport_port`: no port to probe for, none to lose to another
/// test), and its transport started. `clock` replaces the system clocks when given.
pub(crate) fn client_with_transport(
    options: &softadastra::ClientOptions,
    clock: Option<std::sync::Arc<dyn softadastra::clock::Clock>>,
) -> softadastra::Client {
    let mut o = options.clone();
    o.enable_transport = true;
    o.transport_host = "127.0.0.1".into();
    o.transport_port = 0;
    o.ephemeral_transport_port = true;
    let client = match clock {
        Some(clock) => softadastra::Client::with_clock(o, clock),
        None => softadastra::Client::new(o),
    };
    client.open().unwrap();
    client.start_transport().unwrap();
    client
}

/// The last-writer-wins model of the simulations: per key, the greatest (version, origin)
/// ever written, with its value (`None`: removed).
pub(crate) type LwwModel = BTreeMap<String, (softadastra::store::Version, String, Option<Vec<u8>>)>;

/// A random local write on `store` (a put three times out of four, else a removal), its
/// entry into the node's outbox, and into `model`; returns its stamp.
pub(crate) fn random_write(
    rng: &mut Rng,
    node_id: &str,
    store: &Store,
    engine: &mut softadastra::sync::SyncEngine,
    key: &str,
    model: &mut LwwModel,
) -> Result<softadastra::store::WriteStamp, StoreError> {
    let (stamp, value) = if rng.percent(75) {
        let value = format!("{node_id}-{}", rng.below(1_000_000)).into_bytes();
        (store.put(key, &value)?, Some(value))
    } else {
        (store.remove(key)?, None)
    };
    engine.record_local(store, stamp, [key]);
    let version = stamp.first_version;
    let newer = model
        .get(key)
        .is_none_or(|(v, o, _)| (version, node_id) > (*v, o.as_str()));
    if newer {
        model.insert(key.to_string(), (version, node_id.to_string(), value));
    }
    Ok(stamp)
}

/// Whether `c` lists the node `id` as connected.
pub(crate) fn connected(c: &softadastra::Client, id: &str) -> bool {
    c.peers()
        .unwrap()
        .iter()
        .any(|p| p.node_id == id && p.state == softadastra::PeerState::Connected)
}

/// Makes every client trust every other one's key (each under its node id), as an
/// operator would with `softadastra peers trust`: connections are TLS between trusted
/// keys only.
pub(crate) fn trust_each_other(clients: &[&softadastra::Client]) {
    for a in clients {
        for b in clients {
            let b_info = b.node_info().unwrap();
            if a.options().node_id != b_info.node_id {
                a.trust_peer(&b_info.node_id, &b_info.fingerprint).unwrap();
            }
        }
    }
}

/// Before nodes run (in processes of their own): opens each persistent node once, which
/// makes its key, and has every node trust every other one in its trust file, so that the
/// nodes accept each other when they start.
pub(crate) fn enroll(options: &[softadastra::ClientOptions]) {
    let clients: Vec<softadastra::Client> = options
        .iter()
        .map(|o| {
            let mut o = o.clone();
            o.enable_transport = false;
            o.enable_discovery = false;
            let c = softadastra::Client::new(o);
            c.open().unwrap();
            c
        })
        .collect();
    trust_each_other(&clients.iter().collect::<Vec<_>>());
    for c in clients {
        c.close().unwrap();
    }
}

/// Runs test `name` of the current test binary again, alone, in a child process whose
/// files may not grow past `limit` bytes (RLIMIT_FSIZE, with SIGXFSZ ignored, so a write
/// past it fails with EFBIG as on a full disk), with `env` naming `dir`. The test sees
/// `env` set and plays the child's part. Fails the calling test with the child's output
/// unless the child succeeds.
pub(crate) fn run_with_file_size_limit(name: &str, env: &str, dir: &std::path::Path, limit: u64) {
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(env, dir);
    // SAFETY: only async-signal-safe calls (setrlimit, signal) between fork and exec.
    unsafe {
        child.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let out = child.output().unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
