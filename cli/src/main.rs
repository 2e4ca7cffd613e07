//! The `softadastra` command. Parsing and printing only: every action is a `Client` call,
//! made on the data directory directly, or by a running node (`node start`) reached through
//! its control socket.
//!
//! Exit codes: 0 success, 1 failure (e.g. key not found, node cannot start), 2 invalid usage
//! (including bad configuration).

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use softadastra::Client;

use cli::backup;
use cli::config::{Flags, Settings};
use cli::control::{self, Request};
use cli::data_dir::{self, Access};
use cli::output::{self, Out};
use cli::{CliError, JSON_SCHEMA_VERSION};

#[derive(Parser)]
#[command(
    name = "softadastra",
    version,
    about = "Softadastra local-first runtime",
    after_help = "Configuration precedence: flag > SOFTADASTRA_* environment > config file > \
                  default (docs/configuration.md)."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// Directory holding the node's WAL, its node id and its control socket
    /// [env: SOFTADASTRA_DATA_DIR] [default: data].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Node id. Bound to the data directory on first use (stored in <DIR>/node-id;
    /// generated when none is given), after which another id is refused (exit 2) unless
    /// --change-node-id is given [env: SOFTADASTRA_NODE_ID].
    #[arg(long, global = true, value_name = "ID")]
    node_id: Option<String>,
    /// Change the node id bound to the data directory to the configured one (--node-id,
    /// SOFTADASTRA_NODE_ID or the config file), with a command that writes. The old
    /// identity key is set aside and a new one made: peers must trust the node again.
    /// Refused while a node runs on the directory.
    #[arg(long, global = true)]
    change_node_id: bool,
    /// TOML configuration file [env: SOFTADASTRA_CONFIG].
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print JSON (docs/cli-json.md) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// No colours (also when NO_COLOR is set, or stdout is not a terminal).
    #[arg(long, global = true)]
    no_color: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version.
    Version,
    /// Show Softadastra runtime status.
    Status,
    /// Manage the local Softadastra node.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Read and write local store values.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Inspect and run local sync.
    #[command(subcommand)]
    Sync(SyncCommand),
    /// List discovery and transport peers, and the trusted ones; trust or untrust a peer.
    Peers(PeersArgs),
    /// Back up the node into DIR (new or empty) while it runs, or check a backup
    /// (docs/backup.md).
    Backup(BackupArgs),
    /// Restore a backup into the data directory (--data-dir); the node must not run.
    Restore(RestoreArgs),
    /// Print the running node's metrics (the Prometheus text its /metrics serves,
    /// docs/monitoring.md); fails when no node runs on the data directory.
    Metrics,
    /// Inspect the data directory's WAL, or salvage its good part into a new data
    /// directory (docs/wal-format.md). Runs on the files, without a node.
    #[command(subcommand)]
    Wal(WalCommand),
}

