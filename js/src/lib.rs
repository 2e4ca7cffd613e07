//! The Node.js addon behind `@softadastra/sdk`. It holds no logic of its own: every call
//! goes to `softadastra::Client`, options and returned values convert through
//! `softadastra::surface` (`convert.rs`), and the JavaScript API around it (Result,
//! ClientOptions, Client) is `index.js`.
//!
//! Threads: a client's calls arrive in batches (`NativeClient::run`), in the order the
//! application made them, and run in that order on the client's own thread
//! (`worker.rs`), so the JavaScript thread never waits for the disk or the network. Each
//! batch's results come back through the client's `deliver` function. Nothing here throws
//! to JavaScript: every call resolves to `[true, value]` or
//! `[false, {code, codeNumber, message, context}]`, a panic included.

mod calls;
mod changes;
mod convert;
mod worker;

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use napi::bindgen_prelude::{Env, Function, Unknown};
use napi::{JsValue, sys};
use napi_derive::napi;
use softadastra::surface::{self, Described, OptionKind};
use softadastra::{Client, Error};

pub use changes::NativeSubscription;
pub use convert::Js;
use convert::{Arg, camel};

/// A client: the core's `Client`, shared with the calls in progress, which keep it
/// alive (a call made after `close()` gets the "not open" error, never a crash).
#[napi]
pub struct NativeClient {
    client: Arc<Client>,
    /// Why the options given could not be converted: `open()` returns it.
    options_error: Option<Arc<Error>>,
    /// Where results go, until the thread starts (at the first batch) and takes it.
    deliver: Cell<Option<worker::Deliver>>,
    worker: RefCell<Option<worker::Worker>>,
    /// Batches handed over and not yet settled: `deliver` keeps the process alive while
    /// there are any, and only then.
    batches_out: Cell<u32>,
}

/// Reads a JavaScript value (on the JavaScript thread).
fn read(value: &Unknown<'_>) -> napi::Result<Arg> {
    let raw = value.value();
    // SAFETY: a value handed to this call by Node, read during the call.
    unsafe { Arg::read(raw.env, raw.value) }
}

#[napi]
impl NativeClient {
    /// A closed client with these options (an object of camelCase option names). Options
    /// that cannot be converted make `open()` fail with an error naming them. `deliver`
    /// receives each batch's results (`[ok, value or error]` per call, flat), in the order
    /// the batches were handed to `run`.
    #[napi(constructor)]
    pub fn new(
        options: Unknown<'_>,
        #[napi(ts_arg_type = "(outcomes: Array<any>) => void")] deliver: Function<'_, Js, ()>,
    ) -> napi::Result<Self> {
        let (options, options_error) = match convert::options_from(&read(&options)?) {
            Ok(o) => (o, None),
            Err(e) => (softadastra::ClientOptions::default(), Some(Arc::new(e))),
        };
        let deliver: worker::Deliver = deliver
            .build_threadsafe_function::<Js>()
            .callee_handled::<false>()
            .weak::<true>()
            .build()?;
        Ok(NativeClient {
            client: Arc::new(Client::new(options)),
            options_error,
            deliver: Cell::new(Some(deliver)),
            worker: RefCell::new(None),
            batches_out: Cell::new(0),
        })
    }

