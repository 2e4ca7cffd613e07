//! The checks shared by the decoder fuzzing: `tests/fuzz_decoders.rs` (proptest, in CI) and
//! the cargo-fuzz targets in `fuzz/` (which include this file by path). Each `check_*`
//! feeds bytes to one decoder and asserts that it does not panic and that what it returns
//! is consistent: records within the input, decode(encode(x)) == x where x was decoded.
//! The `*_input` functions are the cargo-fuzz targets' bodies, so that a crash input from
//! `fuzz/artifacts` replays as a test exactly.
#![allow(dead_code)]

use softadastra::discovery::packet::{MAX_PACKET_LEN, MIN_PACKET_LEN, Packet, seal};
use softadastra::store::Operation;
use softadastra::store::collect::decode_forget;
use softadastra::store::op::{decode_ops, encode_ops};
use softadastra::sync::marks;
use softadastra::transport::frame::{self, FrameDecoder, FrameError, HEADER_LEN};
use softadastra::transport::message::{Message, kind};
use softadastra::wal::format::{
    FILE_HEADER_LEN, FileHeader, LogEnd, MAGIC, RECORD_HEADER_LEN, RecordType, ScanError,
    check_file_header, encode_legacy_header, encode_segment_header, scan_from,
};

/// The `wal_reader` fuzz target's input: the first byte picks the mode, bit 0 makes every
/// checksum valid (the file header's, then each record's) so that the scan gets past them,
/// bit 1 puts a valid file header in front of the rest: a version 1 header, or with bit 2 a
/// segment header whose first sequence number bits 3-4 pick. The rest is also decoded as a
/// bare record payload.
pub(crate) fn wal_reader_input(data: &[u8]) {
    const FIRSTS: [u64; 4] = [1, 2, 1 << 32, u64::MAX - 1];
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut image = match (mode & 2 != 0, mode & 4 != 0) {
        (true, false) => encode_legacy_header().to_vec(),
        (true, true) => encode_segment_header(FIRSTS[usize::from(mode >> 3) % 4]).to_vec(),
        (false, _) => Vec::new(),
    };
    image.extend_from_slice(rest);
    if mode & 1 != 0 {
        reseal_wal_image(&mut image);
    }
    check_wal_image(&image);
    check_store_payload(rest);
    check_marks_payload(rest);
    check_forget_payload(rest);
}

/// The `frame_decoder` fuzz target's input: a message type byte, a read-size byte, a flags
/// byte, then bytes. The bytes are decoded as that message type's payload directly, and as
/// a TCP stream fed to the frame decoder in reads of (read-size + 1) bytes. Flags: bit 0
/// makes every complete frame's checksum valid; bits 1-7 pick the payload limit.
pub(crate) fn frame_decoder_input(data: &[u8]) {
    const LIMITS: [usize; 5] = [0, 16, 256, 4096, 1 << 20];
    let [kind, chunk, flags, rest @ ..] = data else {
        return;
    };
    check_message(*kind, rest);
    let mut stream = rest.to_vec();
    if flags & 1 != 0 {
        reseal_frame_stream(&mut stream);
    }
    let max = LIMITS[usize::from(flags >> 1) % LIMITS.len()];
    check_frame_stream(&stream, usize::from(*chunk) + 1, max);
}

/// The `discovery_decoder` fuzz target's input: the first byte picks the mode, bit 0 puts
/// the magic and version ("SADI" 2) in front of the rest, bit 1 makes the public key an
/// uncompressed point (its first byte 0x04) so that decoding gets to the fields after it.
/// (There is no checksum to make valid: the signature is checked apart from decoding, and
/// `check_discovery_packet` checks it too.)
pub(crate) fn discovery_decoder_input(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = if mode & 1 != 0 {
        b"SADI\x02".to_vec()
    } else {
        Vec::new()
    };
    bytes.extend_from_slice(rest);
    if mode & 2 != 0 {
        mark_discovery_key(&mut bytes);
    }
    check_discovery_packet(&bytes);
}

