//! The node's logger: one line per record on stderr,
//! `2026-01-02T03:04:05.678Z INFO  node=<id> <target>: <message>`, by env_logger.

use std::io::Write;

/// Installs the logger (once per process; later calls do nothing).
pub(crate) fn init(node_id: &str, level: log::LevelFilter) {
    let node_id = node_id.to_string();
    let _ = env_logger::Builder::new()
        .filter_level(level)
        .target(env_logger::Target::Stderr)
        .format(move |buf, record| {
            writeln!(
                buf,
                "{} {:<5} node={} {}: {}",
                buf.timestamp_millis(),
                record.level(),
                node_id,
                record.target(),
                record.args()
            )
        })
        .try_init();
}
