// @softadastra/sdk: the Softadastra local-first runtime for Node.js (CommonJS entry point;
// index.mjs re-exports it for ES modules). The reference is docs/js-api.md.
//
// Every call of a Client returns a Promise of a Result: nothing throws for a failed call
// (an invalid key, a missing directory, a closed client). A client's calls run in the order
// they were made, off the JavaScript thread (on the client's own thread), in batches; the
// addon (native.js, built from js/src) does the work and holds no logic of its own.
"use strict";

const { EventEmitter } = require("node:events");
const native = require("./native.js");

const ERROR_CODES = native.errorCodes();
const OPTION_SPECS = native.optionSpecs();
const OPTION_NAMES = OPTION_SPECS.map((s) => s.name);
/** Each call's number, by name: the addon takes calls by number. */
const CALL = Object.freeze(Object.fromEntries(native.callNames().map((name, i) => [name, i])));
/** Calls queued while batches are out are handed over when this many wait (or when a
 * batch comes back): the client's thread starts on them while JavaScript makes the next
 * ones. */
const HANDOVER = 64;

/** An error a call returned: `code` ("invalid_argument", "io_error", ...), `codeNumber`
 * (the C ABI's and C++ SDK's number), `message` (names the key, path or option and the
 * cause) and `context` (that key, path or option alone). */
class SoftadastraError extends Error {
  constructor(code, message, context = "", codeNumber = ERROR_CODES.indexOf(code)) {
    super(message);
    this.name = "SoftadastraError";
    this.code = code;
    this.codeNumber = codeNumber;
    this.context = context;
  }
}

/** A value or an error, what every call resolves to. */
class Result {
  #ok;
  #value;
  #error;
  constructor(ok, valueOrError) {
    this.#ok = ok;
    if (ok) this.#value = valueOrError;
    else this.#error = valueOrError;
  }
  static ok(value) {
    return new Result(true, value);
  }
  static err(error) {
    return new Result(false, error);
  }
  isOk() {
    return this.#ok;
  }
  isErr() {
    return !this.#ok;
  }
  /** The value; calling it on an error result is a programming error: it throws. */
  value() {
    if (!this.#ok) {
      throw new Error(`value() called on an error result: ${this.#error.message}`);
    }
    return this.#value;
  }
  valueOr(fallback) {
    return this.#ok ? this.#value : fallback;
  }
  /** The error, or undefined when the result is ok. */
  error() {
    return this.#error;
  }
  /** f(value) as a Result, or this error. */
  map(f) {
    return this.#ok ? Result.ok(f(this.#value)) : this;
  }
}

function errorOf(e) {
  return new SoftadastraError(e.code, e.message, e.context, e.codeNumber);
}

function outcome([ok, v], wrap) {
  return ok ? Result.ok(wrap ? wrap(v) : v) : Result.err(errorOf(v));
}

// --- Options ---------------------------------------------------------------------------

/** How a client is configured: a plain object of fields (every option of the core, in
 * camelCase: nodeId, walPath, autoFlush, enableTransport, ...). Start from a preset,
 * change fields, then construct a Client; open() checks them. */