/// A whole WAL file image: the header check, the scan (from the first sequence number of a
/// segment header, when the image has a valid one), and every record's payload decoder.
pub(crate) fn check_wal_image(bytes: &[u8]) {
    let header = check_file_header(bytes);
    if header.is_ok() {
        assert!(bytes.len() >= FILE_HEADER_LEN && bytes[..8] == MAGIC);
    }
    let first = match header {
        Ok(FileHeader::Segment { first_sequence }) => {
            assert!(first_sequence > 0 && first_sequence < u64::MAX);
            Some(first_sequence)
        }
        _ => None,
    };
    let len = bytes.len() as u64;
    let mut next = FILE_HEADER_LEN as u64;
    let mut last: Option<u64> = None;
    let mut count = 0u64;
    let result = scan_from::<()>(bytes, first, |r| {
        assert_eq!(r.offset, next, "records follow each other");
        let start = r.offset as usize + RECORD_HEADER_LEN;
        let end = start + r.payload.len();
        assert!(end as u64 <= len, "record beyond the input");
        assert_eq!(&bytes[start..end], r.payload);
        assert!(r.sequence > 0);
        if let (None, Some(first)) = (last, first) {
            assert_eq!(r.sequence, first, "a segment starts at its first number");
        }
        if let Some(prev) = last {
            assert_eq!(
                Some(r.sequence),
                prev.checked_add(1),
                "consecutive sequences"
            );
        }
        match r.record_type {
            RecordType::StoreOps => check_store_payload(r.payload),
            RecordType::SyncMarks => check_marks_payload(r.payload),
            RecordType::StoreForget => check_forget_payload(r.payload),
        }
        last = Some(r.sequence);
        next = end as u64;
        count += 1;
        Ok(())
    });
    let zeros_from = |at: u64| bytes[(at.min(len)) as usize..].iter().all(|&b| b == 0);
    match result {
        Ok(summary) => {
            assert_eq!(summary.records, count);
            let before_first = first.map_or(0, |f| f - 1);
            assert_eq!(summary.last_sequence, last.unwrap_or(before_first));
            match summary.end {
                LogEnd::Clean { end } => {
                    assert_eq!(end, next);
                    assert!(zeros_from(end), "a clean end has only zeros after it");
                }
                LogEnd::TornTail { end, dropped_end } => {
                    assert_eq!(end, next);
                    assert!(end < dropped_end && dropped_end <= len);
                    assert!(zeros_from(dropped_end));
                    assert_ne!(bytes[dropped_end as usize - 1], 0);
                }
            }
        }
        Err(ScanError::Corrupt(c)) => {
            assert_eq!(
                c.offset, next,
                "corruption is reported where the scan stopped"
            );
            assert!(c.offset < len);
        }
        Err(ScanError::Callback(())) => unreachable!("the callback never fails"),
    }
}

/// A `StoreOps` record payload: decodes, or is refused; what decodes re-encodes to the same
/// bytes.
pub(crate) fn check_store_payload(payload: &[u8]) {
    let mut ops: Vec<Operation> = Vec::new();
    if decode_ops(payload, |op| ops.push(op.to_operation())).is_ok() {
        let mut again = Vec::new();
        encode_ops(&mut again, ops.iter().map(Operation::as_op));
        assert_eq!(again, payload, "store payload round trip");
    }
}

/// A `StoreForget` record payload: decodes or is refused, naming what is wrong; what
/// decodes names no more entries than its bytes can hold.
pub(crate) fn check_forget_payload(payload: &[u8]) {
    let mut entries = 0usize;
    match decode_forget(payload, |_, _, _| entries += 1) {
        Ok(learned) => {
            assert!(entries.saturating_mul(11) <= payload.len());
            assert!(learned.frontier().count() <= softadastra::store::MAX_ORIGINS);
        }
        Err(e) => assert!(!e.is_empty()),
    }
}

