//! A hostile peer speaking docs/protocol.md over a real socket, victim nodes with their own
//! event-loop thread, and a logger that keeps every log line for the tests to read.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use softadastra::store::{Operation, Version};
use softadastra::transport::PROTOCOL_VERSION;
use softadastra::transport::frame::{self, FrameDecoder};
use softadastra::transport::message::{Hello, Message};
use softadastra::{Client, ClientOptions, Peer};

/// Every log line of this test process: (level, target-free message).
static LINES: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = record.args().to_string();
            LINES.lock().unwrap().push((record.level(), line));
        }
    }
    fn flush(&self) {}
}

/// Installs the capturing logger (once per test process).
pub(crate) fn capture_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        static LOGGER: Capture = Capture;
        log::set_logger(&LOGGER).unwrap();
        log::set_max_level(log::LevelFilter::Info);
    });
}

/// The captured lines that contain `needle`.
pub(crate) fn logged(needle: &str) -> Vec<(log::Level, String)> {
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, l)| l.contains(needle))
        .cloned()
        .collect()
}

/// Waits until `done` holds, at most `within`. Returns whether it did.
pub(crate) fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A node under attack: a persistent client on 127.0.0.1 (ephemeral port) whose event loop
/// runs on its own thread, as an application runs it.
pub(crate) struct Node {
    pub client: Arc<Client>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Node {
    pub(crate) fn start(dir: &Path, id: &str) -> Node {
        Self::start_with(dir, id, |_| {})
    }

    pub(crate) fn start_with(dir: &Path, id: &str, tune: impl FnOnce(&mut ClientOptions)) -> Node {
        let wal = dir.join(format!("{id}.wal"));
        let mut options = ClientOptions::persistent(id, wal.to_str().unwrap());
        options.enable_transport = true;
        options.transport_host = "127.0.0.1".into();
        tune(&mut options);
        for _ in 0..20 {
            // A free port now (the options refuse 0); taken meanwhile: another one.
            options.transport_port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let client = Arc::new(Client::new(options.clone()));
            client.open().unwrap();
            match client.start_transport() {
                Ok(()) => return Self::run(client),
                Err(e) if e.to_string().contains("in use") => client.close().unwrap(),
                Err(e) => panic!("{e}"),
            }
        }
        panic!("no free port found")
    }

    fn run(client: Arc<Client>) -> Node {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (client, stop) = (client.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if client
                        .process_transport_events_wait(0, Duration::from_millis(10))
                        .is_err()
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            })
        };
        Node {
            client,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.client.transport_address().unwrap()
    }

    /// Makes this node and `other` trust each other's keys.
    pub(crate) fn trust_each_other(&self, other: &Node) {
        for (a, b) in [(self, other), (other, self)] {
            let info = b.client.node_info().unwrap();
            a.client
                .trust_peer(&info.node_id, &info.fingerprint)
                .unwrap();
        }
    }

    pub(crate) fn peer(&self) -> Peer {
        Peer::local(&self.client.options().node_id, self.addr().port())
    }

    /// Stops the loop, closes the client and opens it again on the same port (a restart).
    pub(crate) fn restart(mut self) -> Node {
        self.halt();
        let client = self.client.clone();
        client.close().unwrap();
        client.open().unwrap();
        client.start_transport().unwrap();
        Self::run(client)
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.halt();
    }
}

/// An operation as a hostile peer would forge it.
pub(crate) fn forged(origin: &str, seq: u64, version: u64, key: &str, value: &[u8]) -> Operation {
    Operation {
        key: key.into(),
        value: Some(value.to_vec()),
        version: Version(version),
        origin: origin.into(),
        origin_seq: seq,
        base: None,
    }
}

/// What an attacker talks over: bare TCP (before or instead of TLS), or a TLS session
/// with a key of its own.
pub(crate) enum Wire {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Wire::Plain(s) => s.read(buf),
            Wire::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Wire::Plain(s) => s.write(buf),
            Wire::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Wire::Plain(s) => s.flush(),
            Wire::Tls(s) => s.flush(),
        }
    }
}

/// A TLS session to be opened with a new key of its own.
pub(crate) struct PendingWire {
    to: SocketAddr,
    session: rustls::ClientConnection,
}

/// A TLS session to `to` with a new key, not connected yet (so that the node can be told to
/// trust the key first); returns it with the key's fingerprint.
pub(crate) fn tls_wire_pending(to: SocketAddr) -> (PendingWire, String) {
    let identity = softadastra::identity::Identity::generate().unwrap();
    let tls = softadastra::transport::tls::TlsContext::new(&identity).unwrap();
    let session = rustls::ClientConnection::new(
        tls.client_config(),
        softadastra::transport::tls::server_name(),
    )
    .unwrap();
    (
        PendingWire { to, session },
        identity.fingerprint().to_string(),
    )
}

