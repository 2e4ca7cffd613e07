//! The CLI's configuration: defaults, a TOML file, `SOFTADASTRA_*` environment variables and
//! flags, in that order of increasing precedence. Every key is documented in
//! docs/configuration.md. A bad value is reported naming the key and where it came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::data_dir;
use serde::Deserialize;
use softadastra::ClientOptions;

use super::CliError;

/// Where a setting's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    File,
    Env,
    Flag,
    /// Generated once and stored in the data directory (the node id).
    DataDir,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::File => "config file",
            Source::Env => "environment",
            Source::Flag => "flag",
            Source::DataDir => "data dir",
        }
    }
}

/// The config file's shape. Unknown keys are refused, naming them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    node_id: Option<String>,
    display_name: Option<String>,
    data_dir: Option<PathBuf>,
    wal: Option<PathBuf>,
    auto_flush: Option<bool>,
    transport: Option<FileTransport>,
    discovery: Option<FileDiscovery>,
    peers: Option<Vec<String>>,
    sync: Option<FileSync>,
    tick_interval_ms: Option<i64>,
    log_level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTransport {
    enabled: Option<bool>,
    host: Option<String>,
    port: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDiscovery {
    enabled: Option<bool>,
    host: Option<String>,
    port: Option<i64>,
    broadcast_host: Option<String>,
    broadcast_port: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSync {
    batch_size: Option<i64>,
    max_retries: Option<i64>,
    ack_timeout_ms: Option<i64>,
    retry_interval_ms: Option<i64>,
    max_clock_drift_ms: Option<i64>,
}

/// A peer to connect to, from `peers` ("id@host:port").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    pub node_id: String,
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for PeerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{}", self.node_id, self.host, self.port)
    }
}

/// Values given on the command line (`None`: not given).
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub node_id: Option<String>,
    pub transport_host: Option<String>,
    pub transport_port: Option<String>,
    pub peers: Vec<String>,
    pub discovery: bool,
    pub log_level: Option<String>,
}

/// The effective configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub config_file: Option<PathBuf>,
    /// `None` until [`Settings::resolve_node_id`]: then the stored or generated id.
    pub node_id: Option<String>,
    pub display_name: String,
    pub data_dir: PathBuf,
    /// `None`: `<data_dir>/node.wal`.
    pub wal: Option<PathBuf>,
    pub auto_flush: bool,
    pub transport_enabled: bool,
    pub transport_host: String,
    pub transport_port: u16,
    pub discovery_enabled: bool,
    pub discovery_host: String,
    pub discovery_port: u16,
    pub discovery_broadcast_host: String,
    pub discovery_broadcast_port: u16,
    pub peers: Vec<PeerSpec>,
    pub sync_batch_size: usize,
    pub sync_max_retries: u32,
    pub sync_ack_timeout_ms: u32,
    pub sync_retry_interval_ms: u32,
    pub sync_max_clock_drift_ms: u64,
    pub tick_interval_ms: u64,
    pub log_level: log::LevelFilter,
    sources: BTreeMap<&'static str, Source>,
}

