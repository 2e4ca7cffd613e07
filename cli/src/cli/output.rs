//! Terminal output in the original CLI's shapes (section titles, tables with a dash row,
//! ok/warn/info lines, key/value lines), coloured only on a terminal and never with
//! `--no-color` or `NO_COLOR`; and the rendering of every command's result.

use serde_json::Value;

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";
const GRAY: &str = "\x1b[90m";

/// The widest a table column is padded to.
const MAX_COLUMN_WIDTH: usize = 100;

/// Where output goes and whether it is coloured.
pub(crate) struct Out {
    pub color: bool,
}

impl Out {
    /// Colour when stdout is a terminal, `no_color` is off and `NO_COLOR` is unset or empty.
    pub(crate) fn new(no_color: bool) -> Out {
        use std::io::IsTerminal;
        let env_off = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Out {
            color: !no_color && !env_off && std::io::stdout().is_terminal(),
        }
    }

    fn paint(&self, codes: &[&str], text: &str) -> String {
        if self.color {
            format!("{}{text}{RESET}", codes.concat())
        } else {
            text.to_string()
        }
    }

    pub(crate) fn section(&self, title: &str) {
        println!("  {}", self.paint(&[BOLD, CYAN], title));
    }

    pub(crate) fn ok(&self, msg: &str) {
        println!("  {} {msg}", self.paint(&[GREEN], "✔"));
    }

    pub(crate) fn warn(&self, msg: &str) {
        println!("  {} {msg}", self.paint(&[YELLOW], "!"));
    }

    pub(crate) fn info(&self, msg: &str) {
        println!("  {} {msg}", self.paint(&[CYAN], "•"));
    }

    pub(crate) fn kv(&self, key: &str, value: &str) {
        println!(
            "    {}{}",
            self.paint(&[GRAY], &format!("• {key:<14}: ")),
            self.paint(&[YELLOW, BOLD], value)
        );
    }

    /// Header (bold), a dash row (gray), then rows; columns padded, two spaces apart. A
    /// column is at most [`MAX_COLUMN_WIDTH`] wide: a longer cell (a large value) is
    /// printed whole and pushes the rest of its row right.
    pub(crate) fn table(&self, header: &[&str], rows: &[Vec<String>]) {
        let widths: Vec<usize> = (0..header.len())
            .map(|c| {
                rows.iter()
                    .map(|r| r[c].chars().count())
                    .chain([header[c].chars().count()])
                    .max()
                    .unwrap_or(0)
                    .min(MAX_COLUMN_WIDTH)
            })
            .collect();
        // Padded by hand: a width in a format string panics past 65,535.
        let line = |cells: &[String]| -> String {
            let mut text = String::new();
            for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                let pad = width.saturating_sub(cell.chars().count());
                text.extend(std::iter::repeat_n(' ', pad));
            }
            text.trim_end().to_string()
        };
        let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
        println!("  {}", self.paint(&[BOLD], &line(&header)));
        let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        println!("  {}", self.paint(&[GRAY], &line(&dashes)));
        for row in rows {
            println!("  {}", line(row));
        }
    }

    fn fields(&self, rows: &[(&str, String)]) {
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|(k, v)| vec![k.to_string(), v.clone()])
            .collect();
        self.table(&["Field", "Value"], &rows);
    }
}

