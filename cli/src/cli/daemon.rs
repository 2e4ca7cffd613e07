//! `node start`: a long-running node. Transport (and discovery when enabled), the configured
//! peers, a periodic sync tick and metadata refresh, the control socket, the metrics
//! endpoint when configured, and the health watch; SIGINT or SIGTERM stops it gracefully
//! (the request in progress finishes, the WAL is flushed and closed, exit 0). When its
//! writes are refused (a full disk, an I/O error), the library's `HealthWatch` decides when
//! it exits with status 1 for its service manager to restart it (docs/monitoring.md).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use softadastra::{Client, Error, HealthWatch, Peer, PeerState};

use super::config::Settings;
use super::{CliError, control};

/// How long `node start` waits for the WAL's lock held by a command that opened the data
/// directory (it announced itself first, so no new command takes the lock meanwhile).
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(15);

/// How often node metadata is refreshed.
const METADATA_REFRESH: Duration = Duration::from_secs(5);
/// How often peer states are checked for changes to log.
const PEER_CHECK: Duration = Duration::from_millis(500);

static STOP: AtomicBool = AtomicBool::new(false);
/// The signal that asked the node to stop (0: none yet), set by signal-hook's handler.
static SIGNAL: LazyLock<Arc<AtomicUsize>> = LazyLock::new(|| Arc::new(AtomicUsize::new(0)));

/// Whether the node should stop: a signal arrived, or the node decided to.
fn stopping() -> bool {
    STOP.load(Ordering::SeqCst) || SIGNAL.load(Ordering::SeqCst) != 0
}

fn install_signal_handlers() -> Result<(), CliError> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        signal_hook::flag::register_usize(sig, Arc::clone(&SIGNAL), sig as usize)
            .map_err(|e| CliError::failure(format!("cannot install the signal handler: {e}")))?;
    }
    Ok(())
}

/// The control socket, removed when dropped.
struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `<data_dir>/control.sock` with mode 0600. A socket file no node answers on is a
/// leftover of a node that died: it is removed. One a node answers on means that node runs.
fn check_not_running(path: &Path) -> Result<(), CliError> {
    if path.exists() && std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(CliError::failure(format!(
            "node cannot start: a node is already running on this data directory \
             (control socket {})",
            path.display()
        )));
    }
    Ok(())
}