/// Every environment variable the CLI reads, with its key.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("SOFTADASTRA_CONFIG", "(config file)"),
    ("SOFTADASTRA_NODE_ID", "node_id"),
    ("SOFTADASTRA_DISPLAY_NAME", "display_name"),
    ("SOFTADASTRA_DATA_DIR", "data_dir"),
    ("SOFTADASTRA_WAL", "wal"),
    ("SOFTADASTRA_AUTO_FLUSH", "auto_flush"),
    ("SOFTADASTRA_TRANSPORT_ENABLED", "transport.enabled"),
    ("SOFTADASTRA_TRANSPORT_HOST", "transport.host"),
    ("SOFTADASTRA_TRANSPORT_PORT", "transport.port"),
    ("SOFTADASTRA_DISCOVERY_ENABLED", "discovery.enabled"),
    ("SOFTADASTRA_DISCOVERY_HOST", "discovery.host"),
    ("SOFTADASTRA_DISCOVERY_PORT", "discovery.port"),
    (
        "SOFTADASTRA_DISCOVERY_BROADCAST_HOST",
        "discovery.broadcast_host",
    ),
    (
        "SOFTADASTRA_DISCOVERY_BROADCAST_PORT",
        "discovery.broadcast_port",
    ),
    ("SOFTADASTRA_PEERS", "peers"),
    ("SOFTADASTRA_SYNC_BATCH_SIZE", "sync.batch_size"),
    ("SOFTADASTRA_SYNC_MAX_RETRIES", "sync.max_retries"),
    ("SOFTADASTRA_SYNC_ACK_TIMEOUT_MS", "sync.ack_timeout_ms"),
    (
        "SOFTADASTRA_SYNC_RETRY_INTERVAL_MS",
        "sync.retry_interval_ms",
    ),
    (
        "SOFTADASTRA_SYNC_MAX_CLOCK_DRIFT_MS",
        "sync.max_clock_drift_ms",
    ),
    ("SOFTADASTRA_TICK_INTERVAL_MS", "tick_interval_ms"),
    ("SOFTADASTRA_LOG_LEVEL", "log_level"),
];

impl Default for Settings {
    fn default() -> Self {
        let o = ClientOptions::default();
        Settings {
            config_file: None,
            node_id: None,
            display_name: String::new(),
            data_dir: PathBuf::from("data"),
            wal: None,
            auto_flush: true,
            transport_enabled: true,
            transport_host: "0.0.0.0".into(),
            transport_port: 9500,
            discovery_enabled: false,
            discovery_host: "0.0.0.0".into(),
            discovery_port: 9400,
            discovery_broadcast_host: "255.255.255.255".into(),
            discovery_broadcast_port: 9400,
            peers: Vec::new(),
            sync_batch_size: o.sync_batch_size,
            sync_max_retries: o.max_sync_retries,
            sync_ack_timeout_ms: o.ack_timeout_ms,
            sync_retry_interval_ms: o.retry_interval_ms,
            sync_max_clock_drift_ms: o.max_clock_drift_ms,
            tick_interval_ms: 1000,
            log_level: log::LevelFilter::Info,
            sources: BTreeMap::new(),
        }
    }
}

/// A bad value: exit 2, naming the key and where it came from.
fn bad(key: &str, source: &str, reason: impl std::fmt::Display) -> CliError {
    CliError::usage(format!("invalid configuration: {key} ({source}): {reason}"))
}

fn parse_port(key: &str, source: &str, v: i64) -> Result<u16, CliError> {
    match u16::try_from(v) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(bad(key, source, format!("{v} is not a port (1-65535)"))),
    }
}

fn parse_int<T: TryFrom<i64>>(key: &str, source: &str, v: i64, min: i64) -> Result<T, CliError> {
    if v < min {
        return Err(bad(key, source, format!("{v} is below the minimum {min}")));
    }
    T::try_from(v).map_err(|_| bad(key, source, format!("{v} is too large")))
}

fn parse_bool(key: &str, source: &str, v: &str) -> Result<bool, CliError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(bad(
            key,
            source,
            format!("'{v}' is not a boolean (true/false)"),
        )),
    }
}

fn parse_i64(key: &str, source: &str, v: &str) -> Result<i64, CliError> {
    v.trim()
        .parse()
        .map_err(|_| bad(key, source, format!("'{v}' is not a number")))
}

fn parse_level(key: &str, source: &str, v: &str) -> Result<log::LevelFilter, CliError> {
    v.trim().parse().map_err(|_| {
        bad(
            key,
            source,
            format!("'{v}' is not a log level (off, error, warn, info, debug, trace)"),
        )
    })
}

