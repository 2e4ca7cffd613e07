//! Softadastra: a local-first runtime. Applications write locally, keep working offline and
//! sync with peers when the network returns.
//!
//! Layers, each depending only on the ones before it: [`wal`] (durable log) <- [`store`]
//! (ordered map with versions and tombstones) <- [`node`] (the runtime behind `Client`),
//! with [`metadata`] describing the node. The C ABI ([`ffi`]), the cxx bridge and the CLI
//! sit on top and hold no logic of their own.
//!
//! ```
//! use softadastra::{Client, ClientOptions};
//! let client = Client::new(ClientOptions::memory_only("doc-node"));
//! client.open()?;
//! client.put("app/name", b"Softadastra")?;
//! assert_eq!(client.get("app/name")?, b"Softadastra");
//! # Ok::<(), softadastra::Error>(())
//! ```

mod bridge;
pub mod codec;
pub mod discovery;
pub mod error;
pub mod ffi;
pub mod id;
pub mod io_error;
pub mod logsafe;
pub mod metadata;
pub mod node;
pub mod store;
pub mod surface;
pub mod sync;
pub mod transport;
pub mod wal;

pub use error::{Error, ErrorCode, Result};
pub use metadata::NodeInfo;
pub use node::{Client, ClientOptions, Peer, PeerState, WriteBatch};

/// Version of this library, also the default `ClientOptions::version`.
pub const DEFAULT_VERSION: &str = env!("CARGO_PKG_VERSION");
