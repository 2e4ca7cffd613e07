//! The CLI's config file parser, `Settings::load` in src/cli/config.rs.
//!
//! The parser lives in the binary crate, not the library, so this target compiles the CLI's
//! own source files (cli/src/cli, by path: the same code the binary runs, not a copy). Each
//! input is written to a config file and loaded with no environment and no flags: it must
//! load, or be refused as invalid configuration (exit 2) without a panic, and what loads
//! must hold values in range.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../../cli/src/cli/mod.rs"]
#[allow(dead_code, unused_imports)]
mod cli;

use cli::config::{Flags, Settings};

static PATH: OnceLock<PathBuf> = OnceLock::new();

/// The config file the inputs are written to, removed when the fuzzer exits.
fn config_path() -> &'static PathBuf {
    PATH.get_or_init(|| {
        // SAFETY: registers a plain function, once.
        unsafe { libc::atexit(remove_config_file) };
        std::env::temp_dir().join(format!(
            "softadastra-fuzz-config-{}.toml",
            std::process::id()
        ))
    })
}

extern "C" fn remove_config_file() {
    if let Some(path) = PATH.get() {
        let _ = std::fs::remove_file(path);
    }
}

fuzz_target!(|data: &[u8]| {
    let path = config_path();
    std::fs::write(path, data).expect("write the config file");
    let flags = Flags {
        config: Some(path.clone()),
        ..Flags::default()
    };
    match Settings::load(&flags, &|_| None) {
        Ok(s) => {
            assert!(s.transport_port > 0 && s.discovery_port > 0);
            assert!(s.discovery_broadcast_port > 0);
            assert!(s.sync_batch_size >= 1 && s.sync_ack_timeout_ms >= 1);
            assert!(s.tick_interval_ms >= 1);
            assert!(s.peers.iter().all(|p| p.port > 0 && !p.host.is_empty()));
            if let Some(addr) = &s.metrics_addr {
                let (host, port) = addr.rsplit_once(':').expect("HOST:PORT");
                assert!(!host.is_empty() && port.parse::<u16>().is_ok(), "{addr}");
            }
            if let Some(id) = &s.node_id {
                assert!(softadastra::validate_node_id(id).is_ok());
            }
            let _ = s.entries();
            let _ = s.client_options(true);
        }
        Err(e) => {
            assert_eq!(e.exit, 2, "{}", e.message);
            assert!(
                e.message.starts_with("invalid configuration"),
                "{}",
                e.message
            );
        }
    }
});