/// A `SyncMarks` record payload.
pub(crate) fn check_marks_payload(payload: &[u8]) {
    if let Ok((_, ranges)) = marks::decode(payload) {
        assert_eq!(payload.len(), 6 + 16 * ranges.len());
    }
}

/// Makes every checksum of a WAL image valid (file header, then each record whose length
/// fits), so that a mutated image gets past the CRCs to the checks behind them.
pub(crate) fn reseal_wal_image(bytes: &mut [u8]) {
    if bytes.len() < FILE_HEADER_LEN {
        return;
    }
    let crc = crc32(&bytes[0..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    let mut pos = FILE_HEADER_LEN;
    while pos + RECORD_HEADER_LEN <= bytes.len() {
        let payload_len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let Some(end) = pos
            .checked_add(RECORD_HEADER_LEN + payload_len)
            .filter(|&e| e <= bytes.len())
        else {
            return;
        };
        let crc = crc32(&bytes[pos + 4..end]);
        bytes[pos..pos + 4].copy_from_slice(&crc.to_le_bytes());
        pos = end;
    }
}

/// A TCP stream fed to a [`FrameDecoder`] in pieces of `chunk` bytes, with a payload limit
/// of `max_payload`; every frame's payload then goes to [`check_message`].
pub(crate) fn check_frame_stream(stream: &[u8], chunk: usize, max_payload: usize) {
    let (frames, error, buffered) = run_frame_decoder(stream, chunk, max_payload);
    let (whole_frames, whole_error, whole_buffered) =
        run_frame_decoder(stream, stream.len(), max_payload);
    assert_eq!(
        frames, whole_frames,
        "frames do not depend on read boundaries"
    );
    assert_eq!(error, whole_error);
    let mut again = Vec::new();
    for (k, payload) in &frames {
        assert!(payload.len() <= max_payload);
        frame::encode(&mut again, *k, payload);
    }
    assert_eq!(
        again,
        stream[..again.len()],
        "frames re-encode to the stream"
    );
    let rest = &stream[again.len()..];
    match &error {
        None => {
            assert_eq!(buffered, whole_buffered);
            assert_eq!(
                again.len() + buffered,
                stream.len(),
                "every byte accounted for"
            );
        }
        Some(FrameError::TooLarge { len, max }) => {
            assert_eq!(*max, max_payload);
            assert!(*len > max_payload);
            assert_eq!(
                *len as u32,
                u32::from_le_bytes(rest[..4].try_into().unwrap())
            );
        }
        Some(FrameError::BadChecksum { kind, len }) => {
            assert_eq!(*kind, rest[4]);
            assert!(rest.len() >= HEADER_LEN + len);
        }
    }
    for (k, payload) in &frames {
        check_message(*k, payload);
    }
}

/// What a [`FrameDecoder`] made of a stream: the frames, the error that stopped it if any,
/// and the bytes left buffered.
type Decoded = (Vec<(u8, Vec<u8>)>, Option<FrameError>, usize);

fn run_frame_decoder(stream: &[u8], chunk: usize, max_payload: usize) -> Decoded {
    let mut d = FrameDecoder::new(max_payload);
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        d.feed(piece);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => {
                    let _ = e.to_string();
                    return (frames, Some(e), d.buffered());
                }
            }
        }
    }
    (frames, None, d.buffered())
}

/// One message payload of type `k`: decodes or is refused; what decodes has that type and
/// survives encode then decode (byte for byte, except version vectors, which are
/// normalised).
pub(crate) fn check_message(k: u8, payload: &[u8]) {
    let Ok(m) = Message::decode(k, payload) else {
        return;
    };
    assert_eq!(m.kind(), k);
    let mut again = Vec::new();
    m.encode(&mut again);
    assert_eq!(
        Message::decode(k, &again).as_ref(),
        Ok(&m),
        "message round trip"
    );
    // Vectors and collected frontiers are normalised when decoded (ranges merged, origins
    // met twice taken once).
    if k != kind::VECTOR && k != kind::CATCH_UP_DONE && k != kind::FULL_CATCH_UP_DONE {
        assert_eq!(again, payload, "message re-encodes to the same bytes");
    }
}