fn check_node_id(key: &str, source: &str, v: &str) -> Result<String, CliError> {
    softadastra::metadata::validate_node_id(v).map_err(|e| bad(key, source, e))?;
    Ok(v.to_string())
}

fn check_host(key: &str, source: &str, v: &str) -> Result<String, CliError> {
    if v.trim().is_empty() {
        return Err(bad(key, source, "must not be empty"));
    }
    Ok(v.to_string())
}

/// Parses "id@host:port".
pub fn parse_peer(key: &str, source: &str, v: &str) -> Result<PeerSpec, CliError> {
    let expected = "expected id@host:port";
    let (id, addr) = v
        .trim()
        .split_once('@')
        .ok_or_else(|| bad(key, source, format!("'{v}': {expected}")))?;
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| bad(key, source, format!("'{v}': {expected}")))?;
    softadastra::metadata::validate_node_id(id)
        .map_err(|e| bad(key, source, format!("'{v}': {e}")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad(key, source, format!("'{v}': {expected}")));
    }
    let port = parse_port(key, source, parse_i64(key, source, port)?)?;
    Ok(PeerSpec {
        node_id: id.to_string(),
        host: host.to_string(),
        port,
    })
}

impl Settings {
    fn set(&mut self, key: &'static str, source: Source) {
        self.sources.insert(key, source);
    }

    /// Where `key`'s value came from.
    pub fn source(&self, key: &str) -> Source {
        self.sources.get(key).copied().unwrap_or(Source::Default)
    }

