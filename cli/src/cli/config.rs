//! The CLI's configuration: defaults, a TOML file, `SOFTADASTRA_*` environment variables and
//! flags, in that order of increasing precedence. Every key is documented in
//! docs/configuration.md. A bad value is reported naming the key and where it came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::data_dir;
use softadastra::ClientOptions;

use super::CliError;

/// Where a setting's value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Default,
    File,
    Env,
    Flag,
    /// Bound to the data directory (the node id: stored there on first use).
    DataDir,
}

impl Source {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Default => "default",
            Source::File => "config file",
            Source::Env => "environment",
            Source::Flag => "flag",
            Source::DataDir => "data dir",
        }
    }
}

/// Every configuration key, in documentation order: the one table the file, the
/// environment and the display are driven by. In the config file, `a.b` is key `b` of the
/// table `[a]`; its environment variable is `SOFTADASTRA_A_B` ([`env_var`]). Each key is
/// parsed and set in one place ([`Settings::apply`]), shown in one place
/// ([`Settings::value_of`]), and documented in docs/configuration.md.
pub(crate) const KEYS: &[&str] = &[
    "node_id",
    "display_name",
    "data_dir",
    "wal",
    "auto_flush",
    "storage.segment_size",
    "storage.auto_compact",
    "storage.compact_log_bytes",
    "storage.tombstone_horizon_ms",
    "transport.enabled",
    "transport.host",
    "transport.port",
    "transport.insecure",
    "transport.handshake_timeout_ms",
    "discovery.enabled",
    "discovery.host",
    "discovery.port",
    "discovery.broadcast_host",
    "discovery.broadcast_port",
    "peers",
    "sync.batch_size",
    "sync.max_retries",
    "sync.ack_timeout_ms",
    "sync.retry_interval_ms",
    "sync.max_clock_drift_ms",
    "sync.push_key_limit",
    "tick_interval_ms",
    "log_level",
    "metrics.addr",
    "health.exit_after_ms",
];

/// The environment variable of `key`: `SOFTADASTRA_` and the key in capitals, `.` as `_`.
pub(crate) fn env_var(key: &str) -> String {
    format!("SOFTADASTRA_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// A value from one source, before it is checked: from the config file, or the text of
/// an environment variable or a flag.
#[derive(Clone, Copy)]
enum Raw<'a> {
    Toml(&'a toml::Value),
    Text(&'a str),
}

impl Raw<'_> {
    fn mismatch(self, key: &str, source: &str, expected: &str) -> CliError {
        let found = match self {
            Raw::Toml(v) => v.type_str(),
            Raw::Text(_) => "text",
        };
        bad(key, source, format!("expected {expected}, found {found}"))
    }

    fn text(self, key: &str, source: &str) -> Result<String, CliError> {
        match self {
            Raw::Text(t) => Ok(t.to_string()),
            Raw::Toml(toml::Value::String(t)) => Ok(t.clone()),
            other @ Raw::Toml(_) => Err(other.mismatch(key, source, "a string")),
        }
    }

    fn int(self, key: &str, source: &str) -> Result<i64, CliError> {
        match self {
            Raw::Text(t) => parse_i64(key, source, t),
            Raw::Toml(toml::Value::Integer(n)) => Ok(*n),
            other @ Raw::Toml(_) => Err(other.mismatch(key, source, "an integer")),
        }
    }

    fn boolean(self, key: &str, source: &str) -> Result<bool, CliError> {
        match self {
            Raw::Text(t) => parse_bool(key, source, t),
            Raw::Toml(toml::Value::Boolean(b)) => Ok(*b),
            other @ Raw::Toml(_) => Err(other.mismatch(key, source, "a boolean")),
        }
    }

    /// A list: a TOML array of strings, or comma-separated text.
    fn list(self, key: &str, source: &str) -> Result<Vec<String>, CliError> {
        match self {
            Raw::Text(t) => Ok(t
                .split(',')
                .filter(|p| !p.trim().is_empty())
                .map(str::to_string)
                .collect()),
            Raw::Toml(toml::Value::Array(items)) => items
                .iter()
                .map(|item| Raw::Toml(item).text(key, source))
                .collect(),
            other @ Raw::Toml(_) => Err(other.mismatch(key, source, "an array of strings")),
        }
    }
}

/// A peer to connect to, from `peers` ("id@host:port", or "id@host:port#fingerprint" to
/// trust its key too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PeerSpec {
    pub node_id: String,
    pub host: String,
    pub port: u16,
    /// The fingerprint of its key, normalised (64 lowercase hex digits).
    pub fingerprint: Option<String>,
}

impl std::fmt::Display for PeerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}:{}", self.node_id, self.host, self.port)?;
        match &self.fingerprint {
            Some(fp) => write!(f, "#{fp}"),
            None => Ok(()),
        }
    }
}