    /// Hands a batch of calls to the client's thread, laid out flat: for each call, its
    /// number in `callNames()`, how many arguments follow, the arguments. Its results go
    /// to `deliver`; the caller then calls `settled()`.
    #[napi(ts_args_type = "calls: Array<any>")]
    pub fn run(&self, env: Env, calls: Unknown<'_>) -> napi::Result<()> {
        let raw = calls.value();
        // SAFETY: a value handed to this call by Node, read during the call.
        let batch = unsafe { Arg::read_calls(raw.env, raw.value)? };
        let mut worker = self.worker.borrow_mut();
        if worker.is_none() {
            let deliver = self
                .deliver
                .take()
                .ok_or_else(|| napi::Error::from_reason("the client's thread did not start"))?;
            let started =
                worker::Worker::start(self.client.clone(), self.options_error.clone(), deliver)
                    .map_err(|e| napi::Error::from_reason(format!("starting a thread: {e}")))?;
            *worker = Some(started);
        }
        let worker = worker.as_ref().expect("started above");
        if self.batches_out.get() == 0 {
            // SAFETY: the function is alive (held by the worker); on the JavaScript thread.
            // A failure (the environment closing) leaves it weak: nothing to wait for then.
            unsafe { sys::napi_ref_threadsafe_function(env.raw(), worker.deliver().raw()) };
        }
        self.batches_out
            .set(self.batches_out.get().saturating_add(1));
        worker.hand_over(batch);
        Ok(())
    }

    /// Called once per batch delivered: when none is left out, `deliver` stops keeping the
    /// process alive.
    #[napi]
    pub fn settled(&self, env: Env) {
        let out = self.batches_out.get().saturating_sub(1);
        self.batches_out.set(out);
        if out == 0
            && let Some(worker) = &*self.worker.borrow()
        {
            // SAFETY: as in `run`.
            unsafe { sys::napi_unref_threadsafe_function(env.raw(), worker.deliver().raw()) };
        }
    }

    /// Whether the client is open.
    #[napi]
    pub fn is_open(&self) -> bool {
        self.client.is_open()
    }

    /// Whether the transport runs.
    #[napi]
    pub fn transport_running(&self) -> bool {
        self.client.transport_running()
    }

    /// Whether discovery runs.
    #[napi]
    pub fn discovery_running(&self) -> bool {
        self.client.discovery_running()
    }

    /// Whether the background loop runs.
    #[napi]
    pub fn background_running(&self) -> bool {
        self.client.background_running()
    }

    /// The options the client was made with (camelCase names).
    #[napi(ts_return_type = "Record<string, any>")]
    pub fn options(&self) -> Js {
        convert::options_to(self.client.options())
    }

    /// Subscribes to remote changes: `notify` is called (coalesced) when changes wait;
    /// the subscription's `drain()` takes them.
    #[napi]
    pub fn subscribe(
        &self,
        capacity: u32,
        notify: napi::bindgen_prelude::Function<'_, (), ()>,
    ) -> napi::Result<changes::NativeSubscription> {
        changes::NativeSubscription::new(&self.client, capacity, notify)
    }
}

/// Every option: its camelCase name, snake_case name, number, kind ("text", "bool",
/// "uint") and largest value (uint only), from `surface::OPTIONS`.
#[napi(
    ts_return_type = "Array<{name: string, snakeName: string, number: number, kind: string, max: number | bigint}>"
)]
pub fn option_specs() -> Js {
    Js::List(
        surface::OPTIONS
            .iter()
            .map(|s| {
                let kind = match s.kind {
                    OptionKind::SaOptionKindText => "text",
                    OptionKind::SaOptionKindBool => "bool",
                    OptionKind::SaOptionKindUint => "uint",
                };
                Js::Object(vec![
                    ("name".into(), Js::Text(camel(s.name))),
                    ("snakeName".into(), Js::Text(s.name.into())),
                    ("number".into(), Js::Number(f64::from(s.id as u32))),
                    ("kind".into(), Js::Text(kind.into())),
                    (
                        "max".into(),
                        Js::of_value("max", &surface::Value::Uint(s.max)),
                    ),
                ])
            })
            .collect(),
    )
}