/// A JSON value as table text: strings bare, booleans yes/no, the rest as JSON.
fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Prints a command's result (the `data` of [`super::control::execute`]) as text.
pub(crate) fn render(out: &Out, command: &str, d: &Value) {
    match command {
        "status" => {
            out.section("Softadastra status");
            println!();
            // A node of an earlier version reports no health.
            let health = match (
                d["health"]["status"].as_str(),
                d["health"]["reason"].as_str(),
            ) {
                (Some("healthy"), _) => "healthy".to_string(),
                (Some(_), Some(reason)) => format!("writes refused: {reason}"),
                _ => "unknown".to_string(),
            };
            let mut rows = vec![
                ("node", "id", s(&d["node"]["id"])),
                ("node", "running", s(&d["node"]["running"])),
                ("node", "health", health),
                ("node", "fingerprint", s(&d["node"]["fingerprint"])),
                ("store", "entries", s(&d["store"]["entries"])),
                ("store", "wal", s(&d["store"]["wal"])),
            ];
            for m in [
                "outbox",
                "pending",
                "queued",
                "in_flight",
                "acknowledged",
                "failed",
            ] {
                rows.push(("sync", m, s(&d["sync"][m])));
            }
            for c in ["transport", "discovery"] {
                rows.push((c, "running", s(&d[c]["running"])));
                rows.push((c, "peers", s(&d[c]["peers"])));
            }
            for m in ["running", "hostname", "os", "version", "uptime_ms"] {
                rows.push(("metadata", m, s(&d["metadata"][m])));
            }
            rows.push((
                "control",
                "refused_requests",
                s(&d["control"]["refused_requests"]),
            ));
            rows.push((
                "metrics",
                "addr",
                d["metrics"]["addr"]
                    .as_str()
                    .map_or_else(|| "off".to_string(), str::to_string),
            ));
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .map(|(c, m, v)| vec![c.to_string(), m.to_string(), v])
                .collect();
            out.table(&["Component", "Metric", "Value"], &rows);
        }
        "node info" | "node init" => {
            out.section("Softadastra node");
            println!();
            let caps: Vec<String> = d["capabilities"]
                .as_array()
                .map(|a| a.iter().map(s).collect())
                .unwrap_or_default();
            out.fields(&[
                ("node_id", s(&d["node_id"])),
                ("display_name", s(&d["display_name"])),
                ("hostname", s(&d["hostname"])),
                ("os", s(&d["os"])),
                ("version", s(&d["version"])),
                ("started_at", s(&d["started_at_ms"])),
                ("uptime_ms", s(&d["uptime_ms"])),
                ("capabilities", caps.join(",")),
                ("fingerprint", s(&d["fingerprint"])),
                ("node_running", s(&d["node_running"])),
            ]);
        }
        "store put" => {
            out.ok("Stored value.");
            println!();
            out.fields(&[
                ("key", s(&d["key"])),
                ("version", s(&d["version"])),
                ("status", s(&d["status"])),
            ]);
        }
        "store get" => {
            out.section("Store entry");
            println!();
            out.fields(&[
                ("key", s(&d["key"])),
                ("value", s(&d["value"])),
                ("version", s(&d["version"])),
                ("timestamp", s(&d["timestamp_ms"])),
                ("origin", s(&d["origin"])),
            ]);
        }
        "store remove" => {
            out.ok("Removed value.");
            println!();
            out.fields(&[
                ("key", s(&d["key"])),
                ("version", s(&d["version"])),
                ("removed", s(&d["removed"])),
            ]);
        }
        "store list" => {
            out.section("Store entries");
            println!();
            let rows: Vec<Vec<String>> = d["entries"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| vec![s(&e["key"]), s(&e["value"])])
                        .collect()
                })
                .unwrap_or_default();
            if rows.is_empty() {
                out.info("No store entries found.");
            } else {
                out.table(&["Key", "Value"], &rows);
            }
        }
        "sync status" if d.get("key").is_some() => {
            out.section("Softadastra sync status");
            println!();
            out.fields(&[
                ("key", s(&d["key"])),
                ("status", s(&d["status"])),
                ("meaning", s(&d["label"])),
            ]);
        }
        "sync retry" => {
            out.section("Softadastra sync retry");
            println!();
            let rows: Vec<Vec<String>> = ["failed_requeued", "pending_queued", "queued_count"]
                .iter()
                .map(|k| vec![k.to_string(), s(&d[*k])])
                .collect();
            out.table(&["Metric", "Value"], &rows);
            println!();
            let again = d["failed_requeued"].as_u64().unwrap_or(0)
                + d["pending_queued"].as_u64().unwrap_or(0);
            if again == 0 {
                out.info("No failed or pending sync work to queue.");
            } else if d["node_running"].as_bool() == Some(true) {
                out.ok("Sync work queued again: the node sends it with its next tick.");
            } else {
                out.warn(
                    "No node runs on this data directory: nothing was sent. Run sync retry \
                     while the node runs.",
                );
            }
        }
        "sync status" => {
            out.section("Softadastra sync status");
            println!();
            let rows: Vec<Vec<String>> = [
                "node_id",
                "outbox_size",
                "pending_count",
                "queued_count",
                "in_flight_count",
                "acknowledged_count",
                "failed_count",
                "last_submitted_version",
                "last_applied_remote_version",
                "total_retries",
                "conflict_count",
                "refused_count",
            ]
            .iter()
            .map(|k| vec![k.to_string(), s(&d[*k])])
            .collect();
            out.table(&["Metric", "Value"], &rows);
        }
        "sync tick" => {
            out.section("Softadastra sync tick");
            println!();
            let rows: Vec<Vec<String>> = [
                "retried_count",
                "batch_size",
                "connected_peers",
                "sent_count",
                "pruned_count",
            ]
            .iter()
            .map(|k| vec![k.to_string(), s(&d[*k])])
            .collect();
            out.table(&["Metric", "Value"], &rows);
            println!();
            match d["outcome"].as_str() {
                Some("attempted") => out.ok("Sync batch delivery attempted."),
                Some("no_peers") => out.warn("No connected transport peers available."),
                Some("not_sent") => out.warn("No sync batch was sent."),
                _ => out.info("No sync operations ready for delivery."),
            }
        }
        "peers" => render_peers(out, d),
        "store compact" => {
            out.section("Softadastra store compaction");
            for (label, field) in [
                ("snapshot through record", "covers_through"),
                ("snapshot bytes", "snapshot_bytes"),
                ("older snapshots removed", "snapshots_removed"),
                ("log segments removed", "segments_removed"),
            ] {
                out.kv(label, &s(&d[field]));
            }
            println!();
            out.ok("Store compacted.");
        }
        "backup" => {
            out.section("Softadastra backup");
            for (label, field) in [
                ("directory", "dir"),
                ("node", "node_id"),
                ("through record", "covers_through"),
                ("files", "files"),
                ("bytes", "bytes"),
            ] {
                out.kv(label, &s(&d[field]));
            }
            println!();
            out.ok("Backup written. It holds the node's key: keep it as private as the key.");
        }
        "backup verify" => {
            out.section("Softadastra backup");
            for (label, field) in [
                ("directory", "dir"),
                ("node", "node_id"),
                ("fingerprint", "fingerprint"),
                ("version", "library_version"),
                ("created (ms)", "created_at_ms"),
                ("through record", "covers_through"),
            ] {
                out.kv(label, &s(&d[field]));
            }
            let rows: Vec<Vec<String>> = d["files"]
                .as_array()
                .map(|files| {
                    files
                        .iter()
                        .map(|f| vec![s(&f["name"]), s(&f["kind"]), s(&f["bytes"]), s(&f["crc32"])])
                        .collect()
                })
                .unwrap_or_default();
            println!();
            out.table(&["File", "Kind", "Bytes", "CRC32"], &rows);
            println!();
            out.ok("Backup verified: every file is intact.");
        }
        "restore" => {
            out.section("Softadastra restore");
            for (label, field) in [
                ("from", "dir"),
                ("data dir", "data_dir"),
                ("node", "node_id"),
                ("through record", "covers_through"),
                ("next own seq", "next_own_seq"),
                ("key restored", "key_restored"),
            ] {
                out.kv(label, &s(&d[field]));
            }
            let removed = d["removed"].as_array().map_or(0, Vec::len);
            if removed > 0 {
                out.kv("files replaced", &removed.to_string());
            }
            println!();
            out.ok("Restored. Start the node: it gets the writes made after the backup back from its peers.");
        }
        "wal inspect" => render_inspection(out, d),
        "wal salvage" => {
            out.section("Softadastra WAL salvage");
            for (label, field) in [
                ("from", "from"),
                ("into", "data_dir"),
                ("node", "node_id"),
                ("snapshot through", "snapshot_cut"),
                ("records copied", "records"),
                ("good through", "good_through"),
                ("source's last", "source_last_sequence"),
                ("next own seq", "next_own_seq"),
                ("key copied", "key_copied"),
            ] {
                out.kv(label, &s(&d[field]));
            }
            println!();
            render_damage(out, d);
            println!();
            out.ok(
                "Salvaged. The source is unchanged. Start the node on the new data directory: \
                 it gets what was lost from its peers.",
            );
        }
        "peers trust" | "peers untrust" => {
            out.ok(if command == "peers trust" {
                "Peer trusted."
            } else {
                "Peer no longer trusted; its connections were closed."
            });
            println!();
            render_trusted(out, d);
        }
        _ => println!("{d}"),
    }
}