/// Values given on the command line (`None`: not given).
#[derive(Clone, Debug, Default)]
pub(crate) struct Flags {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub node_id: Option<String>,
    pub transport_host: Option<String>,
    pub transport_port: Option<String>,
    pub peers: Vec<String>,
    pub discovery: bool,
    pub log_level: Option<String>,
    pub metrics_addr: Option<String>,
}

/// The effective configuration.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub config_file: Option<PathBuf>,
    /// The configured node id; after `data_dir::resolve`, the one bound to the data
    /// directory.
    pub node_id: Option<String>,
    pub display_name: String,
    pub data_dir: PathBuf,
    /// `None`: `<data_dir>/node.wal`.
    pub wal: Option<PathBuf>,
    pub auto_flush: bool,
    pub storage_segment_size: u64,
    pub storage_auto_compact: bool,
    pub storage_compact_log_bytes: u64,
    pub storage_tombstone_horizon_ms: u64,
    pub transport_enabled: bool,
    pub transport_host: String,
    pub transport_port: u16,
    /// Plaintext connections accepting any peer: tests only.
    pub transport_insecure: bool,
    pub transport_handshake_timeout_ms: u32,
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
    pub sync_push_key_limit: usize,
    pub tick_interval_ms: u64,
    pub log_level: log::LevelFilter,
    /// Where `node start` serves /metrics and /healthz (`None`: off).
    pub metrics_addr: Option<String>,
    /// How long `node start` keeps running after its writes are refused before it exits
    /// (status 1) for its service manager to restart it.
    pub health_exit_after_ms: u64,
    sources: BTreeMap<&'static str, Source>,
}

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
            storage_segment_size: o.wal_segment_size,
            storage_auto_compact: o.auto_compact,
            storage_compact_log_bytes: o.compact_log_bytes,
            storage_tombstone_horizon_ms: o.tombstone_horizon_ms,
            transport_enabled: true,
            transport_host: "0.0.0.0".into(),
            transport_port: 9500,
            transport_insecure: false,
            transport_handshake_timeout_ms: o.handshake_timeout_ms,
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
            sync_push_key_limit: o.sync_push_key_limit,
            tick_interval_ms: 1000,
            log_level: log::LevelFilter::Info,
            metrics_addr: None,
            health_exit_after_ms: 60_000,
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
    softadastra::validate_node_id(v).map_err(|e| bad(key, source, e))?;
    Ok(v.to_string())
}

fn check_host(key: &str, source: &str, v: &str) -> Result<String, CliError> {
    if v.trim().is_empty() {
        return Err(bad(key, source, "must not be empty"));
    }
    Ok(v.to_string())
}

/// Checks "HOST:PORT" ("[v6]:PORT" for an IPv6 address; port 0 picks a free one); the host
/// is resolved when the node starts.
fn check_listen_addr(key: &str, source: &str, v: &str) -> Result<String, CliError> {
    let v = v.trim();
    let (host, port) = v
        .rsplit_once(':')
        .ok_or_else(|| bad(key, source, format!("'{v}' is not HOST:PORT")))?;
    if host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .is_empty()
    {
        return Err(bad(key, source, format!("'{v}' has no host")));
    }
    if port.parse::<u16>().is_err() {
        return Err(bad(
            key,
            source,
            format!("'{v}': '{port}' is not a port (0-65535)"),
        ));
    }
    Ok(v.to_string())
}

/// Parses "id@host:port".
pub(crate) fn parse_peer(key: &str, source: &str, v: &str) -> Result<PeerSpec, CliError> {
    let expected = "expected id@host:port or id@host:port#fingerprint";
    let (v_addr, fingerprint) = match v.trim().split_once('#') {
        Some((addr, fp)) => (
            addr,
            Some(
                softadastra::parse_fingerprint(fp)
                    .map_err(|e| bad(key, source, format!("'{v}': {e}")))?,
            ),
        ),
        None => (v.trim(), None),
    };
    let (id, addr) = v_addr
        .split_once('@')
        .ok_or_else(|| bad(key, source, format!("'{v}': {expected}")))?;
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| bad(key, source, format!("'{v}': {expected}")))?;
    softadastra::validate_node_id(id).map_err(|e| bad(key, source, format!("'{v}': {e}")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad(key, source, format!("'{v}': {expected}")));
    }
    let port = parse_port(key, source, parse_i64(key, source, port)?)?;
    Ok(PeerSpec {
        node_id: id.to_string(),
        host: host.to_string(),
        port,
        fingerprint,
    })
}

