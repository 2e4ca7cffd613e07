//! The parity test of the C ABI: every field of every type in [`crate::surface`] reaches C
//! with its value. Each C struct is read back by destructuring it exhaustively (a field
//! added to the C struct but not checked here does not compile) and compared, name by name
//! and value by value, with the surface's description of the same Rust value, so a field
//! the C side misses, or carries under another name or from another field, fails.
//! (`cpp/tests/parity_test.cpp` does the same through the C++ SDK.)

use std::ffi::{CStr, c_char};

use crate::metadata::NodeInfo;
use crate::node::{NetworkStats, Peer, PeerState};
use crate::surface::{self, Described, OptionKind, Value};
use crate::sync::{SyncState, TickResult};

use super::SaStatus;
use super::bytes::sa_bytes_free;
use super::network::{SaNetworkStats, SaPeers, sa_peer_state_string, sa_peers_free};
use super::node_info::{SaNodeInfo, sa_node_info_free};
use super::options::*;
use super::sync::{SaSyncState, SaTickResult};

/// `name=value` pairs as the surface describes `value`.
fn described(value: &dyn Described) -> Vec<(String, String)> {
    value
        .fields()
        .into_iter()
        .map(|f| (f.name.to_string(), f.value.to_string()))
        .collect()
}

fn pairs(items: &[(&str, String)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect()
}

/// # Safety
/// `p` is a NUL-terminated string.
unsafe fn text(p: *const c_char) -> String {
    // SAFETY: per the caller.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_string()
}

#[test]
fn sync_state_reaches_c_field_by_field() {
    let rust = SyncState {
        outbox_size: 1,
        pending_count: 2,
        queued_count: 3,
        in_flight_count: 4,
        acknowledged_count: 5,
        failed_count: 6,
        last_submitted_version: 7,
        last_applied_remote_version: 8,
        total_retries: 9,
        conflict_count: 10,
    };
    let SaSyncState {
        outbox_size,
        pending_count,
        queued_count,
        in_flight_count,
        acknowledged_count,
        failed_count,
        last_submitted_version,
        last_applied_remote_version,
        total_retries,
        conflict_count,
    } = SaSyncState::from(rust);
    let c = pairs(&[
        ("outbox_size", outbox_size.to_string()),
        ("pending_count", pending_count.to_string()),
        ("queued_count", queued_count.to_string()),
        ("in_flight_count", in_flight_count.to_string()),
        ("acknowledged_count", acknowledged_count.to_string()),
        ("failed_count", failed_count.to_string()),
        ("last_submitted_version", last_submitted_version.to_string()),
        (
            "last_applied_remote_version",
            last_applied_remote_version.to_string(),
        ),
        ("total_retries", total_retries.to_string()),
        ("conflict_count", conflict_count.to_string()),
    ]);
    assert_eq!(c, described(&rust));
}

#[test]
fn tick_result_reaches_c_field_by_field() {
    let rust = TickResult {
        retried_count: 1,
        pruned_count: 2,
        batch_size: 3,
    };
    let SaTickResult {
        retried_count,
        pruned_count,
        batch_size,
    } = SaTickResult::from(rust);
    let c = pairs(&[
        ("retried_count", retried_count.to_string()),
        ("pruned_count", pruned_count.to_string()),
        ("batch_size", batch_size.to_string()),
    ]);
    assert_eq!(c, described(&rust));
}

#[test]
fn network_stats_reach_c_field_by_field() {
    let mut rust = NetworkStats::default();
    // Distinct values for every field, set through the description's own order.
    rust.transport.connections = 1;
    rust.transport.connection_limit = 2;
    rust.transport.refused_connections = 3;
    rust.transport.garbage_frames = 4;
    rust.transport.receive_buffered = 5;
    rust.transport.send_buffered = 6;
    rust.transport.dialled = 7;
    rust.catch_ups.serving = 8;
    rust.catch_ups.started = 9;
    rust.catch_ups.busy = 10;
    rust.catch_ups.protocol_errors = 11;
    rust.peer_records = 12;
    rust.discovered_dials = 13;
    rust.refused_operations.own_origin = 14;
    rust.refused_operations.clock_ahead = 15;
    rust.refused_operations.too_many_origins = 16;
    rust.refused_operations.too_many_ranges = 17;
    rust.refused_operations.second_hand = 18;
    rust.transport.untrusted_peers = 19;
    rust.transport.tls_failures = 20;
    rust.forged_announcements = 21;
    rust.replayed_announcements = 22;
    let values: Vec<String> = described(&rust).into_iter().map(|(_, v)| v).collect();
    let expected: Vec<String> = (1..=values.len()).map(|n| n.to_string()).collect();
    assert_eq!(values, expected, "every figure is set to a distinct value");
    let SaNetworkStats {
        connections,
        connection_limit,
        refused_connections,
        garbage_frames,
        receive_buffered,
        send_buffered,
        dialled,
        catch_up_serving,
        catch_up_started,
        catch_up_busy,
        catch_up_protocol_errors,
        peer_records,
        discovered_dials,
        refused_own_origin,
        refused_clock_ahead,
        refused_too_many_origins,
        refused_too_many_ranges,
        refused_second_hand,
        untrusted_peers,
        tls_failures,
        forged_announcements,
        replayed_announcements,
    } = SaNetworkStats::from(&rust);
    let c = pairs(&[
        ("connections", connections.to_string()),
        ("connection_limit", connection_limit.to_string()),
        ("refused_connections", refused_connections.to_string()),
        ("garbage_frames", garbage_frames.to_string()),
        ("receive_buffered", receive_buffered.to_string()),
        ("send_buffered", send_buffered.to_string()),
        ("dialled", dialled.to_string()),
        ("catch_up_serving", catch_up_serving.to_string()),
        ("catch_up_started", catch_up_started.to_string()),
        ("catch_up_busy", catch_up_busy.to_string()),
        (
            "catch_up_protocol_errors",
            catch_up_protocol_errors.to_string(),
        ),
        ("peer_records", peer_records.to_string()),
        ("discovered_dials", discovered_dials.to_string()),
        ("refused_own_origin", refused_own_origin.to_string()),
        ("refused_clock_ahead", refused_clock_ahead.to_string()),
        (
            "refused_too_many_origins",
            refused_too_many_origins.to_string(),
        ),
        (
            "refused_too_many_ranges",
            refused_too_many_ranges.to_string(),
        ),
        ("refused_second_hand", refused_second_hand.to_string()),
        ("untrusted_peers", untrusted_peers.to_string()),
        ("tls_failures", tls_failures.to_string()),
        ("forged_announcements", forged_announcements.to_string()),
        ("replayed_announcements", replayed_announcements.to_string()),
    ]);
    assert_eq!(c, described(&rust));
}

#[test]
fn node_info_reaches_c_field_by_field() {
    let rust = NodeInfo {
        node_id: "n1".into(),
        display_name: "Till 1".into(),
        hostname: "host".into(),
        os_name: "linux".into(),
        version: "9.9.9".into(),
        started_at_ms: 5,
        uptime_ms: 7,
        capabilities: vec!["core".into(), "wal".into()],
        fingerprint: "ab".repeat(32),
    };
    let info = SaNodeInfo::into_raw(&rust);
    // SAFETY: info is live until freed below; its strings are valid C strings.
    let c = unsafe {
        let SaNodeInfo {
            node_id,
            display_name,
            hostname,
            os_name,
            version,
            started_at_ms,
            uptime_ms,
            capabilities,
            capabilities_len,
            fingerprint,
        } = *info;
        let caps: Vec<String> = std::slice::from_raw_parts(capabilities, capabilities_len)
            .iter()
            .map(|p| text(*p))
            .collect();
        let c = pairs(&[
            ("node_id", text(node_id)),
            ("display_name", text(display_name)),
            ("hostname", text(hostname)),
            ("os_name", text(os_name)),
            ("version", text(version)),
            ("started_at_ms", started_at_ms.to_string()),
            ("uptime_ms", uptime_ms.to_string()),
            ("capabilities", caps.join(",")),
            ("fingerprint", text(fingerprint)),
        ]);
        sa_node_info_free(info);
        c
    };
    assert_eq!(c, described(&rust));
}

#[test]
fn peers_reach_c_field_by_field() {
    let rust = Peer {
        node_id: "till-2".into(),
        host: "10.0.0.2".into(),
        port: 4041,
        state: PeerState::Stale,
        last_seen_ms: 1234,
    };
    let list = SaPeers::into_raw(std::slice::from_ref(&rust));
    // SAFETY: list is live until freed below and holds one peer with valid strings.
    let c = unsafe {
        let super::network::SaPeer {
            node_id,
            host,
            port,
            state,
            last_seen_ms,
        } = **(*list).items;
        let c = pairs(&[
            ("node_id", text(node_id)),
            ("host", text(host)),
            ("port", port.to_string()),
            ("state", text(sa_peer_state_string(state as u32))),
            ("last_seen_ms", last_seen_ms.to_string()),
        ]);
        sa_peers_free(list);
        c
    };
    assert_eq!(c, described(&rust));
}

#[test]
fn every_option_crosses_the_c_handle_in_both_directions() {
    let mut handle = std::ptr::null_mut();
    // SAFETY: a valid out pointer; the handle is live until freed at the end.
    unsafe {
        assert_eq!(sa_options_new(&mut handle), SaStatus::SaOk);
        let mut expected = crate::ClientOptions::default();
        for spec in surface::OPTIONS {
            let n = spec.id as u32;
            // A value unlike the default, distinct per option.
            let value = match spec.kind {
                OptionKind::SaOptionKindText => Value::Text(format!("text-{n}")),
                OptionKind::SaOptionKindBool => {
                    Value::Bool(surface::get_option(&expected, spec.id) == Value::Bool(false))
                }
                OptionKind::SaOptionKindUint => Value::Uint(1000 + u64::from(n)),
            };
            surface::set_option(&mut expected, spec.id, value.clone()).unwrap();
            let status = match &value {
                Value::Text(t) => {
                    let t = std::ffi::CString::new(t.as_str()).unwrap();
                    sa_options_set_text(handle, n, t.as_ptr())
                }
                Value::Bool(b) => sa_options_set_bool(handle, n, *b),
                Value::Uint(u) => sa_options_set_uint(handle, n, *u),
                other => panic!("{other:?}"),
            };
            assert_eq!(status, SaStatus::SaOk, "{}", spec.name);
        }
        assert_eq!((*handle).options, expected);
        // Read back through C, field by field.
        let mut read = Vec::new();
        for spec in surface::OPTIONS {
            let n = spec.id as u32;
            let value = match spec.kind {
                OptionKind::SaOptionKindText => {
                    let mut p = std::ptr::null();
                    assert_eq!(sa_options_get_text(handle, n, &mut p), SaStatus::SaOk);
                    text(p)
                }
                OptionKind::SaOptionKindBool => {
                    let mut b = false;
                    assert_eq!(sa_options_get_bool(handle, n, &mut b), SaStatus::SaOk);
                    b.to_string()
                }
                OptionKind::SaOptionKindUint => {
                    let mut u = 0;
                    assert_eq!(sa_options_get_uint(handle, n, &mut u), SaStatus::SaOk);
                    u.to_string()
                }
            };
            read.push((text(sa_option_name(n)), value));
        }
        assert_eq!(read, described(&expected));
        // And the description of a client made from the handle shows the same options.
        let mut client = std::ptr::null_mut();
        assert_eq!(
            super::client::sa_client_new(handle, &mut client),
            SaStatus::SaOk
        );
        let mut description = std::ptr::null_mut();
        assert_eq!(
            super::client::sa_client_describe(client, &mut description),
            SaStatus::SaOk
        );
        let shown = text((*description).data.cast());
        assert_eq!(
            shown,
            format!("[options]\n{}", surface::describe(&expected))
        );
        sa_bytes_free(description);
        super::client::sa_client_free(client);
        sa_options_free(handle);
    }
}

#[test]
fn conflicts_reach_c_field_by_field() {
    use crate::store::{Conflict, OpId, Version};
    let rust = Conflict {
        key: "shared".into(),
        local: OpId {
            origin: "till-1".into(),
            seq: 2,
            version: Version(3),
        },
        remote: OpId {
            origin: "till-2".into(),
            seq: 4,
            version: Version(5),
        },
        remote_won: true,
    };
    let list = super::sync::SaConflicts::into_raw(std::slice::from_ref(&rust));
    // SAFETY: list is live until freed below and holds one conflict with valid strings.
    let c = unsafe {
        let super::sync::SaConflict {
            key,
            local_origin,
            local_seq,
            local_version,
            remote_origin,
            remote_seq,
            remote_version,
            remote_won,
        } = **(*list).items;
        let c = pairs(&[
            ("key", text(key)),
            ("local_origin", text(local_origin)),
            ("local_seq", local_seq.to_string()),
            ("local_version", local_version.to_string()),
            ("remote_origin", text(remote_origin)),
            ("remote_seq", remote_seq.to_string()),
            ("remote_version", remote_version.to_string()),
            ("remote_won", remote_won.to_string()),
        ]);
        super::sync::sa_conflicts_free(list);
        c
    };
    assert_eq!(c, described(&rust));
}
