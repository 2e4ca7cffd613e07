//! Each JavaScript client method, by name, calling the core's `Client`: the arguments read
//! by `convert`, the result converted by it. No logic of its own.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use softadastra::{Client, Error, Peer, Result, WriteBatch};

use crate::convert::{self, Arg, Js};

/// A batch of calls of one client, run in order off the JavaScript thread.
pub struct Run {
    pub(crate) client: Arc<Client>,
    pub(crate) options_error: Option<Arc<Error>>,
    pub(crate) calls: Vec<Arg>,
}

/// The longest `processTransportEvents` wait (it holds a libuv thread meanwhile).
const MAX_WAIT_MS: u64 = 10_000;

/// The calls a client understands (the JavaScript `Client`'s async methods, and the
/// parity test's list).
pub(crate) const CALLS: &[&str] = &[
    "open",
    "close",
    "put",
    "get",
    "remove",
    "contains",
    "size",
    "list",
    "writeBatch",
    "flush",
    "compact",
    "backup",
    "tick",
    "syncState",
    "retryExpired",
    "pruneCompleted",
    "pruneFailed",
    "queuePending",
    "retryFailed",
    "syncStatus",
    "recentConflicts",
    "startTransport",
    "stopTransport",
    "transportPort",
    "processTransportEvents",
    "startBackground",
    "stopBackground",
    "connect",
    "disconnect",
    "trustPeer",
    "untrustPeer",
    "trustedPeers",
    "startDiscovery",
    "stopDiscovery",
    "discoveryPort",
    "peers",
    "networkStats",
    "nodeInfo",
    "refreshNodeInfo",
    "describe",
];

fn count(n: usize) -> Js {
    Js::Number(n as f64)
}

fn done(r: Result<()>) -> Result<Js> {
    r.map(|()| Js::Undefined)
}

fn peer(arg: &Arg) -> Result<Peer> {
    let node_id = convert::text("peer.nodeId", arg.field("nodeId"))?;
    let host = convert::text("peer.host", arg.field("host"))?;
    let port = convert::uint("peer.port", arg.field("port"), u64::from(u16::MAX))?;
    Ok(Peer::new(node_id, host, port as u16))
}

fn batch(arg: &Arg) -> Result<WriteBatch> {
    let Arg::List(changes) = arg else {
        return Err(convert::bad_argument("batch", "a WriteBatch", arg));
    };
    let mut batch = WriteBatch::new();
    for change in changes {
        match change {
            Arg::List(parts) => match parts.as_slice() {
                [Arg::Bool(true), key] => {
                    batch.remove(convert::text("key", key)?);
                }
                [Arg::Bool(false), key, value] => {
                    batch.put(convert::text("key", key)?, convert::bytes("value", value)?);
                }
                _ => return Err(convert::bad_argument("batch", "a WriteBatch", change)),
            },
            other => return Err(convert::bad_argument("batch", "a WriteBatch", other)),
        }
    }
    Ok(batch)
}