impl Settings {
    fn set(&mut self, key: &'static str, source: Source) {
        self.sources.insert(key, source);
    }

    /// Where `key`'s value came from.
    pub(crate) fn source(&self, key: &str) -> Source {
        self.sources.get(key).copied().unwrap_or(Source::Default)
    }

    /// Resolves defaults, the config file, the environment and the flags. `env` looks a
    /// variable up (the process environment in the binary).
    pub(crate) fn load(
        flags: &Flags,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, CliError> {
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
            let table = read_file(path)?;
            s.apply_file(&table, &path.display().to_string())?;
            s.config_file = Some(path.clone());
        }
        s.apply_env(env)?;
        s.apply_flags(flags)?;
        Ok(s)
    }

    /// Checks `raw` as the value of `key` and sets it; `source` names where it came from
    /// in a message (a file, a variable or a flag).
    fn apply(
        &mut self,
        key: &'static str,
        raw: Raw<'_>,
        source: &str,
        from: Source,
    ) -> Result<(), CliError> {
        let (k, s) = (key, source);
        match key {
            "node_id" => self.node_id = Some(check_node_id(k, s, &raw.text(k, s)?)?),
            "display_name" => self.display_name = raw.text(k, s)?,
            "data_dir" => self.data_dir = PathBuf::from(raw.text(k, s)?),
            "wal" => self.wal = Some(PathBuf::from(raw.text(k, s)?)),
            "auto_flush" => self.auto_flush = raw.boolean(k, s)?,
            "storage.segment_size" => {
                self.storage_segment_size = parse_int(k, s, raw.int(k, s)?, 4096)?;
            }
            "storage.auto_compact" => self.storage_auto_compact = raw.boolean(k, s)?,
            "storage.compact_log_bytes" => {
                self.storage_compact_log_bytes = parse_int(k, s, raw.int(k, s)?, 0)?;
            }
            "storage.tombstone_horizon_ms" => {
                self.storage_tombstone_horizon_ms = parse_int(k, s, raw.int(k, s)?, 0)?;
            }
            "transport.enabled" => self.transport_enabled = raw.boolean(k, s)?,
            "transport.host" => self.transport_host = check_host(k, s, &raw.text(k, s)?)?,
            "transport.port" => self.transport_port = parse_port(k, s, raw.int(k, s)?)?,
            "transport.insecure" => self.transport_insecure = raw.boolean(k, s)?,
            "transport.handshake_timeout_ms" => {
                self.transport_handshake_timeout_ms = parse_int(k, s, raw.int(k, s)?, 1)?;
            }
            "discovery.enabled" => self.discovery_enabled = raw.boolean(k, s)?,
            "discovery.host" => self.discovery_host = check_host(k, s, &raw.text(k, s)?)?,
            "discovery.port" => self.discovery_port = parse_port(k, s, raw.int(k, s)?)?,
            "discovery.broadcast_host" => {
                self.discovery_broadcast_host = check_host(k, s, &raw.text(k, s)?)?;
            }
            "discovery.broadcast_port" => {
                self.discovery_broadcast_port = parse_port(k, s, raw.int(k, s)?)?;
            }
            "peers" => {
                self.peers = raw
                    .list(k, s)?
                    .iter()
                    .map(|p| parse_peer(k, s, p))
                    .collect::<Result<_, _>>()?;
            }
            "sync.batch_size" => self.sync_batch_size = parse_int(k, s, raw.int(k, s)?, 1)?,
            "sync.max_retries" => self.sync_max_retries = parse_int(k, s, raw.int(k, s)?, 0)?,
            "sync.ack_timeout_ms" => self.sync_ack_timeout_ms = parse_int(k, s, raw.int(k, s)?, 1)?,
            "sync.retry_interval_ms" => {
                self.sync_retry_interval_ms = parse_int(k, s, raw.int(k, s)?, 0)?;
            }
            "sync.max_clock_drift_ms" => {
                self.sync_max_clock_drift_ms = parse_int(k, s, raw.int(k, s)?, 0)?;
            }
            "sync.push_key_limit" => {
                self.sync_push_key_limit = parse_int(k, s, raw.int(k, s)?, 1)?;
            }
            "tick_interval_ms" => self.tick_interval_ms = parse_int(k, s, raw.int(k, s)?, 1)?,
            "log_level" => self.log_level = parse_level(k, s, &raw.text(k, s)?)?,
            "metrics.addr" => {
                let text = raw.text(k, s)?;
                // Empty: off (the default), e.g. to turn off an address a file set.
                self.metrics_addr = if text.trim().is_empty() {
                    None
                } else {
                    Some(check_listen_addr(k, s, &text)?)
                };
            }
            "health.exit_after_ms" => {
                self.health_exit_after_ms = parse_int(k, s, raw.int(k, s)?, 0)?;
            }
            other => unreachable!("configuration key {other} is in KEYS but not here"),
        }
        self.set(key, from);
        Ok(())
    }