/// The options of a preset: "default", "persistent" (also durable), "fast" or
/// "memoryOnly" (also local).
#[napi(ts_return_type = "[boolean, any]")]
pub fn preset_options(preset: String, node_id: Option<String>, wal_path: Option<String>) -> Js {
    let node_id = node_id.unwrap_or_else(|| "node-1".into());
    let wal_path = wal_path.unwrap_or_else(|| "data/sdk-store.wal".into());
    let options = match preset.as_str() {
        "default" => Ok(softadastra::ClientOptions::default()),
        "persistent" => Ok(softadastra::ClientOptions::persistent(&node_id, &wal_path)),
        "fast" => Ok(softadastra::ClientOptions::fast(&node_id, &wal_path)),
        "memoryOnly" => Ok(softadastra::ClientOptions::memory_only(&node_id)),
        other => Err(Error::InvalidArgument {
            argument: "preset".into(),
            reason: format!("no preset named {other:?}"),
        }),
    };
    Js::outcome(options.map(|o| convert::options_to(&o)))
}

/// Checks options as `open()` would (`ClientOptions::validate`).
#[napi(ts_return_type = "[boolean, any]")]
pub fn validate_options(options: Unknown<'_>) -> napi::Result<Js> {
    let arg = read(&options)?;
    Ok(Js::outcome(
        convert::options_from(&arg).and_then(|o| o.validate().map(|()| Js::Undefined)),
    ))
}

/// `name=value` lines of every option, as C++ `ClientOptions::describe`.
#[napi(ts_return_type = "[boolean, any]")]
pub fn describe_options(options: Unknown<'_>) -> napi::Result<Js> {
    let arg = read(&options)?;
    Ok(Js::outcome(
        convert::options_from(&arg).map(|o| Js::Text(surface::describe(&o))),
    ))
}

/// The camelCase field names of every value type a call returns, from
/// `Described::fields` (for the TypeScript declarations and the parity test).
#[napi(ts_return_type = "Record<string, Array<{name: string, type: string}>>")]
pub fn surface_types() -> Js {
    let info = softadastra::NodeInfo {
        node_id: String::new(),
        display_name: String::new(),
        hostname: String::new(),
        os_name: String::new(),
        version: String::new(),
        started_at_ms: 0,
        uptime_ms: 0,
        capabilities: Vec::new(),
        fingerprint: String::new(),
    };
    let op = |origin: &str| softadastra::OpId {
        origin: origin.into(),
        seq: 0,
        version: softadastra::Version(0),
    };
    let conflict = softadastra::Conflict {
        key: String::new(),
        local: op("a"),
        remote: op("b"),
        remote_won: false,
    };
    let types: [(&str, &dyn Described); 6] = [
        ("SyncState", &softadastra::SyncState::default()),
        ("TickResult", &softadastra::TickResult::default()),
        ("NodeInfo", &info),
        ("Peer", &softadastra::Peer::new("a", "h", 1)),
        ("NetworkStats", &softadastra::NetworkStats::default()),
        ("Conflict", &conflict),
    ];
    Js::Object(
        types
            .iter()
            .map(|(name, value)| {
                let fields = value
                    .fields()
                    .iter()
                    .map(|f| {
                        let ty = match Js::of_value(f.name, &f.value) {
                            Js::Text(_) => "string",
                            Js::Bool(_) => "boolean",
                            Js::BigInt(_) | Js::Int(_) => "bigint",
                            Js::List(_) => "string[]",
                            _ => "number",
                        };
                        Js::Object(vec![
                            ("name".into(), Js::Text(camel(f.name))),
                            ("type".into(), Js::Text(ty.into())),
                        ])
                    })
                    .collect();
                ((*name).to_string(), Js::List(fields))
            })
            .collect(),
    )
}

/// The snake_case names of the error codes, by number (`Error::code_string()` in C++).
#[napi]
pub fn error_codes() -> Vec<String> {
    surface::ALL_ERROR_CODES
        .iter()
        .map(|c| c.as_str().to_string())
        .collect()
}

/// The names of the calls `NativeClient::run` understands (the parity test checks that
/// the JavaScript `Client` has a method for each).
#[napi]
pub fn call_names() -> Vec<String> {
    calls::CALLS.iter().map(|s| (*s).to_string()).collect()
}

/// The version of the library.
#[napi]
pub fn sdk_version() -> String {
    softadastra::DEFAULT_VERSION.to_string()
}