class ClientOptions {
  constructor(fields) {
    const [, defaults] = native.presetOptions("default");
    Object.assign(this, defaults, fields ?? {});
  }
  static #preset(name, nodeId, walPath) {
    const [ok, fields] = native.presetOptions(name, nodeId, walPath);
    // A preset name is this file's own: never an error.
    if (!ok) throw new Error(fields.message);
    return new ClientOptions(fields);
  }
  /** WAL on, every write synced before it returns. */
  static persistent(nodeId, walPath) {
    return ClientOptions.#preset("persistent", nodeId, walPath);
  }
  /** Same as persistent(). */
  static durable(nodeId, walPath) {
    return ClientOptions.#preset("persistent", nodeId, walPath);
  }
  /** WAL on, writes not synced before they return, batch 128, 2 retries, no ACK. */
  static fast(nodeId, walPath) {
    return ClientOptions.#preset("fast", nodeId, walPath);
  }
  /** No WAL: nothing survives the process. */
  static memoryOnly(nodeId) {
    return ClientOptions.#preset("memoryOnly", nodeId);
  }
  /** Same as memoryOnly(). */
  static local(nodeId) {
    return ClientOptions.#preset("memoryOnly", nodeId);
  }
  /** Every option: name (camelCase), snakeName, number, kind, max. */
  static specs() {
    return OPTION_SPECS.map((s) => ({ ...s }));
  }
  withTransport(host, port) {
    return new ClientOptions({ ...this, enableTransport: true, transportHost: host, transportPort: port });
  }
  withLocalTransport(port) {
    return this.withTransport("127.0.0.1", port);
  }
  withDiscovery(host, port) {
    return new ClientOptions({ ...this, enableDiscovery: true, discoveryHost: host, discoveryPort: port });
  }
  withLocalDiscovery(port) {
    return this.withDiscovery("127.0.0.1", port);
  }
  /** Transport on a port the system picks: read it with Client.transportPort(). */
  withEphemeralTransport(host) {
    return new ClientOptions({ ...this, enableTransport: true, transportHost: host, transportPort: 0, ephemeralTransportPort: true });
  }
  /** Discovery on a port the system picks, announcing only to added targets. */
  withEphemeralDiscovery(host) {
    return new ClientOptions({ ...this, enableDiscovery: true, discoveryHost: host, discoveryPort: 0, ephemeralDiscoveryPort: true });
  }
  withMetadata(displayName, version = native.sdkVersion()) {
    return new ClientOptions({ ...this, displayName, version });
  }
  /** Result<undefined>: InvalidArgument naming the first offending field. */
  validate() {
    return outcome(native.validateOptions({ ...this }));
  }
  isValid() {
    return this.validate().isOk();
  }
  /** Result<string>: `name=value` lines, one per option (snake_case names, as in C++). */
  describe() {
    return outcome(native.describeOptions({ ...this }));
  }
}

// --- Returned values ---------------------------------------------------------------------

/** The counters of the sync engine (Client.syncState()). Versions are BigInts. */
class SyncState {
  constructor(fields) {
    Object.assign(this, fields);
  }
  hasPending() {
    return this.pendingCount > 0;
  }
  hasQueued() {
    return this.queuedCount > 0;
  }
  hasInFlight() {
    return this.inFlightCount > 0;
  }
  hasFailed() {
    return this.failedCount > 0;
  }
  hasConflicts() {
    return this.conflictCount > 0;
  }
  /** Operations not yet delivered remain: pending, queued, in flight or failed. */
  hasWork() {
    return this.hasPending() || this.hasQueued() || this.hasInFlight() || this.hasFailed();
  }
  totalTracked() {
    return this.pendingCount + this.queuedCount + this.inFlightCount + this.acknowledgedCount + this.failedCount;
  }
}

/** What one sync tick did (Client.tick()). */
class TickResult {
  constructor(fields) {
    Object.assign(this, fields);
  }
  retried() {
    return this.retriedCount > 0;
  }
  pruned() {
    return this.prunedCount > 0;
  }
  producedBatch() {
    return this.batchSize > 0;
  }
  hasWork() {
    return this.retried() || this.pruned() || this.producedBatch();
  }
}

/** What a node is (Client.nodeInfo()). */
class NodeInfo {
  constructor(fields) {
    Object.assign(this, fields);
  }
  label() {
    return this.displayName || this.nodeId;
  }
  hasCapability(capability) {
    return this.capabilities.includes(capability);
  }
}

/** A peer: one to connect to (new Peer(nodeId, host, port)), or one Client.peers()
 * reports, with its state and when it was last heard from. */
class Peer {
  constructor(nodeId, host, port, state = "unknown", lastSeenMs = 0) {
    if (typeof nodeId === "object" && nodeId !== null) {
      Object.assign(this, { state, lastSeenMs }, nodeId);
    } else {
      Object.assign(this, { nodeId, host, port, state, lastSeenMs });
    }
  }
  /** A peer on 127.0.0.1. */
  static local(nodeId, port) {
    return new Peer(nodeId, "127.0.0.1", port);
  }
  isLocalhost() {
    return ["127.0.0.1", "::1", "localhost"].includes(this.host);
  }
  isConnected() {
    return this.state === "connected";
  }
}

/** The network's figures (Client.networkStats()). */
class NetworkStats {
  constructor(fields) {
    Object.assign(this, fields);
  }
  refusedOperations() {
    return (
      this.refusedOwnOrigin +
      this.refusedClockAhead +
      this.refusedTooManyOrigins +
      this.refusedTooManyRanges +
      this.refusedSecondHand
    );
  }
}