#[derive(Subcommand)]
enum WalCommand {
    /// List the snapshots and log files with their records, and every damaged place (file,
    /// byte offset, what). Reads only: changes nothing, takes no lock.
    Inspect {
        /// Also list every record (offset, number, type, size).
        #[arg(long)]
        records: bool,
    },
    /// Copy the newest intact snapshot and the unbroken run of good records after it, with
    /// the node's key, trusted peers and node id, into the new data directory DIR. The
    /// source is never changed; a node running on it is refused.
    Salvage {
        /// The new data directory: created when missing, else it must be empty.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Salvage into a data directory that is not empty: the node's files there are
        /// replaced; nothing else is touched.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct BackupArgs {
    #[command(subcommand)]
    action: Option<BackupCommand>,
    /// The directory to write the backup into: created when missing, else it must be
    /// empty. Holds the node's data and key: keep it as private as the key.
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Check a backup whole: its manifest, every file's size and checksum, the snapshot,
    /// the log and the key. Needs no node.
    Verify {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Args)]
struct RestoreArgs {
    /// The backup directory.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Restore into a data directory that is not empty: the node's own files there (its
    /// WAL, log segments, snapshots, key, trusted peers) are replaced; nothing else is
    /// touched.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct PeersArgs {
    #[command(subcommand)]
    action: Option<PeersCommand>,
}

#[derive(Subcommand)]
enum PeersCommand {
    /// Trust a peer's key (its fingerprint, from `softadastra node info` on that node) as
    /// its node id: connections from and to it are accepted from now on.
    Trust {
        /// The peer's node id. (Not named `node_id`: clap would take it for the global
        /// `--node-id`, this node's own.)
        #[arg(value_name = "NODE_ID")]
        peer_id: String,
        /// The SHA-256 fingerprint of its key: 64 hex digits.
        fingerprint: String,
    },
    /// Stop trusting a peer (by node id or fingerprint) and close its connections.
    Untrust {
        /// The peer's node id or fingerprint.
        peer: String,
    },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Show local node information.
    Info,
    /// Make the node in the data directory without starting it (binds its node id, makes
    /// its WAL and identity key) and show its information; on an existing node, only
    /// shows it.
    Init,
    /// Run the node until SIGINT/SIGTERM: transport, discovery when enabled, periodic sync
    /// ticks, and the control socket the other commands use.
    Start(StartArgs),
}

#[derive(Args)]
struct StartArgs {
    /// Transport listen address [config: transport.host].
    #[arg(long, value_name = "HOST")]
    transport_host: Option<String>,
    /// Transport TCP port [config: transport.port].
    #[arg(long, value_name = "PORT", alias = "port")]
    transport_port: Option<String>,
    /// A peer to connect to, "id@host:port#fingerprint" (the fingerprint trusts its key;
    /// without it the peer must be trusted already); repeat for several [config: peers].
    #[arg(long = "peer", value_name = "ID@HOST:PORT#FINGERPRINT")]
    peers: Vec<String>,
    /// Enable UDP discovery [config: discovery.enabled].
    #[arg(long)]
    discovery: bool,
    /// off, error, warn, info, debug or trace [config: log_level].
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Serve GET /metrics (Prometheus) and GET /healthz on HOST:PORT (port 0: a free
    /// one); off by default [config: metrics.addr].
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<String>,
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Write a key/value pair (a local write that syncs to peers). The value is VALUE, or
    /// the bytes of --value-file (any bytes, up to the store's limit of 16 MiB).
    Put {
        #[arg(allow_hyphen_values = true)]
        key: String,
        #[arg(
            allow_hyphen_values = true,
            required_unless_present = "value_file",
            conflicts_with = "value_file"
        )]
        value: Option<String>,
        /// Read the value from PATH ("-": standard input) instead of an argument, for
        /// large or binary values.
        #[arg(long, value_name = "PATH")]
        value_file: Option<PathBuf>,
    },
    /// Read one key.
    Get {
        #[arg(allow_hyphen_values = true)]
        key: String,
        /// Print the value's bytes only, exactly as stored (no table, no newline added),
        /// for pipes and files.
        #[arg(long)]
        raw: bool,
    },
    /// Remove one key (removing a missing key succeeds).
    Remove {
        #[arg(allow_hyphen_values = true)]
        key: String,
    },
    /// List keys, optionally only those starting with a prefix.
    List {
        #[arg(allow_hyphen_values = true)]
        prefix: Option<String>,
    },
    /// Write a snapshot of the live data and delete the log it covers (disk use and
    /// start-up time then follow the live data, not the history).
    Compact,
}