fn bind_control(path: &Path) -> Result<ControlSocket, CliError> {
    control::check_socket_dir(path, true)?;
    if path.exists() {
        check_not_running(path)?;
        log::info!("removing stale control socket {}", path.display());
        std::fs::remove_file(path).map_err(|e| {
            CliError::failure(format!(
                "cannot remove stale control socket {}: {e}",
                path.display()
            ))
        })?;
    }
    // Created with no permission for group and others from the start, then set to 0600.
    // SAFETY: umask only changes this process's file creation mask.
    let old = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let listener = bound.map_err(|e| {
        CliError::failure(format!(
            "cannot bind the control socket {}: {e}",
            path.display()
        ))
    })?;
    let socket = ControlSocket {
        listener,
        path: path.to_path_buf(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| CliError::failure(format!("cannot chmod {}: {e}", path.display())))?;
    socket
        .listener
        .set_nonblocking(true)
        .map_err(|e| CliError::failure(format!("control socket {}: {e}", path.display())))?;
    Ok(socket)
}

fn start_failed(what: &str, e: Error) -> CliError {
    log::error!("{what}: {e}");
    CliError::failure(format!("node cannot start: {what}: {e}"))
}

/// Runs the node until SIGINT/SIGTERM. The settings are resolved and printed by the caller.
pub(crate) fn run(settings: &Settings, out: &super::output::Out) -> Result<(), CliError> {
    install_signal_handlers()?;
    check_not_running(&settings.socket_path()).inspect_err(|e| log::error!("{}", e.message))?;
    let options = settings.client_options(true);
    // What the production guide advises against (a WAL in a temporary directory, a generic
    // node id): said, not refused.
    for advice in options.advice() {
        log::warn!("{advice}");
        out.warn(&advice);
    }
    let client = Client::new(options.clone());
    // Commands that start from now on wait for this node instead of opening the WAL; one
    // that holds it already is waited for (LOCK_WAIT at most).
    let starting = super::data_dir::Starting::announce(&settings.data_dir)?;
    let deadline = Instant::now() + LOCK_WAIT;
    let mut opened = client.open();
    while let Err(e) = &opened
        && super::wal_locked(e)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
        opened = client.open();
    }
    if let Err(e) = opened {
        let what = if matches!(e, Error::Store(_)) {
            format!("WAL open failed ({})", options.wal_path)
        } else {
            "client open failed".to_string()
        };
        return Err(start_failed(&what, e));
    }
    // Configured keys are trusted before the transport starts, so the first connection
    // from or to each peer is accepted.
    for p in &settings.peers {
        match &p.fingerprint {
            Some(fp) => client
                .trust_peer(&p.node_id, fp)
                .map_err(|e| start_failed("trusting a configured peer failed", e))?,
            None if !options.insecure_transport
                && !client
                    .trusted_peers()
                    .is_ok_and(|t| t.iter().any(|t| t.node_id == p.node_id)) =>
            {
                log::warn!(
                    "peer {p} has no fingerprint and is not trusted: its connections will be \
                     refused; configure it as {p}#<fingerprint> or run `softadastra peers \
                     trust {} <fingerprint>`",
                    p.node_id
                );
            }
            None => {}
        }
    }
    if options.enable_transport {
        client
            .start_transport()
            .map_err(|e| start_failed("transport start failed", e))?;
    }
    if options.enable_discovery {
        client
            .start_discovery()
            .map_err(|e| start_failed("discovery start failed", e))?;
    }
    for p in &settings.peers {
        let peer = Peer::new(&p.node_id, &p.host, p.port);
        match client.connect(&peer) {
            Ok(()) => log::info!("connecting to peer {p}"),
            Err(e) => log::warn!("peer {p}: connection failed: {e}"),
        }
    }
    let metrics = match &settings.metrics_addr {
        Some(addr) => Some(
            client
                .start_metrics_server(addr)
                .map_err(|e| start_failed("metrics endpoint start failed", e))?,
        ),
        None => None,
    };
    let control = bind_control(&settings.socket_path())?;
    drop(starting); // commands now reach the node through its socket
    match client.refresh_node_info() {
        Ok(info) => log::info!(
            "node metadata refreshed: {} on {} ({}), version {}",
            info.display_name,
            info.hostname,
            info.os_name,
            info.version
        ),
        Err(e) => log::warn!("node metadata refresh failed: {e}"),
    }
    log::info!(
        "node running; control socket {}",
        settings.socket_path().display()
    );
    let running = |b: bool| if b { "running" } else { "stopped" };
    out.ok("Softadastra node started.");
    out.kv("node_id", settings.node_id());
    out.kv(
        "transport",
        &client
            .transport_address()
            .map_or_else(|_| "stopped".to_string(), |a| format!("running on {a}")),
    );
    out.kv("discovery", running(client.discovery_running()));
    out.kv("metadata", "running");
    out.kv("control", &settings.socket_path().display().to_string());
    out.kv(
        "metrics",
        &metrics.map_or_else(|| "off".to_string(), |a| format!("http://{a}/metrics")),
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // Control requests are served on threads of their own, so that a slow control client
    // never stalls the network; they are joined before the client closes, so a request
    // in progress (a write) always finishes before the stop.
    let result = std::thread::scope(|scope| {
        let server = scope.spawn(|| control_loop(&client, &control));
        let result = node_loop(&client, settings);
        STOP.store(true, Ordering::SeqCst);
        if server.join().is_err() {
            log::error!("control socket thread panicked");
        }
        result
    });
    let sig = SIGNAL.load(Ordering::SeqCst) as i32;
    if sig != 0 {
        log::info!(
            "{} received, stopping",
            if sig == libc::SIGTERM {
                "SIGTERM"
            } else {
                "SIGINT"
            }
        );
    }
    drop(control);
    let closed = client.close();
    match (result, closed) {
        // Stopped for refused writes: closing cannot flush either; the refusal is the error.
        (Err(e), Err(close)) => {
            log::error!("close failed: {close}");
            Err(e)
        }
        (Ok(()), Err(e)) => {
            log::error!("close failed: {e}");
            Err(CliError::from(e))
        }
        (result, Ok(())) => {
            log::info!("node stopped");
            result
        }
    }
}

/// How long the loops sleep at most before they look at the stop flag again: a stop is
/// seen within this, and an idle node wakes 10 times a second per loop (a small fraction
/// of a percent of a core).
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// Waits until `listener` has a connection to accept, or `IDLE_WAIT` passes.
fn wait_readable(listener: &UnixListener) {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout = i32::try_from(IDLE_WAIT.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd for the duration of the call. An error (EINTR when a
    // signal arrives) just ends the wait early.
    unsafe { libc::poll(&mut fd, 1, timeout) };
}

/// How many control connections are served at once. Each has a thread of its own, so a
/// client that stalls holds only its own (for [`control::IO_TIMEOUT`] at most) and the
/// other commands are answered meanwhile; with every slot taken, new connections wait in
/// the listen backlog until one frees, which is within that timeout. 8 is plenty for
/// commands typed or scripted on one machine, and bounds the memory that requests can
/// hold at once (each at most [`control::MAX_REQUEST_BYTES`]).
const MAX_CONTROL_CONNECTIONS: usize = 8;

/// A connection's place among the [`MAX_CONTROL_CONNECTIONS`], given back when dropped
/// (also when its thread could not start, or panicked).
struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    fn take(active: &'a AtomicUsize) -> Self {
        active.fetch_add(1, Ordering::SeqCst);
        Slot(active)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts control connections until the stop, and serves each on a thread of its own.
/// Every connection thread is joined before this returns, so a request in progress
/// finishes before the node closes.
fn control_loop(client: &Client, control: &ControlSocket) {
    let active = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        while !stopping() {
            if active.load(Ordering::SeqCst) >= MAX_CONTROL_CONNECTIONS {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            match control.listener.accept() {
                Ok((stream, _)) => {
                    let slot = Slot::take(&active);
                    let spawned = std::thread::Builder::new()
                        .name("control".into())
                        .spawn_scoped(scope, move || {
                            let _slot = slot;
                            control::serve(client, stream);
                        });
                    if let Err(e) = spawned {
                        // The connection is closed unanswered; the command reports it.
                        log::warn!("control socket: cannot start a connection thread: {e}");
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    wait_readable(&control.listener);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("control socket accept failed: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    });
}

fn node_loop(client: &Client, settings: &Settings) -> Result<(), CliError> {
    let tick_every = Duration::from_millis(settings.tick_interval_ms);
    let networked = client.transport_running() || client.discovery_running();
    let mut last_tick = Instant::now();
    let mut last_refresh = Instant::now();
    let mut last_peer_check = Instant::now();
    let mut peer_states: HashMap<String, PeerState> = HashMap::new();
    let mut failed_seen = client.sync_state().map(|s| s.failed_count).unwrap_or(0);
    let mut health = HealthWatch::new(Duration::from_millis(settings.health_exit_after_ms));
    while !stopping() {
        if let Some(reason) = health.check(client, Instant::now()) {
            // Status 1 (not 2): a restart reopens the store, which takes writes again once
            // the cause cleared; the systemd unit restarts on it.
            return Err(CliError {
                exit: 1,
                code: "io_error".into(),
                message: format!(
                    "node stopped: writes refused: {reason}; restart it (the service \
                     manager does) to reopen the store"
                ),
            });
        }
        // Sleeps until the network has work (or a local write arrives), never past a
        // timer, at most IDLE_WAIT.
        if networked {
            let wait = IDLE_WAIT.min(tick_every);
            if let Err(e) = client.process_transport_events_wait(256, wait) {
                log::warn!("transport events: {e}");
                std::thread::sleep(wait);
            }
        } else {
            std::thread::sleep(IDLE_WAIT.min(tick_every));
        }
        let now = Instant::now();
        if now.duration_since(last_tick) >= tick_every {
            last_tick = now;
            match client.tick(false) {
                Ok(t) if t.retried_count + t.batch_size + t.pruned_count > 0 => log::info!(
                    "sync tick: retried {}, batch {}, pruned {}",
                    t.retried_count,
                    t.batch_size,
                    t.pruned_count
                ),
                Ok(_) => {}
                Err(e) => log::warn!("sync tick failed: {e}"),
            }
            if let Ok(state) = client.sync_state() {
                if state.failed_count > failed_seen {
                    log::warn!(
                        "sync failed work: {} operations gave up after their retries ({} new); \
                         local data is intact and reaches peers by catch-up",
                        state.failed_count,
                        state.failed_count - failed_seen
                    );
                }
                failed_seen = state.failed_count;
            }
        }
        if networked && now.duration_since(last_peer_check) >= PEER_CHECK {
            last_peer_check = now;
            log_peer_changes(client, &mut peer_states);
        }
        if now.duration_since(last_refresh) >= METADATA_REFRESH {
            last_refresh = now;
            if let Err(e) = client.refresh_node_info() {
                log::warn!("node metadata refresh failed: {e}");
            }
        }
    }
    Ok(())
}

fn log_peer_changes(client: &Client, known: &mut HashMap<String, PeerState>) {
    let Ok(peers) = client.peers() else { return };
    for p in peers {
        let before = known.insert(p.node_id.clone(), p.state);
        if before == Some(p.state) {
            continue;
        }
        let who = if p.node_id.is_empty() {
            format!("{}:{}", p.host, p.port)
        } else {
            format!("{} at {}:{}", p.node_id, p.host, p.port)
        };
        match p.state {
            PeerState::Connected => log::info!("peer {who} connected"),
            PeerState::Faulted => {
                log::warn!("peer {who} connection failed; sync work stays tracked and is retried");
            }
            PeerState::Stale => log::info!("peer {who} is stale"),
            PeerState::Expired => log::info!("peer {who} expired"),
            PeerState::Available | PeerState::Unknown => {}
        }
    }
}