    /// Resolves defaults, the config file, the environment and the flags. `env` looks a
    /// variable up (the process environment in the binary).
    pub fn load(flags: &Flags, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, CliError> {
        let mut s = Settings::default();
        let config = match (&flags.config, env("SOFTADASTRA_CONFIG")) {
            (Some(path), _) => {
                s.set("config", Source::Flag);
                Some(path.clone())
            }
            (None, Some(path)) if !path.is_empty() => {
                s.set("config", Source::Env);
                Some(PathBuf::from(path))
            }
            _ => None,
        };
        if let Some(path) = &config {
            let file = read_file(path)?;
            s.apply_file(file, &path.display().to_string())?;
            s.config_file = Some(path.clone());
        }
        s.apply_env(env)?;
        s.apply_flags(flags)?;
        Ok(s)
    }

    fn apply_file(&mut self, f: FileConfig, path: &str) -> Result<(), CliError> {
        let src = format!("config file {path}");
        let src = src.as_str();
        let file = Source::File;
        if let Some(v) = f.node_id {
            self.node_id = Some(check_node_id("node_id", src, &v)?);
            self.set("node_id", file);
        }
        if let Some(v) = f.display_name {
            self.display_name = v;
            self.set("display_name", file);
        }
        if let Some(v) = f.data_dir {
            self.data_dir = v;
            self.set("data_dir", file);
        }
        if let Some(v) = f.wal {
            self.wal = Some(v);
            self.set("wal", file);
        }
        if let Some(v) = f.auto_flush {
            self.auto_flush = v;
            self.set("auto_flush", file);
        }
        if let Some(t) = f.transport {
            if let Some(v) = t.enabled {
                self.transport_enabled = v;
                self.set("transport.enabled", file);
            }
            if let Some(v) = t.host {
                self.transport_host = check_host("transport.host", src, &v)?;
                self.set("transport.host", file);
            }
            if let Some(v) = t.port {
                self.transport_port = parse_port("transport.port", src, v)?;
                self.set("transport.port", file);
            }
        }
        if let Some(d) = f.discovery {
            if let Some(v) = d.enabled {
                self.discovery_enabled = v;
                self.set("discovery.enabled", file);
            }
            if let Some(v) = d.host {
                self.discovery_host = check_host("discovery.host", src, &v)?;
                self.set("discovery.host", file);
            }
            if let Some(v) = d.port {
                self.discovery_port = parse_port("discovery.port", src, v)?;
                self.set("discovery.port", file);
            }
            if let Some(v) = d.broadcast_host {
                self.discovery_broadcast_host = check_host("discovery.broadcast_host", src, &v)?;
                self.set("discovery.broadcast_host", file);
            }
            if let Some(v) = d.broadcast_port {
                self.discovery_broadcast_port = parse_port("discovery.broadcast_port", src, v)?;
                self.set("discovery.broadcast_port", file);
            }
        }
        if let Some(peers) = f.peers {
            self.peers = peers
                .iter()
                .map(|p| parse_peer("peers", src, p))
                .collect::<Result<_, _>>()?;
            self.set("peers", file);
        }
        if let Some(y) = f.sync {
            if let Some(v) = y.batch_size {
                self.sync_batch_size = parse_int("sync.batch_size", src, v, 1)?;
                self.set("sync.batch_size", file);
            }
            if let Some(v) = y.max_retries {
                self.sync_max_retries = parse_int("sync.max_retries", src, v, 0)?;
                self.set("sync.max_retries", file);
            }
            if let Some(v) = y.ack_timeout_ms {
                self.sync_ack_timeout_ms = parse_int("sync.ack_timeout_ms", src, v, 1)?;
                self.set("sync.ack_timeout_ms", file);
            }
            if let Some(v) = y.retry_interval_ms {
                self.sync_retry_interval_ms = parse_int("sync.retry_interval_ms", src, v, 0)?;
                self.set("sync.retry_interval_ms", file);
            }
            if let Some(v) = y.max_clock_drift_ms {
                self.sync_max_clock_drift_ms = parse_int("sync.max_clock_drift_ms", src, v, 0)?;
                self.set("sync.max_clock_drift_ms", file);
            }
        }
        if let Some(v) = f.tick_interval_ms {
            self.tick_interval_ms = parse_int("tick_interval_ms", src, v, 1)?;
            self.set("tick_interval_ms", file);
        }
        if let Some(v) = f.log_level {
            self.log_level = parse_level("log_level", src, &v)?;
            self.set("log_level", file);
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), CliError> {
        let e = Source::Env;
        for (var, key) in ENV_VARS {
            let Some(v) = env(var) else { continue };
            if v.is_empty() || *var == "SOFTADASTRA_CONFIG" {
                continue;
            }
            let src = *var;
            match *key {
                "node_id" => self.node_id = Some(check_node_id(key, src, &v)?),
                "display_name" => self.display_name = v,
                "data_dir" => self.data_dir = PathBuf::from(v),
                "wal" => self.wal = Some(PathBuf::from(v)),
                "auto_flush" => self.auto_flush = parse_bool(key, src, &v)?,
                "transport.enabled" => self.transport_enabled = parse_bool(key, src, &v)?,
                "transport.host" => self.transport_host = check_host(key, src, &v)?,
                "transport.port" => {
                    self.transport_port = parse_port(key, src, parse_i64(key, src, &v)?)?
                }
                "discovery.enabled" => self.discovery_enabled = parse_bool(key, src, &v)?,
                "discovery.host" => self.discovery_host = check_host(key, src, &v)?,
                "discovery.port" => {
                    self.discovery_port = parse_port(key, src, parse_i64(key, src, &v)?)?
                }
                "discovery.broadcast_host" => {
                    self.discovery_broadcast_host = check_host(key, src, &v)?
                }
                "discovery.broadcast_port" => {
                    self.discovery_broadcast_port = parse_port(key, src, parse_i64(key, src, &v)?)?
                }
                "peers" => {
                    self.peers = v
                        .split(',')
                        .filter(|p| !p.trim().is_empty())
                        .map(|p| parse_peer(key, src, p))
                        .collect::<Result<_, _>>()?
                }
                "sync.batch_size" => {
                    self.sync_batch_size = parse_int(key, src, parse_i64(key, src, &v)?, 1)?
                }
                "sync.max_retries" => {
                    self.sync_max_retries = parse_int(key, src, parse_i64(key, src, &v)?, 0)?
                }
                "sync.ack_timeout_ms" => {
                    self.sync_ack_timeout_ms = parse_int(key, src, parse_i64(key, src, &v)?, 1)?
                }
                "sync.retry_interval_ms" => {
                    self.sync_retry_interval_ms = parse_int(key, src, parse_i64(key, src, &v)?, 0)?
                }
                "sync.max_clock_drift_ms" => {
                    self.sync_max_clock_drift_ms = parse_int(key, src, parse_i64(key, src, &v)?, 0)?
                }
                "tick_interval_ms" => {
                    self.tick_interval_ms = parse_int(key, src, parse_i64(key, src, &v)?, 1)?
                }
                "log_level" => self.log_level = parse_level(key, src, &v)?,
                _ => continue,
            }
            self.set(key, e);
        }
        Ok(())
    }

    fn apply_flags(&mut self, flags: &Flags) -> Result<(), CliError> {
        let f = Source::Flag;
        if let Some(v) = &flags.data_dir {
            self.data_dir = v.clone();
            self.set("data_dir", f);
        }
        if let Some(v) = &flags.node_id {
            self.node_id = Some(check_node_id("node_id", "--node-id", v)?);
            self.set("node_id", f);
        }
        if let Some(v) = &flags.transport_host {
            self.transport_host = check_host("transport.host", "--transport-host", v)?;
            self.set("transport.host", f);
        }
        if let Some(v) = &flags.transport_port {
            let (k, s) = ("transport.port", "--transport-port");
            self.transport_port = parse_port(k, s, parse_i64(k, s, v)?)?;
            self.set("transport.port", f);
        }
        if !flags.peers.is_empty() {
            self.peers = flags
                .peers
                .iter()
                .map(|p| parse_peer("peers", "--peer", p))
                .collect::<Result<_, _>>()?;
            self.set("peers", f);
        }
        if flags.discovery {
            self.discovery_enabled = true;
            self.set("discovery.enabled", f);
        }
        if let Some(v) = &flags.log_level {
            self.log_level = parse_level("log_level", "--log-level", v)?;
            self.set("log_level", f);
        }
        Ok(())
    }

    /// The WAL path: `wal`, or `<data_dir>/node.wal`.
    pub fn wal_path(&self) -> PathBuf {
        self.wal
            .clone()
            .unwrap_or_else(|| data_dir::wal_path(&self.data_dir))
    }

    /// The control socket of a node running on this data directory.
    pub fn socket_path(&self) -> PathBuf {
        self.data_dir.join(super::control::SOCKET_FILE)
    }

    /// Creates the data directory and settles the node id (stored or generated there).
    pub fn prepare_data_dir(&mut self) -> Result<(), CliError> {
        data_dir::ensure(&self.data_dir)?;
        if self.node_id.is_none() {
            self.node_id = Some(data_dir::stored_node_id(&self.data_dir)?);
            self.set("node_id", Source::DataDir);
        }
        Ok(())
    }

    pub fn node_id(&self) -> &str {
        self.node_id.as_deref().unwrap_or("")
    }

    /// Client options for these settings; `network` turns transport and discovery on as
    /// configured (for `node start`), off otherwise.
    pub fn client_options(&self, network: bool) -> ClientOptions {
        let wal = self.wal_path();
        let mut o = ClientOptions::persistent(self.node_id(), &wal.to_string_lossy());
        o.auto_flush = self.auto_flush;
        o.display_name = self.display_name.clone();
        o.sync_batch_size = self.sync_batch_size;
        o.max_sync_retries = self.sync_max_retries;
        o.ack_timeout_ms = self.sync_ack_timeout_ms;
        o.retry_interval_ms = self.sync_retry_interval_ms;
        o.max_clock_drift_ms = self.sync_max_clock_drift_ms;
        o.enable_transport = network && self.transport_enabled;
        o.transport_host = self.transport_host.clone();
        o.transport_port = self.transport_port;
        o.enable_discovery = network && self.discovery_enabled;
        o.discovery_host = self.discovery_host.clone();
        o.discovery_port = self.discovery_port;
        o.discovery_broadcast_host = self.discovery_broadcast_host.clone();
        o.discovery_broadcast_port = self.discovery_broadcast_port;
        o
    }

    /// Every key with its effective value and source, in documentation order.
    pub fn entries(&self) -> Vec<(&'static str, String, Source)> {
        let yes = |b: bool| b.to_string();
        let wal = self.wal_path().display().to_string();
        let rows: Vec<(&'static str, String)> = vec![
            (
                "config",
                match &self.config_file {
                    Some(p) => p.display().to_string(),
                    None => "(none)".into(),
                },
            ),
            ("node_id", self.node_id().to_string()),
            (
                "display_name",
                if self.display_name.is_empty() {
                    self.node_id().to_string()
                } else {
                    self.display_name.clone()
                },
            ),
            ("data_dir", self.data_dir.display().to_string()),
            ("wal", wal),
            ("auto_flush", yes(self.auto_flush)),
            ("transport.enabled", yes(self.transport_enabled)),
            ("transport.host", self.transport_host.clone()),
            ("transport.port", self.transport_port.to_string()),
            ("discovery.enabled", yes(self.discovery_enabled)),
            ("discovery.host", self.discovery_host.clone()),
            ("discovery.port", self.discovery_port.to_string()),
            (
                "discovery.broadcast_host",
                self.discovery_broadcast_host.clone(),
            ),
            (
                "discovery.broadcast_port",
                self.discovery_broadcast_port.to_string(),
            ),
            (
                "peers",
                self.peers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("sync.batch_size", self.sync_batch_size.to_string()),
            ("sync.max_retries", self.sync_max_retries.to_string()),
            ("sync.ack_timeout_ms", self.sync_ack_timeout_ms.to_string()),
            (
                "sync.retry_interval_ms",
                self.sync_retry_interval_ms.to_string(),
            ),
            (
                "sync.max_clock_drift_ms",
                self.sync_max_clock_drift_ms.to_string(),
            ),
            ("tick_interval_ms", self.tick_interval_ms.to_string()),
            ("log_level", self.log_level.to_string().to_lowercase()),
        ];
        rows.into_iter()
            .map(|(k, v)| (k, v, self.source(k)))
            .collect()
    }
}

/// The config file's keys, by table ("" for the top level).
const KNOWN_KEYS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "node_id",
            "display_name",
            "data_dir",
            "wal",
            "auto_flush",
            "transport",
            "discovery",
            "peers",
            "sync",
            "tick_interval_ms",
            "log_level",
        ],
    ),
    ("transport", &["enabled", "host", "port"]),
    (
        "discovery",
        &[
            "enabled",
            "host",
            "port",
            "broadcast_host",
            "broadcast_port",
        ],
    ),
    (
        "sync",
        &[
            "batch_size",
            "max_retries",
            "ack_timeout_ms",
            "retry_interval_ms",
            "max_clock_drift_ms",
        ],
    ),
];