fn render_peers(out: &Out, d: &Value) {
    out.section("Softadastra peers");
    out.kv("node running", &s(&d["node_running"]));
    out.kv("discovery", &s(&d["discovery"]));
    out.kv("transport", &s(&d["transport"]));
    println!();
    // One table for discovery and transport: a peer is listed once, in the state that
    // says most (connected, faulted, then what discovery knows). Port 0 is unknown: a peer
    // that dialled this node and whose listening port nothing announced.
    let rows: Vec<Vec<String>> = d["peers"]
        .as_array()
        .map(|peers| {
            peers
                .iter()
                .map(|p| {
                    let port = match p["port"].as_u64() {
                        Some(0) | None => "-".to_string(),
                        Some(port) => port.to_string(),
                    };
                    vec![s(&p["node_id"]), s(&p["host"]), port, s(&p["state"])]
                })
                .collect()
        })
        .unwrap_or_default();
    if rows.is_empty() {
        out.info("No peers found.");
    } else {
        out.table(&["Node ID", "Host", "Port", "State"], &rows);
    }
    println!();
    render_trusted(out, d);
}

fn render_damage(out: &Out, d: &Value) {
    let damage = d["damage"].as_array().cloned().unwrap_or_default();
    if damage.is_empty() {
        out.ok("No damage found.");
        return;
    }
    out.section("Damage");
    let rows: Vec<Vec<String>> = damage
        .iter()
        .map(|x| vec![s(&x["path"]), s(&x["offset"]), s(&x["what"])])
        .collect();
    out.table(&["File", "Offset", "What"], &rows);
}

