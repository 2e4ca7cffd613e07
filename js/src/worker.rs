//! A client's own thread for its calls. Batches run on it one at a time, in the order
//! JavaScript handed them over, and their results go back in the same order through one
//! threadsafe function (`deliver`), which resolves them on the JavaScript thread.
//!
//! Why a thread of its own rather than Node-API async work on the libuv pool: a batch on
//! the pool cannot be handed over until the previous one has finished, or two pool
//! threads would run a client's calls out of order. Here JavaScript hands a batch over as
//! soon as it holds enough calls (`HANDOVER` in index.js), and the thread works through it
//! while JavaScript is still making the next calls: the two overlap instead of taking
//! turns. And a pool thread is never held waiting for a client's earlier batch.
//!
//! After a batch, when the machine has more than one core, the thread waits for the next
//! one by spinning for at most [`SPIN`] before it sleeps: an application that awaits each
//! call hands the next one over within that time, which saves waking a sleeping thread
//! (tens of microseconds on a virtual machine, a sizeable part of a synced write). With a
//! single core, spinning would only delay the JavaScript thread that makes the next call,
//! so the thread sleeps at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use parking_lot::{Condvar, Mutex};
use softadastra::{Client, Error};

use crate::calls::{self, Batch};
use crate::convert::Js;

/// The JavaScript function that takes each batch's results (`[ok, value or error]` per
/// call, flat), in the order the batches were handed over. Weak: it keeps the process
/// alive only while batches are out (`NativeClient` refers it then).
pub(crate) type Deliver = ThreadsafeFunction<Js, (), Js, napi::Status, false, true>;

/// How long the thread spins for the next batch before it sleeps.
const SPIN: Duration = Duration::from_micros(100);

/// The thread's side of a client: its batches, and what it needs to run them.
struct Shared {
    client: Arc<Client>,
    options_error: Option<Arc<Error>>,
    deliver: Deliver,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Batches in the queue, read without the lock while spinning.
    queued: AtomicUsize,
    spin: bool,
}

#[derive(Default)]
struct Queue {
    batches: VecDeque<Batch>,
    /// Set when the client is gone: the thread finishes the queue, then ends.
    stopping: bool,
    /// The thread sleeps on `wake` (so handing a batch over must wake it).
    sleeping: bool,
}

/// The JavaScript client's handle on its thread. Dropping it (the client collected) lets
/// the thread finish what it holds and end.
pub(crate) struct Worker {
    shared: Arc<Shared>,
}

impl Worker {
    /// Starts the thread.
    pub(crate) fn start(
        client: Arc<Client>,
        options_error: Option<Arc<Error>>,
        deliver: Deliver,
    ) -> std::io::Result<Worker> {
        let spin = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
        let shared = Arc::new(Shared {
            client,
            options_error,
            deliver,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            queued: AtomicUsize::new(0),
            spin,
        });
        let thread_side = shared.clone();
        std::thread::Builder::new()
            .name("softadastra-js".into())
            .spawn(move || thread_side.run())?;
        Ok(Worker { shared })
    }

    /// Hands a batch over; it runs after every batch handed over before it.
    pub(crate) fn hand_over(&self, batch: Batch) {
        let mut queue = self.shared.queue.lock();
        queue.batches.push_back(batch);
        self.shared.queued.fetch_add(1, Ordering::Release);
        let sleeping = queue.sleeping;
        drop(queue);
        if sleeping {
            self.shared.wake.notify_one();
        }
    }

    /// The function results go to (to refer and unref it on the JavaScript thread).
    pub(crate) fn deliver(&self) -> &Deliver {
        &self.shared.deliver
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shared.queue.lock().stopping = true;
        self.shared.wake.notify_one();
    }
}

impl Shared {
    fn run(&self) {
        while let Some(batch) = self.next_batch() {
            let results = calls::run_batch(&self.client, self.options_error.as_deref(), batch);
            // Fails only when the JavaScript environment is going away: nobody waits then.
            self.deliver
                .call(Js::List(results), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    /// The next batch, or `None` once the client is gone and the queue is empty.
    fn next_batch(&self) -> Option<Batch> {
        if self.spin && self.queued.load(Ordering::Acquire) == 0 {
            let until = Instant::now() + SPIN;
            while self.queued.load(Ordering::Acquire) == 0 && Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        let mut queue = self.queue.lock();
        loop {
            if let Some(batch) = queue.batches.pop_front() {
                self.queued.fetch_sub(1, Ordering::Release);
                return Some(batch);
            }
            if queue.stopping {
                return None;
            }
            queue.sleeping = true;
            self.wake.wait(&mut queue);
            queue.sleeping = false;
        }
    }
}
