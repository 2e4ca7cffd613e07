//! Each JavaScript client method, by name, calling the core's `Client`: the arguments read
//! by `convert`, the result converted by it. No logic of its own.

use std::path::Path;
use std::time::Duration;

use softadastra::{Client, Error, Peer, Result, WriteBatch};

use crate::convert::{self, Arg, Js};

/// A batch of calls of one client, read on the JavaScript thread, run in order on the
/// client's thread (`worker.rs`).
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Each call: its number in [`CALLS`] and how many arguments it takes from `args`.
    pub(crate) calls: Vec<(u32, usize)>,
    /// The arguments of every call, one after the other.
    pub(crate) args: Vec<Arg>,
}

/// Runs a batch's calls in order; returns `ok, value or error` per call, flat (one array
/// for the batch, not one per call). A panicking call is an `internal_error` result.
pub(crate) fn run_batch(client: &Client, options_error: Option<&Error>, batch: Batch) -> Vec<Js> {
    let mut results = Vec::with_capacity(batch.calls.len() * 2);
    let mut args = batch.args.as_slice();
    for &(number, count) in &batch.calls {
        let (these, rest) = args.split_at(count.min(args.len()));
        args = rest;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            call(client, options_error, number, these)
        }))
        .unwrap_or_else(|p| Err(panicked(p.as_ref())));
        match outcome {
            Ok(v) => results.extend([Js::Bool(true), v]),
            Err(e) => results.extend([Js::Bool(false), Js::error(&e)]),
        }
    }
    results
}

/// What a failed call resolves to, from a caught panic.
fn panicked(payload: &(dyn std::any::Any + Send)) -> Error {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    Error::Internal(format!("a panic in the library: {what}"))
}

/// The longest `processTransportEvents` wait (it holds a libuv thread meanwhile).
const MAX_WAIT_MS: u64 = 10_000;

/// The calls a client understands (the JavaScript `Client`'s async methods, and the
/// parity test's list). JavaScript names a call by its place in this list.
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
    "addDiscoveryTarget",
    "advanceClock",
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

/// Runs call number `number` of [`CALLS`] with its arguments.
pub(crate) fn call(
    client: &Client,
    options_error: Option<&Error>,
    number: u32,
    args: &[Arg],
) -> Result<Js> {
    let Some(&name) = CALLS.get(number as usize) else {
        return Err(Error::InvalidArgument {
            argument: "call".into(),
            reason: format!("no call numbered {number}"),
        });
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
        "transportPort" => c.transport_port().map(|p| Js::Number(f64::from(p))),
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
        "discoveryPort" => c.discovery_port().map(|p| Js::Number(f64::from(p))),
        "addDiscoveryTarget" => {
            let host = convert::text("host", a(0))?;
            let port = convert::uint("port", a(1), u64::from(u16::MAX))?;
            done(c.add_discovery_target_at(host, port as u16))
        }
        "advanceClock" => done(c.advance_clock(convert::uint("ms", a(0), u64::MAX)?)),
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
        let number = CALLS.iter().position(|n| *n == name).unwrap_or(usize::MAX);
        call(c, None, u32::try_from(number).unwrap_or(u32::MAX), &args)
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
        assert!(e.to_string().contains("no call numbered"), "{e}");
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

    #[test]
    fn a_batch_runs_its_calls_in_order_each_with_its_own_arguments() {
        let c = Client::new(softadastra::ClientOptions::memory_only("calls-node"));
        let number = |name: &str| CALLS.iter().position(|n| *n == name).unwrap() as u32;
        let text = |s: &str| Arg::Text(s.into());
        let batch = Batch {
            calls: vec![
                (number("open"), 0),
                (number("put"), 2),
                (number("get"), 1),
                (9_999, 0),
                (number("size"), 0),
                (number("get"), 1),
            ],
            args: vec![text("k"), text("v1"), text("k"), text("missing")],
        };
        let out = run_batch(&c, None, batch);
        assert_eq!(out.len(), 12, "ok and value per call: {out:?}");
        let oks: Vec<bool> = out
            .iter()
            .step_by(2)
            .map(|o| matches!(o, Js::Bool(true)))
            .collect();
        assert_eq!(oks, [true, true, true, false, true, false]);
        assert!(matches!(&out[3], Js::BigInt(v) if *v > 0), "{:?}", out[3]);
        assert!(
            matches!(&out[5], Js::Bytes(b) if b == b"v1"),
            "{:?}",
            out[5]
        );
        let Js::Object(error) = &out[7] else {
            panic!("{:?}", out[7])
        };
        assert!(
            format!("{error:?}").contains("no call numbered 9999"),
            "{error:?}"
        );
        assert!(
            matches!(&out[9], Js::Number(n) if *n == 1.0),
            "{:?}",
            out[9]
        );
        assert!(
            format!("{:?}", out[11]).contains("missing"),
            "{:?}",
            out[11]
        );
    }
}