/** Changes written together by Client.writeBatch(): all or nothing. */
class WriteBatch {
  #changes = [];
  put(key, value) {
    this.#changes.push([false, key, value]);
    return this;
  }
  remove(key) {
    this.#changes.push([true, key]);
    return this;
  }
  get size() {
    return this.#changes.length;
  }
  clear() {
    this.#changes = [];
  }
  /** For Client.writeBatch. */
  toJSON() {
    return this.#changes.slice();
  }
}

// --- Client ------------------------------------------------------------------------------

const CHANGE_QUEUE = 1024;

/** Clients with calls queued or out. The client's thread reports to a function that holds
 * its client only weakly (a strong hold would keep every client alive for ever, through
 * the addon's reference to that function), so a busy client is held here: its calls are
 * answered even when the application keeps no reference to it. An idle client that
 * nobody references is collected, and its client closed. */
const BUSY = new Set();

/** A local-first node. Every method returns a Promise of a Result, except the `...Running`
 * and isOpen() predicates. Emits "change" for every remote change applied locally
 * (`{key, value, removed, origin, originSeq, version}`) and "lagged" (`missed`) when
 * changes were dropped because the listener fell behind; `changes()` gives the same as an
 * async iterator. */
class Client extends EventEmitter {
  #native;
  #options;
  /** Calls not yet handed to the addon, flat (number, argument count, arguments), and
   * how each one's Promise is resolved (side by side: no array per call). */
  #calls = [];
  #resolves = [];
  #wraps = [];
  /** The resolves and wraps of each batch handed over and not yet back, oldest first
   * (two entries per batch). */
  #out = [];
  #subscription = null;
  #iterators = new Set();