/// Runs one call `[name, ...args]`.
pub(crate) fn call(client: &Client, options_error: Option<&Error>, call: &Arg) -> Result<Js> {
    let (name, args) = match call {
        Arg::List(items) => match items.split_first() {
            Some((Arg::Text(name), args)) => (name.as_str(), args),
            _ => return Err(convert::bad_argument("call", "[name, ...args]", call)),
        },
        other => return Err(convert::bad_argument("call", "[name, ...args]", other)),
    };
    let none = Arg::None;
    let a = |i: usize| args.get(i).unwrap_or(&none);
    let c = client;
    match name {
        "open" => match options_error {
            Some(e) => Err(Error::InvalidArgument {
                argument: e.context(),
                reason: e.to_string(),
            }),
            None => done(c.open()),
        },
        "close" => done(c.close()),
        "put" => c
            .put(convert::text("key", a(0))?, convert::bytes("value", a(1))?)
            .map(|v| Js::BigInt(v.0)),
        "get" => c.get(convert::text("key", a(0))?).map(Js::Bytes),
        "remove" => c
            .remove(convert::text("key", a(0))?)
            .map(|v| Js::BigInt(v.0)),
        "contains" => c.contains(convert::text("key", a(0))?).map(Js::Bool),
        "size" => c.size().map(count),
        "list" => {
            let prefix = match a(0) {
                Arg::None => "",
                other => convert::text("prefix", other)?,
            };
            c.list(prefix).map(|entries| {
                Js::List(
                    entries
                        .into_iter()
                        .map(|(k, v)| {
                            Js::Object(vec![
                                ("key".into(), Js::Text(k)),
                                ("value".into(), Js::Bytes(v)),
                            ])
                        })
                        .collect(),
                )
            })
        }
        "writeBatch" => c.write_batch(&batch(a(0))?).map(|v| Js::BigInt(v.0)),
        "flush" => done(c.flush()),
        "compact" => c.compact().map(|r| {
            Js::Object(vec![
                ("coversThrough".into(), Js::BigInt(r.covers_through)),
                ("snapshotBytes".into(), Js::Number(r.snapshot_bytes as f64)),
                ("snapshotsRemoved".into(), count(r.snapshots_removed)),
                ("segmentsRemoved".into(), count(r.segments_removed)),
            ])
        }),
        "backup" => {
            let dir = convert::text("dir", a(0))?;
            c.backup(Path::new(dir)).map(|_| Js::Undefined)
        }
        "tick" => c
            .tick(convert::flag("prune", a(0))?)
            .map(|t| Js::described(&t)),
        "syncState" => c.sync_state().map(|s| Js::described(&s)),
        "retryExpired" => c.retry_expired().map(count),
        "pruneCompleted" => c.prune_completed().map(count),
        "pruneFailed" => c.prune_failed().map(count),
        "queuePending" => c.queue_pending().map(count),
        "retryFailed" => c.retry_failed().map(count),
        "syncStatus" => c
            .sync_status(convert::text("key", a(0))?)
            .map(|s| Js::Text(s.as_str().into())),
        "recentConflicts" => c
            .recent_conflicts()
            .map(|list| Js::List(list.iter().map(|x| Js::described(x)).collect())),
        "startTransport" => done(c.start_transport()),
        "stopTransport" => done(c.stop_transport()),
        "transportPort" => c
            .transport_address()
            .map(|addr| Js::Number(f64::from(addr.port()))),
        "processTransportEvents" => {
            let max = match a(0) {
                Arg::None => 64,
                other => convert::uint("maxEvents", other, u64::from(u32::MAX))?,
            } as usize;
            match a(1) {
                Arg::None => c.process_transport_events(max),
                other => {
                    let ms = convert::uint("timeoutMs", other, MAX_WAIT_MS)?;
                    c.process_transport_events_wait(max, Duration::from_millis(ms))
                }
            }
            .map(count)
        }
        "startBackground" => done(c.start_background()),
        "stopBackground" => {
            c.stop_background();
            Ok(Js::Undefined)
        }
        "connect" => done(c.connect(&peer(a(0))?)),
        "disconnect" => done(c.disconnect(&peer(a(0))?)),
        "trustPeer" => done(c.trust_peer(
            convert::text("nodeId", a(0))?,
            convert::text("fingerprint", a(1))?,
        )),
        "untrustPeer" => done(c.untrust_peer(convert::text("peer", a(0))?)),
        "trustedPeers" => c.trusted_peers().map(|list| {
            Js::List(
                list.into_iter()
                    .map(|t| {
                        Js::Object(vec![
                            ("nodeId".into(), Js::Text(t.node_id)),
                            ("fingerprint".into(), Js::Text(t.fingerprint)),
                        ])
                    })
                    .collect(),
            )
        }),
        "startDiscovery" => done(c.start_discovery()),
        "stopDiscovery" => done(c.stop_discovery()),
        "discoveryPort" => c
            .discovery_address()
            .map(|addr| Js::Number(f64::from(addr.port()))),
        "peers" => c
            .peers()
            .map(|list| Js::List(list.iter().map(|p| Js::described(p)).collect())),
        "networkStats" => c.network_stats().map(|s| Js::described(&s)),
        "nodeInfo" => c.node_info().map(|i| Js::described(&i)),
        "refreshNodeInfo" => c.refresh_node_info().map(|i| Js::described(&i)),
        "describe" => softadastra::surface::describe_client(c).map(Js::Text),
        other => Err(Error::InvalidArgument {
            argument: "call".into(),
            reason: format!("no call named {other:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(c: &Client, name: &str, args: Vec<Arg>) -> Result<Js> {
        let mut items = vec![Arg::Text(name.into())];
        items.extend(args);
        call(c, None, &Arg::List(items))
    }

    #[test]
    fn every_listed_call_is_dispatched() {
        let c = Client::new(softadastra::ClientOptions::memory_only("calls-node"));
        for name in CALLS {
            if let Err(e) = run(&c, name, vec![]) {
                assert!(!e.to_string().contains("no call named"), "{name}: {e}");
            }
        }
        let e = run(&c, "nope", vec![]).unwrap_err();
        assert!(e.to_string().contains("no call named \"nope\""), "{e}");
    }

    #[test]
    fn wrong_arguments_are_errors_naming_them() {
        let c = Client::new(softadastra::ClientOptions::memory_only("calls-node"));
        run(&c, "open", vec![]).unwrap();
        let e = run(&c, "put", vec![Arg::Number(1.0), Arg::Text("v".into())]).unwrap_err();
        assert_eq!(e.code(), softadastra::ErrorCode::InvalidArgument);
        assert_eq!(e.context(), "key");
        let e = run(&c, "connect", vec![Arg::Object(vec![])]).unwrap_err();
        assert_eq!(e.context(), "peer.nodeId");
    }
}
