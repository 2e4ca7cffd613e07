//! The opt-in background mode: the event loop, and a periodic tick, on a thread the client
//! owns (`Client::start_background`). Without it nothing runs behind the application's
//! back: it calls `process_transport_events` (or the waiting form) itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::*;

/// How long the background loop waits for network events in one turn. It bounds how late
/// a timer (ACK timeout, retry, redial, discovery ageing) fires, and costs one wake-up per
/// turn on an idle node (10 a second: a few microseconds of CPU each).
pub(super) const BACKGROUND_WAIT: Duration = Duration::from_millis(100);
/// How often the background loop prunes acknowledged operations from the outbox.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

/// A running background loop.
pub(super) struct Background {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Client {
    /// Runs the event loop on a thread of the client's: network events are handled as they
    /// come (a local write wakes it at once), timers fire within 100 ms, and acknowledged
    /// operations are pruned every second. Starting it twice does nothing; `close()` (and
    /// dropping the client) stops it. `InvalidState` when the client is closed. The
    /// transport and discovery are still started by the application; until one runs, the
    /// thread sleeps.
    pub fn start_background(&self) -> Result<()> {
        // Closed or poisoned: the error says which.
        self.with_node(|_| Ok(()))?;
        let Some(node) = self.node.read().clone() else {
            return Err(Error::NotOpen);
        };
        let mut background = self.background.lock();
        if background.as_ref().is_some_and(|b| !b.thread.is_finished()) {
            return Ok(());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let options = self.options.clone();
        let poisoned = self.poisoned.clone();
        let thread = std::thread::Builder::new()
            .name(format!("softadastra-{}", self.options.node_id))
            .spawn({
                let stop = stop.clone();
                let clock = self.clock.clone();
                move || run(&options, &node, &*clock, &stop, &poisoned)
            })
            .map_err(|e| Error::Internal(format!("cannot start the background thread: {e}")))?;
        log::info!("node {}: background event loop started", self.options.node_id);
        *background = Some(Background { stop, thread });
        Ok(())
    }

    /// Stops the background loop and waits for its thread (at most one turn). Stopping a
    /// client without one does nothing.
    pub fn stop_background(&self) {
        let Some(background) = self.background.lock().take() else {
            return;
        };
        background.stop.store(true, Ordering::SeqCst);
        if let Some(node) = self.node.read().as_ref()
            && let Some(waker) = &*node.waker.read()
        {
            let _ = waker.wake();
        }
        background.thread.thread().unpark();
        if background.thread.join().is_err() {
            log::error!("node {}: the background thread panicked", self.options.node_id);
        }
        log::info!("node {}: background event loop stopped", self.options.node_id);
    }

    /// Whether the background loop runs (it stops by itself only after a panic).
    pub fn background_running(&self) -> bool {
        self.background
            .lock()
            .as_ref()
            .is_some_and(|b| !b.thread.is_finished())
    }
}

/// The background thread: turns of the event loop until `stop`.
fn run(
    options: &ClientOptions,
    node: &Arc<OpenNode>,
    clock: &dyn crate::clock::Clock,
    stop: &AtomicBool,
    poisoned: &Mutex<Option<String>>,
) {
    let mut last_prune = std::time::Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if poisoned.lock().is_some() {
            break;
        }
        let turn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let stepped = network::event_loop_step(options, node, 1024, BACKGROUND_WAIT);
            if last_prune.elapsed() >= PRUNE_EVERY {
                last_prune = std::time::Instant::now();
                node.sync().prune_completed();
                collection::collect(options, node);
                compaction::maybe_compact(options, node, clock.wall_ms());
            }
            stepped
        }));
        match turn {
            Ok(Ok(_)) => {}
            // Neither the transport nor discovery runs: nothing to wait on but a stop.
            Ok(Err(Error::TransportUnavailable(_))) => std::thread::park_timeout(BACKGROUND_WAIT),
            Ok(Err(e)) => {
                log::warn!("node {}: background event loop: {e}", options.node_id);
                std::thread::park_timeout(BACKGROUND_WAIT);
            }
            Err(payload) => {
                let what = crate::error::panic_text(payload.as_ref());
                log::error!(
                    "node {}: the background event loop panicked ({what}); the client \
                     refuses every call until it is closed and opened again",
                    options.node_id
                );
                *poisoned.lock() = Some(format!("a panic in the background loop ({what})"));
                break;
            }
        }
    }
}