#[derive(Subcommand)]
enum SyncCommand {
    /// Show sync engine state; with KEY, where that key's latest change is on its way to
    /// peers (saved_locally, waiting_to_sync, syncing, synced, retrying, sync_failed,
    /// conflict_detected).
    Status {
        /// A key written on this node (or received from a peer). A key starting with '-'
        /// goes after '--'.
        key: Option<String>,
    },
    /// Queue failed work again (its attempts start over) and pending work (auto_queue off),
    /// for the next sync tick.
    Retry,
    /// Run one manual sync cycle.
    Tick {
        /// Also remove acknowledged operations from the outbox.
        #[arg(long)]
        prune: bool,
    },
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn flags(global: &Global, start: Option<&StartArgs>) -> Flags {
    let mut f = Flags {
        config: global.config.clone(),
        data_dir: global.data_dir.clone(),
        node_id: global.node_id.clone(),
        ..Flags::default()
    };
    if let Some(s) = start {
        f.transport_host = s.transport_host.clone();
        f.transport_port = s.transport_port.clone();
        f.peers = s.peers.clone();
        f.discovery = s.discovery;
        f.log_level = s.log_level.clone();
        f.metrics_addr = s.metrics_addr.clone();
    }
    f
}

/// How long a command waits for a node that announced it is starting
/// ([`data_dir::STARTING_FILE`]) to answer on its control socket: longer than the node
/// waits for the WAL's lock ([`cli::daemon::LOCK_WAIT`]).
const START_WAIT: Duration = Duration::from_secs(30);

/// Runs `request` on the running node if one answers on the data directory's control
/// socket, else on the data directory directly. While a node announces it is starting, the
/// command waits for it (up to [`START_WAIT`]) rather than take the WAL it is about to
/// lock. When the WAL is locked (another command holds it for a moment), tries both again
/// for up to 5 s.
fn dispatch(settings: &Settings, request: &Request) -> Result<Value, CliError> {
    let socket = settings.socket_path();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(5);
    loop {
        if socket.exists()
            && let Some(data) = control::send(&socket, request)?
        {
            return Ok(data);
        }
        if data_dir::start_announced(&settings.data_dir) && started.elapsed() < START_WAIT {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let client = Client::new(settings.client_options(false));
        match client.open() {
            Ok(()) => {
                let result = control::execute(&client, request, false);
                client.close()?;
                return result;
            }
            Err(e) if cli::wal_locked(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn json_document(command: &str, data: Value) -> Value {
    let mut doc = json!({ "schema_version": JSON_SCHEMA_VERSION, "command": command });
    if let (Some(doc), Value::Object(fields)) = (doc.as_object_mut(), data) {
        doc.extend(fields);
    }
    doc
}

fn start_node(out: &Out, settings: &Settings) -> Result<(), CliError> {
    out.section("Softadastra node configuration");
    println!();
    let rows: Vec<Vec<String>> = settings
        .entries()
        .into_iter()
        .map(|(k, v, src)| vec![k.to_string(), v, src.as_str().to_string()])
        .collect();
    out.table(&["Key", "Value", "Source"], &rows);
    println!();
    out.section("Starting Softadastra node");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    cli::logger::init(settings.node_id(), settings.log_level);
    cli::daemon::run(settings, out)?;
    out.ok("Softadastra node stopped.");
    Ok(())
}

fn run(cli: &Cli, out: &Out) -> Result<(), CliError> {
    let start = match &cli.command {
        Command::Node(NodeCommand::Start(args)) => Some(args),
        _ => None,
    };
    let mut settings = Settings::load(&flags(&cli.global, start), &env_lookup)?;
    let request = match &cli.command {
        Command::Version => {
            if cli.global.json {
                let doc = json_document(
                    "version",
                    json!({ "version": softadastra::DEFAULT_VERSION }),
                );
                println!("{doc}");
            } else {
                println!(
                    "{} {}",
                    if out.color {
                        "\x1b[1m\x1b[36msoftadastra\x1b[0m"
                    } else {
                        "softadastra"
                    },
                    if out.color {
                        format!(
                            "\x1b[90mv\x1b[0m\x1b[33m{}\x1b[0m",
                            softadastra::DEFAULT_VERSION
                        )
                    } else {
                        format!("v{}", softadastra::DEFAULT_VERSION)
                    }
                );
            }
            return Ok(());
        }
        Command::Node(NodeCommand::Start(_)) => {
            if cli.global.json {
                return Err(CliError::usage(
                    "--json is not supported by node start (it logs to stderr)",
                ));
            }
            data_dir::resolve(&mut settings, Access::Write, cli.global.change_node_id)?;
            return start_node(out, &settings);
        }
        Command::Status => Request::Status,
        Command::Node(NodeCommand::Info | NodeCommand::Init) => Request::NodeInfo,
        Command::Store(StoreCommand::Put {
            key,
            value,
            value_file,
        }) => {
            let value = match (value, value_file) {
                (_, Some(path)) => read_value(path)?,
                (Some(text), None) => text.clone().into_bytes(),
                (None, None) => unreachable!("clap requires VALUE or --value-file"),
            };
            Request::store_put(key.clone(), value)
        }
        Command::Store(StoreCommand::Get { key, raw }) => {
            if *raw && cli.global.json {
                return Err(CliError::usage(
                    "store get: --raw prints the value's bytes only; it cannot be combined \
                     with --json",
                ));
            }
            Request::StoreGet {
                key: key.clone(),
                raw: *raw,
            }
        }
        Command::Store(StoreCommand::Remove { key }) => Request::StoreRemove { key: key.clone() },
        Command::Store(StoreCommand::List { prefix }) => Request::StoreList {
            prefix: prefix.clone().unwrap_or_default(),
        },
        Command::Store(StoreCommand::Compact) => Request::StoreCompact,
        Command::Sync(SyncCommand::Status { key: None }) => Request::SyncStatus,
        Command::Sync(SyncCommand::Status { key: Some(key) }) => {
            Request::SyncKeyStatus { key: key.clone() }
        }
        Command::Sync(SyncCommand::Retry) => Request::SyncRetry,
        Command::Sync(SyncCommand::Tick { prune }) => Request::SyncTick { prune: *prune },
        Command::Peers(PeersArgs { action: None }) => Request::Peers,
        Command::Peers(PeersArgs {
            action:
                Some(PeersCommand::Trust {
                    peer_id,
                    fingerprint,
                }),
        }) => Request::PeersTrust {
            node_id: peer_id.clone(),
            fingerprint: fingerprint.clone(),
        },
        Command::Peers(PeersArgs {
            action: Some(PeersCommand::Untrust { peer }),
        }) => Request::PeersUntrust { peer: peer.clone() },
        Command::Backup(BackupArgs {
            action: Some(BackupCommand::Verify { dir }),
            ..
        }) => return print(cli, out, "backup verify", backup::verify(dir)?),
        Command::Backup(BackupArgs {
            action: None,
            dir: Some(dir),
        }) => Request::Backup {
            dir: backup::absolute(dir)?,
        },
        Command::Backup(BackupArgs {
            action: None,
            dir: None,
        }) => {
            return Err(CliError::usage(
                "backup needs a directory: softadastra backup DIR, or softadastra backup \
                 verify DIR",
            ));
        }
        Command::Metrics => {
            data_dir::resolve(&mut settings, Access::Read, cli.global.change_node_id)?;
            return metrics(cli, &settings);
        }
        Command::Wal(WalCommand::Inspect { records }) => {
            let data = cli::wal::inspect(&settings, *records)?;
            return print(cli, out, "wal inspect", data);
        }
        Command::Wal(WalCommand::Salvage { dir, force }) => {
            let data = cli::wal::salvage(&settings, dir, *force)?;
            return print(cli, out, "wal salvage", data);
        }
        Command::Restore(args) => {
            let data = backup::restore(
                &mut settings,
                &args.dir,
                args.force,
                cli.global.change_node_id,
            )?;
            return print(cli, out, "restore", data);
        }
    };
    data_dir::resolve(
        &mut settings,
        access(&cli.command),
        cli.global.change_node_id,
    )?;
    let data = dispatch(&settings, &request)?;
    if let Request::StoreGet { raw: true, .. } = request {
        use std::io::Write;
        let bytes = control::raw_value(&data)?;
        let mut stdout = std::io::stdout().lock();
        return stdout
            .write_all(&bytes)
            .and_then(|()| stdout.flush())
            .map_err(|e| CliError::failure(format!("cannot write the value: {e}")));
    }
    print(cli, out, command_name(cli), data)
}

/// `softadastra metrics`: the running node's metrics text, through its control socket.
fn metrics(cli: &Cli, settings: &Settings) -> Result<(), CliError> {
    let data = control::send(&settings.socket_path(), &Request::Metrics)?.ok_or_else(|| {
        CliError::failure(format!(
            "no node is running on data directory {}: the metrics are a running node's \
             (start it with softadastra node start; a scraper reads the same from its \
             --metrics-addr)",
            settings.data_dir.display()
        ))
    })?;
    if cli.global.json {
        println!("{}", json_document("metrics", data));
    } else {
        let Some(text) = data["text"].as_str() else {
            return Err(CliError::failure(
                "the running node sent no metrics (it runs an earlier version): restart it",
            ));
        };
        print!("{text}");
    }
    Ok(())
}

/// The value of `store put --value-file PATH` ("-": standard input), at most the store's
/// limit: a larger one is refused (exit 2) without being read whole.
fn read_value(path: &std::path::Path) -> Result<Vec<u8>, CliError> {
    use std::io::Read;
    let stdin = path.as_os_str() == "-";
    let name = if stdin {
        "standard input".to_string()
    } else {
        path.display().to_string()
    };
    let bad = |e: std::io::Error| {
        CliError::usage(format!(
            "--value-file: cannot read {name}: {}",
            softadastra::describe_io(&e)
        ))
    };
    let reader: Box<dyn Read> = if stdin {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).map_err(bad)?)
    };
    let limit = softadastra::MAX_VALUE_LEN as u64;
    let mut value = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut value)
        .map_err(bad)?;
    if value.len() as u64 > limit {
        return Err(CliError::usage(format!(
            "--value-file: {name} is larger than the store's limit of {limit} bytes (16 MiB)"
        )));
    }
    Ok(value)
}

/// Whether a command only reads the node (and so needs one, and never makes one) or
/// writes to it.
fn access(command: &Command) -> Access {
    match command {
        Command::Status
        | Command::Node(NodeCommand::Info)
        | Command::Store(StoreCommand::Get { .. } | StoreCommand::List { .. })
        | Command::Sync(SyncCommand::Status { .. } | SyncCommand::Retry)
        | Command::Peers(PeersArgs { action: None })
        | Command::Backup(_)
        | Command::Metrics => Access::Read,
        _ => Access::Write,
    }
}

/// Prints a command's result: its JSON document, or for people.
fn print(cli: &Cli, out: &Out, command: &str, data: Value) -> Result<(), CliError> {
    if cli.global.json {
        println!("{}", json_document(command, data));
    } else {
        output::render(out, command, &data);
    }
    Ok(())
}

fn command_name(cli: &Cli) -> &'static str {
    match &cli.command {
        Command::Version => "version",
        Command::Status => "status",
        Command::Node(NodeCommand::Info) => "node info",
        Command::Node(NodeCommand::Init) => "node init",
        Command::Node(NodeCommand::Start(_)) => "node start",
        Command::Store(StoreCommand::Put { .. }) => "store put",
        Command::Store(StoreCommand::Get { .. }) => "store get",
        Command::Store(StoreCommand::Remove { .. }) => "store remove",
        Command::Store(StoreCommand::List { .. }) => "store list",
        Command::Store(StoreCommand::Compact) => "store compact",
        Command::Sync(SyncCommand::Status { .. }) => "sync status",
        Command::Sync(SyncCommand::Retry) => "sync retry",
        Command::Sync(SyncCommand::Tick { .. }) => "sync tick",
        Command::Peers(PeersArgs { action: None }) => "peers",
        Command::Peers(PeersArgs {
            action: Some(PeersCommand::Trust { .. }),
        }) => "peers trust",
        Command::Peers(PeersArgs {
            action: Some(PeersCommand::Untrust { .. }),
        }) => "peers untrust",
        Command::Backup(BackupArgs {
            action: Some(BackupCommand::Verify { .. }),
            ..
        }) => "backup verify",
        Command::Backup(_) => "backup",
        Command::Restore(_) => "restore",
        Command::Metrics => "metrics",
        Command::Wal(WalCommand::Inspect { .. }) => "wal inspect",
        Command::Wal(WalCommand::Salvage { .. }) => "wal salvage",
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Out::new(cli.global.no_color);
    match run(&cli, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if cli.global.json {
                let doc = json!({
                    "schema_version": JSON_SCHEMA_VERSION,
                    "command": command_name(&cli),
                    "error": { "code": e.code, "message": e.message, "exit": e.exit },
                });
                println!("{doc}");
            }
            eprintln!("error: {}", e.message);
            ExitCode::from(e.exit)
        }
    }
}
