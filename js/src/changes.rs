//! Remote changes to JavaScript: a subscription of the core's change feed whose `notify`
//! calls a JavaScript function through a threadsafe function (coalesced: once until the
//! next `drain`), and the JavaScript side takes the changes with `drain()`. No thread of
//! its own, and the queue stays the core's bounded one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use parking_lot::Mutex;
use softadastra::{ChangeEvent, ChangeSubscription, Client};

use crate::convert::Js;

type Notify = ThreadsafeFunction<(), (), (), napi::Status, false>;

/// A subscription to a client's remote changes.
#[napi]
pub struct NativeSubscription {
    subscription: ChangeSubscription,
    /// Set when `notify` was called and no `drain` has run since.
    signalled: Arc<AtomicBool>,
    /// Released by `close()`, so that a closed subscription keeps no process alive.
    notify: Arc<Mutex<Option<Notify>>>,
}

impl NativeSubscription {
    pub(crate) fn new(
        client: &Client,
        capacity: u32,
        callback: Function<'_, (), ()>,
    ) -> napi::Result<Self> {
        let tsfn: Notify = callback
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .build()?;
        let notify = Arc::new(Mutex::new(Some(tsfn)));
        let signalled = Arc::new(AtomicBool::new(false));
        let subscription = client.subscribe_changes_notify(capacity as usize, {
            let notify = notify.clone();
            let signalled = signalled.clone();
            move || {
                if !signalled.swap(true, Ordering::AcqRel)
                    && let Some(f) = &*notify.lock()
                {
                    f.call((), ThreadsafeFunctionCallMode::NonBlocking);
                }
            }
        });
        Ok(NativeSubscription {
            subscription,
            signalled,
            notify,
        })
    }
}

#[napi]
impl NativeSubscription {
    /// Takes up to `max` waiting events: `{type: "change", key, value, removed, origin,
    /// originSeq, version}` or `{type: "lagged", missed}`.
    #[napi(ts_return_type = "Array<any>")]
    pub fn drain(&self, max: u32) -> Js {
        self.signalled.store(false, Ordering::Release);
        let mut events = Vec::new();
        while events.len() < max as usize {
            let Some(event) = self.subscription.try_next() else {
                break;
            };
            events.push(match event {
                ChangeEvent::Changed(c) => Js::Object(vec![
                    ("type".into(), Js::Text("change".into())),
                    ("removed".into(), Js::Bool(c.value.is_none())),
                    ("key".into(), Js::Text(c.key)),
                    ("value".into(), c.value.map_or(Js::Undefined, Js::Bytes)),
                    ("origin".into(), Js::Text(c.origin)),
                    ("originSeq".into(), Js::BigInt(c.origin_seq)),
                    ("version".into(), Js::BigInt(c.version.0)),
                ]),
                ChangeEvent::Lagged { missed } => Js::Object(vec![
                    ("type".into(), Js::Text("lagged".into())),
                    ("missed".into(), Js::Number(missed as f64)),
                ]),
            });
        }
        if events.len() == max as usize {
            // More may wait: the JavaScript side drains again at once.
            self.signalled.store(false, Ordering::Release);
        }
        Js::List(events)
    }

    /// Ends the subscription and releases the callback.
    #[napi]
    pub fn close(&self) {
        self.subscription.close();
        self.notify.lock().take();
    }
}
