//! The `softadastra` command. Parsing and printing only: every action is a `Client` call.
//!
//! Exit codes: 0 success, 1 failure (e.g. key not found, store cannot open), 2 invalid usage.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use softadastra::node::data_dir;
use softadastra::{Client, ClientOptions, Error};

#[derive(Parser)]
#[command(
    name = "softadastra",
    version,
    about = "Softadastra local-first runtime"
)]
struct Cli {
    /// Directory holding the node's WAL and its generated node id.
    #[arg(
        long,
        global = true,
        env = "SOFTADASTRA_DATA_DIR",
        default_value = "data"
    )]
    data_dir: PathBuf,
    /// Node id (default: generated once and stored in the data directory).
    #[arg(long, global = true, env = "SOFTADASTRA_NODE_ID")]
    node_id: Option<String>,
    #[command(subcommand)]
    command: Command,
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
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Show local node information.
    Info,
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Write a key/value pair.
    Put { key: String, value: String },
    /// Read one key.
    Get { key: String },
    /// Remove one key (removing a missing key succeeds).
    Remove { key: String },
    /// List keys, optionally only those starting with a prefix.
    List { prefix: Option<String> },
}

/// Prints a table: header, a dash row, then rows; columns padded and two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("  {}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for row in rows {
        line(row.clone());
    }
}

fn pairs(rows: &[(&str, String)]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|(k, v)| vec![k.to_string(), v.clone()])
        .collect()
}

fn open_client(cli: &Cli) -> Result<Client, Error> {
    data_dir::ensure(&cli.data_dir)?;
    let node_id = match &cli.node_id {
        Some(id) => id.clone(),
        None => data_dir::stored_node_id(&cli.data_dir)?,
    };
    let wal = data_dir::wal_path(&cli.data_dir);
    let client = Client::new(ClientOptions::persistent(&node_id, &wal.to_string_lossy()));
    client.open()?;
    Ok(client)
}

fn run(cli: &Cli) -> Result<(), Error> {
    match &cli.command {
        Command::Version => println!("softadastra v{}", softadastra::DEFAULT_VERSION),
        Command::Status => {
            let client = open_client(cli)?;
            let info = client.node_info()?;
            println!("  Softadastra status\n");
            table(
                &["Component", "Metric", "Value"],
                &[
                    vec!["node".into(), "id".into(), info.node_id.clone()],
                    vec!["node".into(), "running".into(), "yes".into()],
                    vec!["store".into(), "entries".into(), client.size()?.to_string()],
                    vec![
                        "store".into(),
                        "wal".into(),
                        client.options().wal_path.clone(),
                    ],
                    vec!["metadata".into(), "hostname".into(), info.hostname.clone()],
                    vec!["metadata".into(), "os".into(), info.os_name.clone()],
                    vec!["metadata".into(), "version".into(), info.version.clone()],
                ],
            );
        }
        Command::Node(NodeCommand::Info) => {
            let info = open_client(cli)?.refresh_node_info()?;
            println!("  Softadastra node\n");
            table(
                &["Field", "Value"],
                &pairs(&[
                    ("node_id", info.node_id.clone()),
                    ("display_name", info.display_name.clone()),
                    ("hostname", info.hostname.clone()),
                    ("os", info.os_name.clone()),
                    ("version", info.version.clone()),
                    ("started_at", info.started_at_ms.to_string()),
                    ("uptime_ms", info.uptime_ms.to_string()),
                    ("capabilities", info.capabilities.join(",")),
                ]),
            );
        }
        Command::Store(cmd) => {
            let client = open_client(cli)?;
            match cmd {
                StoreCommand::Put { key, value } => {
                    let version = client.put(key, value.as_bytes())?;
                    println!("  Stored value.\n");
                    table(
                        &["Field", "Value"],
                        &pairs(&[("key", key.clone()), ("version", version.0.to_string())]),
                    );
                }
                StoreCommand::Get { key } => {
                    let value = client.get(key)?;
                    let entry = client
                        .entry(key)?
                        .ok_or_else(|| Error::NotFound { key: key.clone() })?;
                    println!("  Store entry\n");
                    table(
                        &["Field", "Value"],
                        &pairs(&[
                            ("key", key.clone()),
                            ("value", String::from_utf8_lossy(&value).into_owned()),
                            ("version", entry.version.0.to_string()),
                            ("timestamp", entry.version.millis().to_string()),
                            ("origin", entry.origin.to_string()),
                        ]),
                    );
                }
                StoreCommand::Remove { key } => {
                    client.remove(key)?;
                    println!("  Removed {key}.");
                }
                StoreCommand::List { prefix } => {
                    let rows: Vec<Vec<String>> = client
                        .list(prefix.as_deref().unwrap_or(""))?
                        .into_iter()
                        .map(|(k, v)| vec![k, String::from_utf8_lossy(&v).into_owned()])
                        .collect();
                    println!("  Store entries\n");
                    table(&["Key", "Value"], &rows);
                }
            }
            client.close()?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let usage = matches!(e, Error::InvalidOptions { .. })
                || e.code() == softadastra::ErrorCode::InvalidArgument;
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}