  constructor(options = new ClientOptions()) {
    super();
    this.#options = options;
    this.#native = new native.NativeClient({ ...options }, Client.#deliverTo(new WeakRef(this)));
    // Subscribes at once (newListener comes before the listener is added): a change
    // applied right after on("change") is reported.
    this.on("newListener", (event) => {
      if (event === "change" || event === "lagged") this.#watch(true);
    });
    this.on("removeListener", () => queueMicrotask(() => this.#unwatchIfIdle()));
  }

  /** The function the client's thread reports to. Made here, not in the constructor: a
   * function made there would share the constructor's scope, which holds `this`
   * strongly (for the listeners' arrow functions). */
  static #deliverTo(client) {
    return (outcomes) => client.deref()?.#delivered(outcomes);
  }

  /** A call by number with `count` (0 to 2) arguments, answered in the order made. */
  #call(wrap, number, count, a, b) {
    return new Promise((resolve) => {
      const calls = this.#calls;
      if (count === 0) calls.push(number, 0);
      else if (count === 1) calls.push(number, 1, a);
      else calls.push(number, 2, a, b);
      if (this.#out.length === 0 && this.#resolves.length === 0) BUSY.add(this);
      this.#resolves.push(resolve);
      this.#wraps.push(wrap);
      // An idle client's call goes at once. While batches are out, calls gather and go
      // when HANDOVER of them wait or when a batch comes back.
      if (this.#out.length === 0 || this.#resolves.length >= HANDOVER) this.#handOver();
    });
  }

  /** Hands every queued call to the client's thread as one batch. */
  #handOver() {
    const resolves = this.#resolves;
    if (resolves.length === 0) return;
    const calls = this.#calls;
    const wraps = this.#wraps;
    this.#calls = [];
    this.#resolves = [];
    this.#wraps = [];
    try {
      this.#native.run(calls);
    } catch (e) {
      // An argument the addon could not even read, or no thread: answered as errors.
      const error = new SoftadastraError("internal_error", String(e && e.message));
      for (const resolve of resolves) resolve(Result.err(error));
      if (this.#out.length === 0) BUSY.delete(this);
      return;
    }
    this.#out.push(resolves, wraps);
  }

  /** A batch's results, `ok, value or error` per call (batches come back in order). */
  #delivered(outcomes) {
    const out = this.#out;
    const resolves = out.shift();
    const wraps = out.shift();
    // Calls that gathered meanwhile go before this batch's results are handed out: the
    // client's thread runs them meanwhile. (Then settled: the count does not drop to zero
    // and rise again.)
    this.#handOver();
    this.#native.settled();
    if (out.length === 0) BUSY.delete(this);
    for (let i = 0; i < resolves.length; i++) {
      const v = outcomes[2 * i + 1];
      const wrap = wraps[i];
      resolves[i](outcomes[2 * i] ? Result.ok(wrap ? wrap(v) : v) : Result.err(errorOf(v)));
    }
  }

  options() {
    return new ClientOptions(this.#native.options());
  }
  /** Checks the options, opens the WAL (creating the file, never its directory) and
   * replays it. */
  async open() {
    const opened = await this.#call(null, CALL.open, 0);
    if (opened.isOk() && (this.listenerCount("change") > 0 || this.#iterators.size > 0)) this.#watch();
    return opened;
  }
  /** Flushes and closes; pending calls made before it finish first, calls after it get
   * invalid_state. Ends the async iterators of changes(). */
  async close() {
    const closed = await this.#call(null, CALL.close, 0);
    this.#unwatch();
    for (const it of this.#iterators) it.end();
    return closed;
  }
  isOpen() {
    return this.#native.isOpen();
  }
  /** Stores a value (a string, Buffer or Uint8Array); resolves to its version (BigInt). */
  put(key, value) {
    return this.#call(null, CALL.put, 2, key, value);
  }
  /** The value as a Buffer; not_found (context = the key) when there is none. */
  get(key) {
    return this.#call(null, CALL.get, 1, key);
  }
  /** The value as a UTF-8 string. */
  getString(key) {
    return this.#call((b) => b.toString("utf8"), CALL.get, 1, key);
  }
  remove(key) {
    return this.#call(null, CALL.remove, 1, key);
  }
  contains(key) {
    return this.#call(null, CALL.contains, 1, key);
  }
  size() {
    return this.#call(null, CALL.size, 0);
  }
  /** [{key, value: Buffer}] of the keys starting with prefix, in key order. */
  list(prefix = "") {
    return this.#call(null, CALL.list, 1, prefix);
  }
  writeBatch(batch) {
    return this.#call(null, CALL.writeBatch, 1, batch instanceof WriteBatch ? batch.toJSON() : batch);
  }
  flush() {
    return this.#call(null, CALL.flush, 0);
  }
  compact() {
    return this.#call(null, CALL.compact, 0);
  }
  backup(dir) {
    return this.#call(null, CALL.backup, 1, dir);
  }
  /** One sync cycle; tick(true) or tick({prune: true}) also prunes acknowledged work. */
  tick(options = false) {
    const prune = typeof options === "object" && options !== null ? Boolean(options.prune) : Boolean(options);
    return this.#call((t) => new TickResult(t), CALL.tick, 1, prune);
  }
  syncState() {
    return this.#call((s) => new SyncState(s), CALL.syncState, 0);
  }
  /** Same as syncState(). */
  syncStateInfo() {
    return this.syncState();
  }
  retryExpired() {
    return this.#call(null, CALL.retryExpired, 0);
  }
  pruneCompleted() {
    return this.#call(null, CALL.pruneCompleted, 0);
  }
  pruneFailed() {
    return this.#call(null, CALL.pruneFailed, 0);
  }
  queuePending() {
    return this.#call(null, CALL.queuePending, 0);
  }
  retryFailed() {
    return this.#call(null, CALL.retryFailed, 0);
  }
  /** "saved_locally", "waiting_to_sync", "syncing", "synced", "retrying", "sync_failed"
   * or "conflict_detected". */
  syncStatus(key) {
    return this.#call(null, CALL.syncStatus, 1, key);
  }
  recentConflicts() {
    return this.#call(null, CALL.recentConflicts, 0);
  }
  startTransport() {
    return this.#call(null, CALL.startTransport, 0);
  }
  stopTransport() {
    return this.#call(null, CALL.stopTransport, 0);
  }
  transportRunning() {
    return this.#native.transportRunning();
  }
  transportPort() {
    return this.#call(null, CALL.transportPort, 0);
  }
  /** The pending network work; with timeoutMs, waits up to that long (10 s at most) for
   * some. Not needed with startBackground(). */
  processTransportEvents(maxEvents = 64, timeoutMs = undefined) {
    return this.#call(null, CALL.processTransportEvents, 2, maxEvents, timeoutMs);
  }
  /** Runs the event loop on a thread of the client's: peers sync without a polling loop
   * in the application. close() stops it. */
  startBackground() {
    return this.#call(null, CALL.startBackground, 0);
  }
  stopBackground() {
    return this.#call(null, CALL.stopBackground, 0);
  }
  backgroundRunning() {
    return this.#native.backgroundRunning();
  }
  /** Connects to a peer ({nodeId, host, port} or a Peer) and keeps the connection. */
  connect(peer) {
    return this.#call(null, CALL.connect, 1, { ...peer });
  }
  disconnect(peer) {
    return this.#call(null, CALL.disconnect, 1, { ...peer });
  }
  trustPeer(nodeId, fingerprint) {
    return this.#call(null, CALL.trustPeer, 2, nodeId, fingerprint);
  }
  untrustPeer(peer) {
    return this.#call(null, CALL.untrustPeer, 1, peer);
  }
  trustedPeers() {
    return this.#call(null, CALL.trustedPeers, 0);
  }
  startDiscovery() {
    return this.#call(null, CALL.startDiscovery, 0);
  }
  stopDiscovery() {
    return this.#call(null, CALL.stopDiscovery, 0);
  }
  discoveryRunning() {
    return this.#native.discoveryRunning();
  }
  discoveryPort() {
    return this.#call(null, CALL.discoveryPort, 0);
  }
  /** Discovery also announces to this address (needed with an ephemeral discovery port). */
  addDiscoveryTarget(host, port) {
    return this.#call(null, CALL.addDiscoveryTarget, 2, host, port);
  }
  /** For tests only, with the manualClock option: moves the client's clock forward. */
  advanceClock(ms) {
    return this.#call(null, CALL.advanceClock, 1, ms);
  }
  peers() {
    return this.#call((list) => list.map((p) => new Peer(p)), CALL.peers, 0);
  }
  networkStats() {
    return this.#call((s) => new NetworkStats(s), CALL.networkStats, 0);
  }
  nodeInfo() {
    return this.#call((i) => new NodeInfo(i), CALL.nodeInfo, 0);
  }
  refreshNodeInfo() {
    return this.#call((i) => new NodeInfo(i), CALL.refreshNodeInfo, 0);
  }
  describe() {
    return this.#call(null, CALL.describe, 0);
  }

  /** Remote changes as an async iterator: yields `{type: "change", key, value, removed,
   * origin, originSeq, version}` and `{type: "lagged", missed}`; ends at close() or
   * when the loop breaks. At most `capacity` events wait; older ones are dropped (and
   * reported as lagged). */
  changes({ capacity = CHANGE_QUEUE } = {}) {
    const client = this;
    const waiting = [];
    let wake = null;
    let ended = false;
    const it = {
      push(event) {
        if (waiting.length >= capacity) {
          const last = waiting[0];
          if (last.type === "lagged") last.missed += 1;
          else waiting[0] = { type: "lagged", missed: 1 };
          if (waiting.length > 1 && waiting[1].type !== "lagged") waiting.splice(1, 1);
        }
        waiting.push(event);
        if (wake) wake();
      },
      end() {
        ended = true;
        if (wake) wake();
      },
    };
    this.#iterators.add(it);
    this.#watch();
    return {
      [Symbol.asyncIterator]() {
        return this;
      },
      async next() {
        while (waiting.length === 0 && !ended) {
          await new Promise((r) => (wake = r));
          wake = null;
        }
        if (waiting.length > 0) return { value: waiting.shift(), done: false };
        return { value: undefined, done: true };
      },
      async return() {
        ended = true;
        client.#iterators.delete(it);
        client.#unwatchIfIdle();
        return { value: undefined, done: true };
      },
    };
  }

  #watch(wanted = false) {
    if (this.#subscription) return;
    if (!wanted && this.listenerCount("change") + this.listenerCount("lagged") + this.#iterators.size === 0) return;
    const sub = this.#native.subscribe(CHANGE_QUEUE, () => this.#deliver());
    this.#subscription = sub;
  }
  #deliver() {
    const sub = this.#subscription;
    if (!sub) return;
    for (;;) {
      const events = sub.drain(256);
      for (const event of events) {
        if (event.value === undefined) event.value = null;
        this.emit(event.type === "change" ? "change" : "lagged", event.type === "change" ? event : event.missed);
        for (const it of this.#iterators) it.push(event);
      }
      if (events.length < 256) break;
    }
  }
  #unwatch() {
    if (this.#subscription) {
      this.#subscription.close();
      this.#subscription = null;
    }
  }
  #unwatchIfIdle() {
    if (this.listenerCount("change") + this.listenerCount("lagged") + this.#iterators.size === 0) this.#unwatch();
  }
}

/** The version of the linked library, e.g. "0.1.0". */
function sdkVersion() {
  return native.sdkVersion();
}

module.exports = {
  Client,
  ClientOptions,
  Result,
  SoftadastraError,
  SyncState,
  TickResult,
  NodeInfo,
  Peer,
  NetworkStats,
  WriteBatch,
  sdkVersion,
  OPTION_NAMES,
  ERROR_CODES,
};
