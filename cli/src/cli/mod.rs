//! The `softadastra` command's support code: configuration, output, the control socket and
//! the long-running node. Parsing and printing only: every action is a `Client` call.

pub(crate) mod backup;
pub(crate) mod config;
pub(crate) mod control;
pub(crate) mod daemon;
pub(crate) mod data_dir;
pub(crate) mod logger;
pub(crate) mod output;
pub(crate) mod wal;

/// Version of the JSON documents printed with `--json` (docs/cli-json.md).
pub(crate) const JSON_SCHEMA_VERSION: u32 = 1;

/// A command's failure: what to print and the exit code (1 failure, 2 invalid usage).
#[derive(Clone, Debug)]
pub(crate) struct CliError {
    pub exit: u8,
    /// The snake_case error code (the library's `ErrorCode`, or "invalid_usage").
    pub code: String,
    pub message: String,
}

impl CliError {
    /// Invalid usage or configuration: exit 2.
    pub(crate) fn usage(message: impl Into<String>) -> CliError {
        CliError {
            exit: 2,
            code: "invalid_argument".into(),
            message: message.into(),
        }
    }

    /// The command could not do its work: exit 1.
    pub(crate) fn failure(message: impl Into<String>) -> CliError {
        CliError {
            exit: 1,
            code: "unknown".into(),
            message: message.into(),
        }
    }

    /// The running node refused the caller (its control socket serves only the node's own
    /// user and root): exit 1. The code is the CLI's own; the library has none for it.
    pub(crate) fn permission_denied(message: impl Into<String>) -> CliError {
        CliError {
            exit: 1,
            code: "permission_denied".into(),
            message: message.into(),
        }
    }
}

/// Whether `e` says the WAL is locked by another process (a running node, or a one-shot
/// command that holds it for a moment).
pub(crate) fn wal_locked(e: &softadastra::Error) -> bool {
    matches!(
        e,
        softadastra::Error::Store(softadastra::StoreError::Wal(
            softadastra::WalError::Locked { .. }
        ))
    )
}

impl From<softadastra::Error> for CliError {
    fn from(e: softadastra::Error) -> Self {
        let code = e.code();
        CliError {
            exit: if code == softadastra::ErrorCode::InvalidArgument {
                2
            } else {
                1
            },
            code: code.as_str().to_string(),
            message: e.to_string(),
        }
    }
}