/// Refuses an unknown key, naming it with its table (`transport.prot`).
fn check_keys(table: &toml::Table, path: &Path) -> Result<(), CliError> {
    let known = |section: &str| {
        KNOWN_KEYS
            .iter()
            .find(|(s, _)| *s == section)
            .map_or(&[][..], |(_, k)| k)
    };
    let unknown = |key: String, section: &str| {
        CliError::usage(format!(
            "invalid configuration: config file {}: unknown key `{key}` (known keys{}: {})",
            path.display(),
            if section.is_empty() {
                String::new()
            } else {
                format!(" in [{section}]")
            },
            known(section).join(", ")
        ))
    };
    for (key, value) in table {
        if !known("").contains(&key.as_str()) {
            return Err(unknown(key.clone(), ""));
        }
        if let (Some(nested), true) = (value.as_table(), !known(key).is_empty()) {
            for inner in nested.keys() {
                if !known(key).contains(&inner.as_str()) {
                    return Err(unknown(format!("{key}.{inner}"), key));
                }
            }
        }
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<FileConfig, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::usage(format!(
            "invalid configuration: cannot read config file {}: {e}",
            path.display()
        ))
    })?;
    if let Ok(table) = toml::from_str::<toml::Table>(&text) {
        check_keys(&table, path)?;
    }
    toml::from_str(&text).map_err(|e| {
        CliError::usage(format!(
            "invalid configuration: config file {}: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: Option<&str>, env: &[(&str, &str)], flags: Flags) -> Result<Settings, String> {
        let dir = tempfile::tempdir().unwrap();
        let mut flags = flags;
        if let Some(text) = file {
            let path = dir.path().join("softadastra.toml");
            std::fs::write(&path, text).unwrap();
            flags.config = Some(path);
        }
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        Settings::load(&flags, &lookup).map_err(|e| e.message)
    }

    #[test]
    fn precedence_is_flag_then_environment_then_file_then_default() {
        let file = "[transport]\nport = 9601\nhost = \"127.0.0.1\"\n";
        let s = load(Some(file), &[], Flags::default()).unwrap();
        assert_eq!(s.transport_port, 9601);
        assert_eq!(s.source("transport.port"), Source::File);
        let env = [("SOFTADASTRA_TRANSPORT_PORT", "9602")];
        let s = load(Some(file), &env, Flags::default()).unwrap();
        assert_eq!(
            (s.transport_port, s.source("transport.port")),
            (9602, Source::Env)
        );
        let flags = Flags {
            transport_port: Some("9603".into()),
            ..Flags::default()
        };
        let s = load(Some(file), &env, flags).unwrap();
        assert_eq!(
            (s.transport_port, s.source("transport.port")),
            (9603, Source::Flag)
        );
        assert_eq!(s.transport_host, "127.0.0.1");
        let s = load(None, &[], Flags::default()).unwrap();
        assert_eq!(
            (s.transport_port, s.source("transport.port")),
            (9500, Source::Default)
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = load(Some("colour = true\n"), &[], Flags::default()).unwrap_err();
        assert!(e.contains("colour"), "{e}");
        let e = load(Some("[sync]\nbatch = 3\n"), &[], Flags::default()).unwrap_err();
        assert!(e.contains("`sync.batch`"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = load(Some("[transport]\nport = 70000\n"), &[], Flags::default()).unwrap_err();
        assert!(e.contains("transport.port") && e.contains("70000"), "{e}");
        let e = load(None, &[("SOFTADASTRA_NODE_ID", "bad id")], Flags::default()).unwrap_err();
        assert!(
            e.contains("node_id") && e.contains("SOFTADASTRA_NODE_ID"),
            "{e}"
        );
        let e = load(Some("peers = [\"nohost\"]\n"), &[], Flags::default()).unwrap_err();
        assert!(e.contains("peers"), "{e}");
        let e = load(None, &[("SOFTADASTRA_LOG_LEVEL", "loud")], Flags::default()).unwrap_err();
        assert!(e.contains("log_level"), "{e}");
    }

    #[test]
    fn peers_parse_as_id_at_host_colon_port() {
        let p = parse_peer("peers", "test", "till-2@192.0.2.7:9500").unwrap();
        assert_eq!(
            (p.node_id.as_str(), p.host.as_str(), p.port),
            ("till-2", "192.0.2.7", 9500)
        );
        assert!(parse_peer("peers", "test", "till-2@host:0").is_err());
    }
}