impl PendingWire {
    /// Connects and completes the TLS handshake, within a bounded time (the node answers
    /// from its own loop).
    pub(crate) fn finish(self) -> Wire {
        let PendingWire { to, mut session } = self;
        let mut stream = TcpStream::connect(to).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let start = Instant::now();
        while session.is_handshaking() && start.elapsed() < Duration::from_secs(10) {
            match session.complete_io(&mut stream) {
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
        Wire::Tls(Box::new(rustls::StreamOwned::new(session, stream)))
    }
}

/// A peer that speaks the protocol by hand.
pub(crate) struct Attacker {
    pub stream: Wire,
    decoder: FrameDecoder,
}

impl Attacker {
    /// Connects over TLS with a key `victim` trusts as `id` (a trusted node gone rogue),
    /// and completes the handshake as `id`.
    pub(crate) fn join(victim: &Node, id: &str) -> Attacker {
        Self::join_as(victim, id, id, 0x5eed)
    }

    pub(crate) fn join_as(
        victim: &Node,
        id: &str,
        display_name: &str,
        instance_id: u64,
    ) -> Attacker {
        Self::hello(Self::trusted(victim, id), id, display_name, instance_id)
    }

    /// Sends the Hello as `id` and waits for the node's.
    pub(crate) fn hello(
        mut a: Attacker,
        id: &str,
        display_name: &str,
        instance_id: u64,
    ) -> Attacker {
        a.send(&Message::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            node_id: id.into(),
            display_name: display_name.into(),
            capabilities: vec![],
            auth_scheme: 0,
            auth_data: vec![],
            instance_id,
        }));
        let hello = a.recv_until(Duration::from_secs(5), |m| matches!(m, Message::Hello(_)));
        assert!(hello.is_some(), "the node answered the Hello");
        a
    }

    /// A TLS connection with a key `victim` trusts as `id`, no Hello yet.
    pub(crate) fn trusted(victim: &Node, id: &str) -> Attacker {
        Self::trusted_by(victim.addr(), |fingerprint| {
            victim.client.trust_peer(id, fingerprint).unwrap();
        })
    }

    /// A TLS connection to `to` with a new key, which `trust` makes the node trust first.
    pub(crate) fn trusted_by(to: SocketAddr, trust: impl FnOnce(&str)) -> Attacker {
        let (wire, fingerprint) = tls_wire_pending(to);
        trust(&fingerprint);
        Attacker {
            stream: wire.finish(),
            decoder: FrameDecoder::new(64 * 1024 * 1024),
        }
    }

    /// A TLS connection with a key nobody trusts, no Hello yet.
    pub(crate) fn stranger(to: SocketAddr) -> Attacker {
        Attacker {
            stream: tls_wire_pending(to).0.finish(),
            decoder: FrameDecoder::new(64 * 1024 * 1024),
        }
    }

    /// A bare TCP connection, no TLS, no handshake.
    pub(crate) fn connect(to: SocketAddr) -> Attacker {
        let stream = TcpStream::connect(to).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Attacker {
            stream: Wire::Plain(stream),
            decoder: FrameDecoder::new(64 * 1024 * 1024),
        }
    }

    pub(crate) fn send(&mut self, m: &Message) {
        let mut payload = Vec::new();
        m.encode(&mut payload);
        let mut out = Vec::new();
        frame::encode(&mut out, m.kind(), &payload);
        self.stream.write_all(&out).unwrap();
    }

    /// The next message within `within`; `None` on time-out or when the node closed.
    pub(crate) fn recv(&mut self, within: Duration) -> Option<Message> {
        let start = Instant::now();
        let mut buf = [0u8; 64 * 1024];
        loop {
            if let Some((kind, payload)) = self.decoder.next_frame().unwrap() {
                return Some(Message::decode(kind, &payload).unwrap());
            }
            if start.elapsed() >= within {
                return None;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.decoder.feed(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
    }

    /// The first message matching `wanted` within `within` (others are skipped).
    pub(crate) fn recv_until(
        &mut self,
        within: Duration,
        mut wanted: impl FnMut(&Message) -> bool,
    ) -> Option<Message> {
        let start = Instant::now();
        while start.elapsed() < within {
            match self.recv(within.saturating_sub(start.elapsed())) {
                Some(m) if wanted(&m) => return Some(m),
                Some(_) => {}
                None => return None,
            }
        }
        None
    }

    /// Whether the node closed the connection within `within` (messages are skipped).
    pub(crate) fn closed_within(&mut self, within: Duration) -> bool {
        let start = Instant::now();
        let mut buf = [0u8; 64 * 1024];
        while start.elapsed() < within {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return true,
            }
        }
        false
    }
}