fn render_inspection(out: &Out, d: &Value) {
    out.section("Softadastra WAL");
    for (label, field) in [
        ("wal", "wal"),
        ("snapshot through", "snapshot_cut"),
        ("good through", "good_through"),
        ("last record", "last_sequence"),
        ("records", "records"),
    ] {
        out.kv(label, &s(&d[field]));
    }
    println!();
    out.section("Snapshots");
    let snapshots = d["snapshots"].as_array().cloned().unwrap_or_default();
    if snapshots.is_empty() {
        out.info("No snapshot.");
    } else {
        let rows: Vec<Vec<String>> = snapshots
            .iter()
            .map(|x| {
                let state = if x["intact"] == true {
                    "intact"
                } else {
                    "damaged"
                };
                vec![
                    s(&x["path"]),
                    s(&x["covers_through"]),
                    s(&x["bytes"]),
                    state.into(),
                ]
            })
            .collect();
        out.table(&["File", "Through record", "Bytes", "State"], &rows);
    }
    println!();
    out.section("Log files");
    let files = d["files"].as_array().cloned().unwrap_or_default();
    if files.is_empty() {
        out.info("No log file.");
    } else {
        let rows: Vec<Vec<String>> = files
            .iter()
            .map(|x| {
                let range = match (x["first_record"].as_u64(), x["last_record"].as_u64()) {
                    (Some(a), Some(b)) => format!("{a}-{b}"),
                    _ => "-".into(),
                };
                vec![
                    s(&x["path"]),
                    s(&x["records"]),
                    range,
                    s(&x["bytes"]),
                    s(&x["torn_tail_bytes"]),
                ]
            })
            .collect();
        out.table(&["File", "Records", "Numbers", "Bytes", "Torn tail"], &rows);
        let listed: Vec<Vec<String>> = files
            .iter()
            .flat_map(|f| {
                let path = s(&f["path"]);
                f["record_list"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |r| {
                        vec![
                            path.clone(),
                            s(&r["offset"]),
                            s(&r["sequence"]),
                            s(&r["type"]),
                            s(&r["payload_bytes"]),
                        ]
                    })
            })
            .collect();
        if !listed.is_empty() {
            println!();
            out.section("Records");
            out.table(&["File", "Offset", "Number", "Type", "Bytes"], &listed);
        }
    }
    println!();
    render_damage(out, d);
    if d["healthy"] != true {
        out.warn(
            "The node may refuse to open this WAL, or lose what follows the damage. \
             `softadastra wal salvage DIR` copies the good part into a new data directory.",
        );
    }
}

fn render_trusted(out: &Out, d: &Value) {
    out.section("Trusted peers");
    let trusted = d["trusted"].as_array().cloned().unwrap_or_default();
    if trusted.is_empty() {
        out.info("No trusted peers: connections are refused until one is trusted.");
    } else {
        let rows: Vec<Vec<String>> = trusted
            .iter()
            .map(|t| vec![s(&t["node_id"]), s(&t["fingerprint"])])
            .collect();
        out.table(&["Node", "Fingerprint"], &rows);
    }
}