/// A discovery datagram: decodes or is refused; what decodes has a valid length, its
/// signature check returns (whatever it holds), and it encodes, with its key and signature,
/// to a datagram that decodes back to the same.
pub(crate) fn check_discovery_packet(bytes: &[u8]) {
    match Packet::decode(bytes) {
        Ok(d) => {
            assert!((MIN_PACKET_LEN..=MAX_PACKET_LEN).contains(&bytes.len()));
            assert_eq!(d.signed_bytes().len() + d.signature().len(), bytes.len());
            let _ = d.verify();
            let signed = d
                .packet
                .signed_bytes(&d.key)
                .expect("a decoded packet encodes");
            let again = seal(signed, d.signature()).expect("its signature fits");
            assert!(again.len() <= MAX_PACKET_LEN);
            let back = Packet::decode(&again).expect("a re-encoded packet decodes");
            assert_eq!(back.packet, d.packet, "packet round trip");
            assert_eq!(back.key, d.key);
            assert_eq!(back.signature(), d.signature());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Makes the first byte of a discovery datagram's public key 0x04 (an uncompressed point),
/// when the datagram is long enough to have one.
pub(crate) fn mark_discovery_key(bytes: &mut [u8]) {
    const KEY_AT: usize = 34;
    if let Some(b) = bytes.get_mut(KEY_AT) {
        *b = 0x04;
    }
}

/// Makes the checksum of every complete frame of a stream valid.
pub(crate) fn reseal_frame_stream(bytes: &mut [u8]) {
    let mut pos = 0;
    while pos + HEADER_LEN <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let Some(end) = pos
            .checked_add(HEADER_LEN + len)
            .filter(|&e| e <= bytes.len())
        else {
            return;
        };
        let mut h = crc32fast::Hasher::new();
        h.update(&bytes[pos + 4..pos + 5]);
        h.update(&bytes[pos + HEADER_LEN..end]);
        let crc = h.finalize();
        bytes[pos + 5..pos + 9].copy_from_slice(&crc.to_le_bytes());
        pos = end;
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

// ---- A node fed sequences of remote messages (stateful) ----

/// The node of [`node_session_input`]: its id, and the time its clock reads.
pub(crate) const SESSION_NODE: &str = "fuzz-node";
pub(crate) const SESSION_PEER: &str = "fuzz-peer";
pub(crate) const SESSION_NOW_MS: u64 = 1_700_000_000_000;

/// Reads an input a byte at a time; zeros once it is used up.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn pick<T: Copy>(&mut self, choices: &[T]) -> T {
        choices[usize::from(self.byte()) % choices.len()]
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The `node_session` fuzz target's input: a sequence of steps, each chosen and shaped by
/// the next bytes: a local write, or a message as a peer could send it (a Batch with
/// operations of any origin, number and version, including this node's own origin, the
/// ends of the number and clock ranges and forged origins; an Ack; a catch-up part and
/// its end with any claim; a Vector to serve; a collection of tombstones with a peer away
/// past the horizon; raw bytes decoded as a message and handled as the node handles it,
/// full-state parts and ends included). After every step the node must keep its
/// promises: remote input never moved its sequence numbers (beyond the writes the store
/// reports it wrote again) or its clock beyond the allowed drift, the vector stays within
/// its bounds, the outbox holds only local work, and a local write takes effect (no key
/// can be frozen).
pub(crate) fn node_session_input(data: &[u8]) {
    use softadastra::store::{
        MAX_ORIGINS, MAX_RANGES, Operation, Store, StoreOptions, Version, VersionVector,
    };
    use softadastra::sync::{
        Ack, CollectPolicy, FullStateReceiver, Superseded, SyncBatch, SyncConfig, SyncEngine,
    };

    let mut options = StoreOptions::new(SESSION_NODE, None, false);
    options.time = Some(std::sync::Arc::new(|| SESSION_NOW_MS));
    let drift = options.max_clock_drift_ms;
    let store = Store::open(&options).expect("a memory store opens");
    let mut engine = SyncEngine::new(SESSION_NODE, SyncConfig::default());
    let mut input = Bytes(data);
    let mut local_writes = 0u64;
    let mut fakes = 0u64;
    let mut receiver = FullStateReceiver::default();
    // Remote writes the store wrote again count as local writes.
    let rewrites = |report: &softadastra::store::RemoteApply| {
        report
            .rewritten
            .as_ref()
            .map_or(0, |(stamp, _)| stamp.count)
    };
    let now = Version::from_millis(SESSION_NOW_MS).0;
    let seqs = [1, 2, 3, 7, 1_000_000_000_000, u64::MAX - 1, u64::MAX, 0];
    let versions = [
        now,
        now + 1,
        Version::from_millis(SESSION_NOW_MS + drift).0,
        Version::from_millis(SESSION_NOW_MS + drift + 1).0,
        u64::MAX,
        1,
    ];
    let op = |input: &mut Bytes<'_>, fakes: &mut u64| {
        let origin = match input.byte() % 4 {
            0 => SESSION_NODE.to_string(),
            1 | 2 => SESSION_PEER.to_string(),
            _ => {
                // Fresh forged origins, many at a time.
                *fakes += 1 + u64::from(input.byte()) * 16;
                format!("fake-{fakes}")
            }
        };
        let seq = match input.byte() % 3 {
            0 => input.pick(&seqs),
            _ => 1 + u64::from(input.byte()),
        };
        Operation {
            key: format!("k{}", input.byte() % 8),
            value: (!input.byte().is_multiple_of(4)).then(|| vec![input.byte()]),
            version: Version(input.pick(&versions)),
            origin,
            origin_seq: seq,
            base: None,
        }
    };
    while !input.is_empty() {
        match input.byte() % 8 {
            0 => {
                let key = format!("k{}", input.byte() % 8);
                let stamp = store.put(&key, b"local").expect("a local write succeeds");
                engine.record_local(&store, stamp, [key.as_str()]);
                local_writes += 1;
            }
            1 => {
                let n = 1 + usize::from(input.byte() % 8);
                let ops: Vec<Operation> = (0..n).map(|_| op(&mut input, &mut fakes)).collect();
                let superseded = (0..input.byte() % 4)
                    .map(|_| {
                        let first = input.pick(&seqs);
                        Superseded {
                            first,
                            last: first.saturating_add(u64::from(input.byte() % 3)),
                            version: Version(input.pick(&versions)),
                        }
                    })
                    .collect();
                let origin = input
                    .pick(&[SESSION_PEER, SESSION_NODE, "fake-0"])
                    .to_string();
                let batch = SyncBatch {
                    origin,
                    ops,
                    superseded,
                };
                // Invalid operations (number 0, say) refuse the whole batch: allowed.
                if let Ok((_, r)) = engine.receive_batch_report(&store, &batch, Some(SESSION_PEER))
                {
                    local_writes += rewrites(&r);
                }
            }
            2 => {
                let ranges = (0..input.byte() % 4)
                    .map(|_| {
                        let first = input.pick(&seqs);
                        (first, first.saturating_add(u64::from(input.byte() % 3)))
                    })
                    .collect();
                let origin = input.pick(&[SESSION_NODE, SESSION_PEER]).to_string();
                let _ = engine.receive_ack(&store, &Ack { origin, ranges });
            }
            3 => {
                let n = usize::from(input.byte() % 8);
                let ops: Vec<Operation> = (0..n).map(|_| op(&mut input, &mut fakes)).collect();
                if let Ok(r) = engine.receive_catch_up_part(&store, &ops, Some(SESSION_PEER)) {
                    local_writes += rewrites(&r);
                }
                let claim = VersionVector::from_parts((0..input.byte() % 4).map(|_| {
                    let origin = input.pick(&[SESSION_NODE, SESSION_PEER, "fake-1"]);
                    let contiguous = input.pick(&seqs);
                    (
                        origin.to_string(),
                        contiguous,
                        vec![],
                        Version(input.pick(&versions)),
                    )
                }));
                engine.finish_catch_up(&store, &claim);
            }
            4 => {
                // Serve a catch-up to an empty vector, a part at a time, to the end.
                let peer = VersionVector::new();
                let mut cursor: Option<String> = None;
                for _ in 0..1_000 {
                    let (part, next) = store.missing_part(&peer, cursor.as_deref(), 512, 4);
                    assert!(part.len() <= 4, "a part visits at most its scan budget");
                    match next {
                        Some(k) => {
                            assert!(cursor.as_ref().is_none_or(|c| *c < k), "progress");
                            cursor = Some(k);
                        }
                        None => break,
                    }
                }
            }
            5 => {
                let _ = engine.tick(&store, SESSION_NOW_MS, input.byte().is_multiple_of(2), true);
            }
            6 => {
                // The peer, never heard from, is away past the horizon.
                let peers = [SESSION_PEER.to_string()];
                let policy = CollectPolicy {
                    peers: &peers,
                    now_ms: 10,
                    started_ms: 0,
                    horizon_ms: 1,
                };
                engine.collect_tombstones(&store, &policy);
            }
            _ => {
                // Raw bytes decoded as a message, handled as the node handles it.
                let kind = input.byte();
                let len = usize::from(input.byte());
                let payload: Vec<u8> = (0..len).map(|_| input.byte()).collect();
                match Message::decode(kind, &payload) {
                    Ok(Message::Batch(b)) => {
                        if let Ok((_, r)) =
                            engine.receive_batch_report(&store, &b, Some(SESSION_PEER))
                        {
                            local_writes += rewrites(&r);
                        }
                    }
                    Ok(Message::Ack(a)) => {
                        let _ = engine.receive_ack(&store, &a);
                    }
                    Ok(Message::CatchUp(ops)) => {
                        if let Ok(r) =
                            engine.receive_catch_up_part(&store, &ops, Some(SESSION_PEER))
                        {
                            local_writes += rewrites(&r);
                        }
                    }
                    // As the node does: a part out of order breaks the conversation.
                    Ok(Message::FullCatchUp(part)) if receiver.follows(&part).is_ok() => {
                        let peer = Some(SESSION_PEER);
                        if let Ok(r) = engine.receive_full_part(&store, &mut receiver, &part, peer)
                        {
                            local_writes += rewrites(&r);
                        }
                    }
                    Ok(Message::FullCatchUpDone(v, c)) => {
                        let taken = std::mem::take(&mut receiver);
                        let _ = engine.finish_full_state(&store, taken, &v, &c);
                    }
                    Ok(Message::CatchUpDone(v)) => engine.finish_catch_up(&store, &v),
                    Ok(Message::Vector(v)) => {
                        let _ = store.missing_part(&v, None, 512, 64);
                    }
                    _ => {}
                }
            }
        }
        // The promises.
        assert_eq!(
            store.next_seq(),
            local_writes + 1,
            "remote input moved the numbers"
        );
        assert!(
            store.last_version() <= Version::last_of_millis(SESSION_NOW_MS + drift),
            "remote input moved the clock beyond the drift"
        );
        let v = store.version_vector();
        assert!(v.origin_count() <= MAX_ORIGINS + 1 && v.range_count() <= MAX_RANGES);
        assert!(engine.outbox().counts().total as u64 <= local_writes);
        let key = format!("k{}", input.byte() % 8);
        let value = [b'p', input.byte()];
        let stamp = store.put(&key, &value).expect("a local write succeeds");
        engine.record_local(&store, stamp, [key.as_str()]);
        local_writes += 1;
        assert_eq!(
            store.get(&key).as_deref(),
            Some(&value[..]),
            "the write took effect"
        );
    }
}