    fn apply_file(&mut self, table: &toml::Table, path: &str) -> Result<(), CliError> {
        let source = format!("config file {path}");
        for &key in KEYS {
            let value = match key.split_once('.') {
                Some((section, name)) => table
                    .get(section)
                    .and_then(toml::Value::as_table)
                    .and_then(|t| t.get(name)),
                None => table.get(key),
            };
            if let Some(value) = value {
                self.apply(key, Raw::Toml(value), &source, Source::File)?;
            }
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), CliError> {
        for &key in KEYS {
            let var = env_var(key);
            let Some(v) = env(&var).filter(|v| !v.is_empty()) else {
                continue;
            };
            self.apply(key, Raw::Text(&v), &var, Source::Env)?;
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
        if let Some(v) = &flags.metrics_addr {
            self.metrics_addr = Some(check_listen_addr("metrics.addr", "--metrics-addr", v)?);
            self.set("metrics.addr", f);
        }
        Ok(())
    }

    /// The WAL path: `wal`, or `<data_dir>/node.wal`.
    pub(crate) fn wal_path(&self) -> PathBuf {
        self.wal
            .clone()
            .unwrap_or_else(|| data_dir::wal_path(&self.data_dir))
    }

    /// The control socket of a node running on this data directory
    /// ([`super::control::socket_path`]: in it, unless its path is too long).
    pub(crate) fn socket_path(&self) -> PathBuf {
        super::control::socket_path(&self.data_dir)
    }

    /// Takes `id`, the one bound to the data directory, as the node id.
    pub(crate) fn adopt_node_id(&mut self, id: String) {
        self.node_id = Some(id);
        self.set("node_id", Source::DataDir);
    }

    pub(crate) fn node_id(&self) -> &str {
        self.node_id.as_deref().unwrap_or("")
    }

    /// Client options for these settings; `network` turns transport and discovery on as
    /// configured (for `node start`), off otherwise.
    pub(crate) fn client_options(&self, network: bool) -> ClientOptions {
        let wal = self.wal_path();
        let mut o = ClientOptions::persistent(self.node_id(), &wal.to_string_lossy());
        o.auto_flush = self.auto_flush;
        o.wal_segment_size = self.storage_segment_size;
        o.auto_compact = self.storage_auto_compact;
        o.compact_log_bytes = self.storage_compact_log_bytes;
        o.tombstone_horizon_ms = self.storage_tombstone_horizon_ms;
        o.display_name = self.display_name.clone();
        o.sync_batch_size = self.sync_batch_size;
        o.max_sync_retries = self.sync_max_retries;
        o.ack_timeout_ms = self.sync_ack_timeout_ms;
        o.retry_interval_ms = self.sync_retry_interval_ms;
        o.max_clock_drift_ms = self.sync_max_clock_drift_ms;
        o.sync_push_key_limit = self.sync_push_key_limit;
        o.enable_transport = network && self.transport_enabled;
        o.transport_host = self.transport_host.clone();
        o.transport_port = self.transport_port;
        o.insecure_transport = self.transport_insecure;
        o.handshake_timeout_ms = self.transport_handshake_timeout_ms;
        o.enable_discovery = network && self.discovery_enabled;
        o.discovery_host = self.discovery_host.clone();
        o.discovery_port = self.discovery_port;
        o.discovery_broadcast_host = self.discovery_broadcast_host.clone();
        o.discovery_broadcast_port = self.discovery_broadcast_port;
        o
    }

    /// Every key with its effective value and source, in documentation order (the config
    /// file first).
    pub(crate) fn entries(&self) -> Vec<(&'static str, String, Source)> {
        let config = match &self.config_file {
            Some(p) => p.display().to_string(),
            None => "(none)".into(),
        };
        std::iter::once(("config", config))
            .chain(KEYS.iter().map(|&k| (k, self.value_of(k))))
            .map(|(k, v)| (k, v, self.source(k)))
            .collect()
    }

    /// The effective value of `key`, as shown to the user.
    fn value_of(&self, key: &str) -> String {
        match key {
            "node_id" => self.node_id().to_string(),
            "display_name" if self.display_name.is_empty() => self.node_id().to_string(),
            "display_name" => self.display_name.clone(),
            "data_dir" => self.data_dir.display().to_string(),
            "wal" => self.wal_path().display().to_string(),
            "auto_flush" => self.auto_flush.to_string(),
            "transport.enabled" => self.transport_enabled.to_string(),
            "transport.host" => self.transport_host.clone(),
            "transport.port" => self.transport_port.to_string(),
            "storage.segment_size" => self.storage_segment_size.to_string(),
            "storage.auto_compact" => self.storage_auto_compact.to_string(),
            "storage.compact_log_bytes" => self.storage_compact_log_bytes.to_string(),
            "storage.tombstone_horizon_ms" => self.storage_tombstone_horizon_ms.to_string(),
            "transport.insecure" => self.transport_insecure.to_string(),
            "transport.handshake_timeout_ms" => self.transport_handshake_timeout_ms.to_string(),
            "discovery.enabled" => self.discovery_enabled.to_string(),
            "discovery.host" => self.discovery_host.clone(),
            "discovery.port" => self.discovery_port.to_string(),
            "discovery.broadcast_host" => self.discovery_broadcast_host.clone(),
            "discovery.broadcast_port" => self.discovery_broadcast_port.to_string(),
            "peers" => self
                .peers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            "sync.batch_size" => self.sync_batch_size.to_string(),
            "sync.max_retries" => self.sync_max_retries.to_string(),
            "sync.ack_timeout_ms" => self.sync_ack_timeout_ms.to_string(),
            "sync.retry_interval_ms" => self.sync_retry_interval_ms.to_string(),
            "sync.max_clock_drift_ms" => self.sync_max_clock_drift_ms.to_string(),
            "sync.push_key_limit" => self.sync_push_key_limit.to_string(),
            "tick_interval_ms" => self.tick_interval_ms.to_string(),
            "log_level" => self.log_level.to_string().to_lowercase(),
            "metrics.addr" => self.metrics_addr.clone().unwrap_or_else(|| "off".into()),
            "health.exit_after_ms" => self.health_exit_after_ms.to_string(),
            other => unreachable!("configuration key {other} is in KEYS but not here"),
        }
    }
}

/// The names the config file knows in `section` ("" for the top level: keys and tables).
fn known_in(section: &str) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = KEYS
        .iter()
        .filter_map(|k| match k.split_once('.') {
            Some((s, name)) if s == section => Some(name),
            Some((s, _)) if section.is_empty() => Some(s),
            None if section.is_empty() => Some(*k),
            _ => None,
        })
        .collect();
    names.dedup();
    names
}

/// Refuses an unknown key, naming it with its table (`transport.prot`), and a table
/// given as a plain value.
fn check_keys(table: &toml::Table, path: &Path) -> Result<(), CliError> {
    let unknown = |key: String, section: &str| {
        CliError::usage(format!(
            "invalid configuration: config file {}: unknown key `{key}` (known keys{}: {})",
            path.display(),
            if section.is_empty() {
                String::new()
            } else {
                format!(" in [{section}]")
            },
            known_in(section).join(", ")
        ))
    };
    for (key, value) in table {
        if !known_in("").contains(&key.as_str()) {
            return Err(unknown(key.clone(), ""));
        }
        let inner = known_in(key);
        if inner.is_empty() {
            continue; // a plain key: its value is checked when applied
        }
        let Some(nested) = value.as_table() else {
            let source = format!("config file {}", path.display());
            return Err(Raw::Toml(value).mismatch(key, &source, &format!("a table [{key}]")));
        };
        for name in nested.keys() {
            if !inner.contains(&name.as_str()) {
                return Err(unknown(format!("{key}.{name}"), key));
            }
        }
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<toml::Table, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::usage(format!(
            "invalid configuration: cannot read config file {}: {e}",
            path.display()
        ))
    })?;
    let table = toml::from_str::<toml::Table>(&text).map_err(|e| {
        CliError::usage(format!(
            "invalid configuration: config file {}: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })?;
    check_keys(&table, path)?;
    Ok(table)
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

    /// A valid value for every key, as text (an environment variable) and as TOML.
    fn sample(key: &str) -> (&'static str, &'static str) {
        match key {
            "node_id" => ("env-node", "\"file-node\""),
            "display_name" => ("Till 3", "\"Till 3\""),
            "data_dir" | "wal" => ("/tmp/sa-sample", "\"/tmp/sa-sample\""),
            k if k.ends_with("enabled") || k == "auto_flush" || k == "storage.auto_compact" => {
                ("false", "false")
            }
            "storage.segment_size" => ("65536", "65536"),
            "transport.insecure" => ("true", "true"),
            k if k.ends_with("host") => ("127.0.0.2", "\"127.0.0.2\""),
            k if k.ends_with("port") => ("4321", "4321"),
            "peers" => ("p-1@127.0.0.1:4000", "[\"p-1@127.0.0.1:4000\"]"),
            "metrics.addr" => ("127.0.0.1:9464", "\"127.0.0.1:9464\""),
            "log_level" => ("debug", "\"debug\""),
            _ => ("7", "7"),
        }
    }

    #[test]
    fn every_key_is_read_from_its_variable_and_from_the_file_and_shown_with_its_source() {
        for &key in KEYS {
            let (text, toml_value) = sample(key);
            let var = env_var(key);
            let s = load(None, &[(&var, text)], Flags::default()).unwrap();
            assert_eq!(s.source(key), Source::Env, "{key} from {var}");
            let file = match key.split_once('.') {
                Some((table, name)) => format!("[{table}]\n{name} = {toml_value}\n"),
                None => format!("{key} = {toml_value}\n"),
            };
            let s = load(Some(&file), &[], Flags::default()).unwrap();
            assert_eq!(s.source(key), Source::File, "{key} from the file");
            let shown = s.entries().into_iter().find(|(k, _, _)| k == &key);
            assert!(
                shown.is_some_and(|(_, _, src)| src == Source::File),
                "{key} shown"
            );
        }
    }

    #[test]
    fn every_key_is_documented_with_its_variable() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/configuration.md"
        ))
        .unwrap();
        for &key in KEYS {
            assert!(
                doc.contains(&format!("| `{key}` |")),
                "{key} is not documented"
            );
            assert!(
                doc.contains(&env_var(key)),
                "{} is not documented",
                env_var(key)
            );
        }
    }

    #[test]
    fn a_table_given_as_a_value_and_a_value_of_the_wrong_type_are_refused() {
        let e = load(Some("transport = 5\n"), &[], Flags::default()).unwrap_err();
        assert!(
            e.contains("transport") && e.contains("expected a table"),
            "{e}"
        );
        let e = load(Some("[transport]\nport = \"x\"\n"), &[], Flags::default()).unwrap_err();
        assert!(
            e.contains("transport.port") && e.contains("expected an integer"),
            "{e}"
        );
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
    fn the_metrics_address_is_host_colon_port_and_off_by_default() {
        let s = load(None, &[], Flags::default()).unwrap();
        assert_eq!(s.metrics_addr, None);
        assert_eq!(s.value_of("metrics.addr"), "off");
        let s = load(
            Some("[metrics]\naddr = \"[::1]:0\"\n"),
            &[],
            Flags::default(),
        )
        .unwrap();
        assert_eq!(s.metrics_addr.as_deref(), Some("[::1]:0"));
        let flags = Flags {
            metrics_addr: Some("127.0.0.1:9464".into()),
            ..Flags::default()
        };
        let env = [("SOFTADASTRA_METRICS_ADDR", "127.0.0.1:1")];
        let s = load(None, &env, flags).unwrap();
        assert_eq!(
            (s.metrics_addr.as_deref(), s.source("metrics.addr")),
            (Some("127.0.0.1:9464"), Source::Flag)
        );
        for bad in ["9464", "127.0.0.1:70000", ":9464", "127.0.0.1:http"] {
            let e = load(None, &[("SOFTADASTRA_METRICS_ADDR", bad)], Flags::default()).unwrap_err();
            assert!(
                e.contains("metrics.addr") && e.contains("SOFTADASTRA_METRICS_ADDR"),
                "{bad}: {e}"
            );
        }
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
