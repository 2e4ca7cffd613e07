// softadastra/sdk.hpp: the C++ SDK of the Softadastra local-first runtime.
//
// C++17 or later. Value types are defined here; Client is implemented in the linked
// library (libsoftadastra_sdk) over the Rust core. No rust:: type appears in this header
// and it includes no generated code.
//
// No SDK call throws: every fallible call returns a Result. A Client may be used from
// several threads at once (moving or destroying it must not race other calls). A call that
// panics inside the library returns InternalError, and the client then refuses every call
// with InternalError naming the panic until it is closed and opened again.
//
// The reference for the whole API is docs/cpp-api.md.
//
//   using namespace softadastra::sdk;
//   Client client{ClientOptions::persistent("edge-01", "/var/lib/app/edge-01.wal")};
//   if (auto opened = client.open(); opened.is_err()) {
//       std::cerr << opened.error().message() << "\n";   // names the path and the cause
//   }
//   if (auto put = client.put("greeting", "hello"); put.is_err()) { /* ... */ }
//   auto value = client.get("greeting");                  // Result<Value>
//
// Result is [[nodiscard]]: a call whose outcome is ignored is a compiler warning.

#ifndef SOFTADASTRA_SDK_HPP
#define SOFTADASTRA_SDK_HPP

#include <cassert>
#include <cstddef>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <type_traits>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace softadastra::sdk {

/// The version of the linked library, e.g. "0.1.0".
std::string sdk_version();

// ---------------------------------------------------------------------------------------
// Error and Result

/// An error: a stable code, a message naming the key, path or field and the cause, and
/// the context (that key, path or field alone). A default-constructed Error is "no error".
class Error {
public:
    /// Same numbers as the C ABI's sa_status_t and the Rust ErrorCode; never renumbered.
    enum class Code : std::uint32_t {
        None = 0,
        Unknown = 1,
        InvalidArgument = 2,
        InvalidState = 3,
        NotFound = 4,
        AlreadyExists = 5,
        IoError = 6,
        StoreError = 7,
        SyncError = 8,
        TransportError = 9,
        DiscoveryError = 10,
        MetadataError = 11,
        InternalError = 12,
    };

    Error() = default;
    Error(Code code, std::string message, std::string context = {})
        : code_(code), message_(std::move(message)), context_(std::move(context)) {}

    static Error none() { return Error{}; }
    static Error make(Code code, std::string message, std::string context = {}) {
        return Error{code, std::move(message), std::move(context)};
    }
    static Error invalid_argument(std::string message, std::string context = {}) {
        return Error{Code::InvalidArgument, std::move(message), std::move(context)};
    }
    static Error invalid_state(std::string message, std::string context = {}) {
        return Error{Code::InvalidState, std::move(message), std::move(context)};
    }
    static Error not_found(std::string message, std::string context = {}) {
        return Error{Code::NotFound, std::move(message), std::move(context)};
    }
    static Error io_error(std::string message, std::string context = {}) {
        return Error{Code::IoError, std::move(message), std::move(context)};
    }
    static Error internal_error(std::string message, std::string context = {}) {
        return Error{Code::InternalError, std::move(message), std::move(context)};
    }

    Code code() const noexcept { return code_; }
    const std::string& message() const noexcept { return message_; }
    /// The key, path or option name the error is about ("" when nothing applies).
    const std::string& context() const noexcept { return context_; }
    bool has_context() const noexcept { return !context_.empty(); }
    /// snake_case name of the code: "none", "not_found", "io_error", ...
    std::string code_string() const { return to_string(code_); }
    static std::string to_string(Code code);
    bool ok() const noexcept { return code_ == Code::None; }
    bool has_error() const noexcept { return !ok(); }

    friend bool operator==(const Error& a, const Error& b) {
        return a.code_ == b.code_ && a.message_ == b.message_ && a.context_ == b.context_;
    }
    friend bool operator!=(const Error& a, const Error& b) { return !(a == b); }

private:
    Code code_ = Code::None;
    std::string message_;
    std::string context_;
};

namespace detail {
/// An error result must carry a code; a "None" error becomes Unknown.
inline Error failed(Error error) {
    if (error.ok()) {
        return Error{Error::Code::Unknown, "error without a code"};
    }
    return error;
}

[[noreturn]] inline void value_of_error_result() {
    assert(false && "Result::value() called on an error result");
    std::abort();
}

inline const Error& no_error() {
    static const Error none;
    return none;
}
}  // namespace detail

template <typename T>
class Result;

namespace detail {
template <typename R>
struct is_result : std::false_type {};
template <typename U>
struct is_result<Result<U>> : std::true_type {};
}  // namespace detail

/// A value or an error. value() on an error is a programming error: it asserts (and
/// aborts in release builds); check is_ok() first. value() on a temporary returns the value
/// itself, so `for (auto& p : client.peers().value())` is safe.
template <typename T>
class [[nodiscard]] Result {
public:
    using value_type = T;

    Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
    Result(Error error) : state_(std::in_place_index<1>, detail::failed(std::move(error))) {}

    static Result ok(T value) { return Result{std::move(value)}; }
    static Result err(Error error) { return Result{std::move(error)}; }

    bool is_ok() const noexcept { return state_.index() == 0; }
    bool is_err() const noexcept { return !is_ok(); }
    explicit operator bool() const noexcept { return is_ok(); }

    const T& value() const& {
        if (is_err()) detail::value_of_error_result();
        return *std::get_if<0>(&state_);
    }
    T& value() & {
        if (is_err()) detail::value_of_error_result();
        return *std::get_if<0>(&state_);
    }
    T value() && {
        if (is_err()) detail::value_of_error_result();
        return std::move(*std::get_if<0>(&state_));
    }
    T value_or(T fallback) const& { return is_ok() ? value() : std::move(fallback); }
    T value_or(T fallback) && { return is_ok() ? std::move(*this).value() : std::move(fallback); }

    /// The error; an Error with code None when the result is ok.
    const Error& error() const noexcept {
        const Error* e = std::get_if<1>(&state_);
        return e != nullptr ? *e : detail::no_error();
    }

    /// f(value) as a Result, or this error. f returns a plain value (or void).
    template <typename F>
    auto map(F&& f) const& -> Result<std::invoke_result_t<F, const T&>> {
        using U = std::invoke_result_t<F, const T&>;
        if (is_err()) return Result<U>{error()};
        if constexpr (std::is_void_v<U>) {
            std::forward<F>(f)(value());
            return Result<U>{};
        } else {
            return Result<U>{std::forward<F>(f)(value())};
        }
    }
    template <typename F>
    auto map(F&& f) && -> Result<std::invoke_result_t<F, T&&>> {
        using U = std::invoke_result_t<F, T&&>;
        if (is_err()) return Result<U>{error()};
        if constexpr (std::is_void_v<U>) {
            std::forward<F>(f)(std::move(*this).value());
            return Result<U>{};
        } else {
            return Result<U>{std::forward<F>(f)(std::move(*this).value())};
        }
    }
    /// This value, or the error f(error) makes (f takes a const Error& and returns an
    /// Error).
    template <typename F>
    Result map_error(F&& f) const& {
        if (is_ok()) return *this;
        return Result{Error{std::forward<F>(f)(error())}};
    }
    template <typename F>
    Result map_error(F&& f) && {
        if (is_ok()) return std::move(*this);
        return Result{Error{std::forward<F>(f)(error())}};
    }
    /// f(value), which itself returns a Result, or this error.
    template <typename F>
    auto and_then(F&& f) const& -> std::invoke_result_t<F, const T&> {
        using R = std::invoke_result_t<F, const T&>;
        static_assert(detail::is_result<R>::value, "and_then: f must return a Result");
        if (is_err()) return R{error()};
        return std::forward<F>(f)(value());
    }
    template <typename F>
    auto and_then(F&& f) && -> std::invoke_result_t<F, T&&> {
        using R = std::invoke_result_t<F, T&&>;
        static_assert(detail::is_result<R>::value, "and_then: f must return a Result");
        if (is_err()) return R{error()};
        return std::forward<F>(f)(std::move(*this).value());
    }

private:
    std::variant<T, Error> state_;
};

/// Success or an error.
template <>
class [[nodiscard]] Result<void> {
public:
    using value_type = void;

    Result() = default;
    Result(Error error) : error_(detail::failed(std::move(error))) {}

    static Result ok() { return Result{}; }
    static Result err(Error error) { return Result{std::move(error)}; }

    bool is_ok() const noexcept { return error_.ok(); }
    bool is_err() const noexcept { return !is_ok(); }
    explicit operator bool() const noexcept { return is_ok(); }
    void value() const {
        if (is_err()) detail::value_of_error_result();
    }
    /// The error; an Error with code None when the result is ok.
    const Error& error() const noexcept { return error_; }

    /// f() as a Result, or this error. f returns a plain value (or void).
    template <typename F>
    auto map(F&& f) const -> Result<std::invoke_result_t<F>> {
        using U = std::invoke_result_t<F>;
        if (is_err()) return Result<U>{error_};
        if constexpr (std::is_void_v<U>) {
            std::forward<F>(f)();
            return Result<U>{};
        } else {
            return Result<U>{std::forward<F>(f)()};
        }
    }
    /// Success, or the error f(error) makes.
    template <typename F>
    Result map_error(F&& f) const {
        if (is_ok()) return *this;
        return Result{Error{std::forward<F>(f)(error_)}};
    }
    /// f(), which itself returns a Result, or this error.
    template <typename F>
    auto and_then(F&& f) const -> std::invoke_result_t<F> {
        using R = std::invoke_result_t<F>;
        static_assert(detail::is_result<R>::value, "and_then: f must return a Result");
        if (is_err()) return R{error_};
        return std::forward<F>(f)();
    }

private:
    Error error_;
};

// ---------------------------------------------------------------------------------------
// Options

/// How a client is configured: a plain struct with public fields. Start from a preset,
/// change fields, then construct a Client. The rules (is_valid) are checked by the core.
struct ClientOptions {
    std::string node_id = "node-1";
    std::string wal_path = "data/sdk-store.wal";
    bool enable_wal = true;
    /// Sync every write to disk before put()/remove() return. With false, writes since the
    /// last flush() or close() can be lost in a crash (never corrupted).
    bool auto_flush = true;
    std::size_t sync_batch_size = 64;
    std::uint32_t max_sync_retries = 5;
    std::uint32_t ack_timeout_ms = 10000;
    std::uint32_t retry_interval_ms = 5000;
    bool require_ack = true;
    bool auto_queue = true;
    bool enable_transport = false;
    std::string transport_host = "0.0.0.0";
    std::uint16_t transport_port = 0;
    bool enable_discovery = false;
    std::string discovery_host = "0.0.0.0";
    std::uint16_t discovery_port = 0;
    std::string discovery_broadcast_host = "255.255.255.255";
    std::uint16_t discovery_broadcast_port = 0;
    /// Empty means "show the node id".
    std::string display_name;
    /// The application's version shown in node info; by default the library's.
    std::string version = sdk_version();
    // Added after the fields above, so that aggregate initialisation in their order
    // keeps working.
    /// Time between discovery announcements, in milliseconds.
    std::uint32_t discovery_interval_ms = 3000;
    /// A peer not heard from for half of this is stale, for all of it expired. At least
    /// twice discovery_interval_ms (start_discovery() refuses less).
    std::uint32_t discovery_ttl_ms = 15000;
    /// Connect to peers found by discovery (when the transport runs).
    bool auto_connect_discovered = true;
    /// A remote operation stamped more than this many milliseconds ahead of this node's
    /// clock is refused and counted (NetworkStats::refused_clock_ahead); it never moves
    /// the local clock.
    std::uint64_t max_clock_drift_ms = 60000;
    /// The file of this node's identity key, made on first open (mode 0600). Empty: the
    /// WAL's path with ".key" appended; a memory-only node makes a new key each open.
    std::string identity_path;
    /// Plaintext peer connections that accept any peer: for tests only, with a warning at
    /// every start. Off (the default), connections are TLS 1.3 between trusted keys only
    /// (Client::trust_peer).
    bool insecure_transport = false;
    /// The file of trusted peers, one "node-id fingerprint" per line. Empty: the WAL's
    /// path with ".trust" appended; a memory-only node keeps its trust in memory.
    std::string trust_path;
    /// A peer connection whose handshake (TLS and Hello) is not done after this long is
    /// closed (at least 1).
    std::uint32_t handshake_timeout_ms = 10000;
    /// Bytes of one WAL segment file (4 KiB to 1 TiB): the log is a sequence of them.
    std::uint64_t wal_segment_size = 64ull * 1024 * 1024;
    /// Compact on its own (a snapshot, then the log it covers deleted) when the log since
    /// the last snapshot outgrows compact_log_bytes; checked by tick() and the background
    /// loop.
    bool auto_compact = true;
    /// Log bytes since the last snapshot that start an automatic compaction; 0: the
    /// larger of the last snapshot and one segment (disk use stays under twice the live
    /// data plus two segments).
    std::uint64_t compact_log_bytes = 0;
    /// Tombstones (what a removal leaves) are dropped once every peer this node syncs with
    /// has seen them; a peer not heard from for longer than this is not waited for, and
    /// is sent the full state when it comes back (docs/sync.md). 0: never dropped.
    /// Default 7 days.
    std::uint64_t tombstone_horizon_ms = 7ull * 24 * 60 * 60 * 1000;
    /// The transport binds a port the system picks; read it with
    /// Client::transport_port(). transport_port must then be 0 (a plain port 0 is
    /// invalid). For tests that run in parallel: see with_ephemeral_transport().
    bool ephemeral_transport_port = false;
    /// Discovery binds a port the system picks (Client::discovery_port()); discovery_port
    /// must then be 0. With discovery_broadcast_port 0 nothing is broadcast: announcements
    /// go to the targets added with Client::add_discovery_target() only.
    bool ephemeral_discovery_port = false;
    /// For tests only: the client's clock stands still until Client::advance_clock()
    /// moves it, so that ACK timeouts, retries and their backoff, redials, keepalives and
    /// stale peers are tested without sleeping. Off by default.
    bool manual_clock = false;
    /// For tests only: the n-th write to the node's files (counting from 1 over the
    /// client's life, from its first open; what opening writes is not counted) fails with
    /// an IoError, once. 0 (the default): never. Needs the WAL.
    std::uint64_t fail_write_at = 0;
    /// For tests only: the n-th sync of the node's files fails with an IoError, once,
    /// counted as fail_write_at is. 0 (the default): never. Needs the WAL.
    std::uint64_t fail_sync_at = 0;
    /// Most keys whose newest unsent write the outbox holds to push to peers itself (about
    /// 230 bytes each); writes of further keys reach peers by catch-up (when a peer
    /// connects, then every 30 s). At least 1.
    std::size_t sync_push_key_limit = 16384;

    /// WAL on, every write synced before it returns.
    static ClientOptions persistent(std::string node_id,
                                    std::string wal_path = "data/sdk-store.wal");
    /// Same as persistent().
    static ClientOptions durable(std::string node_id,
                                 std::string wal_path = "data/sdk-store.wal");
    /// WAL on, writes not synced before they return, batch 128, 2 retries, no ACK.
    static ClientOptions fast(std::string node_id, std::string wal_path = "data/sdk-store.wal");
    /// No WAL: nothing survives the process.
    static ClientOptions memory_only(std::string node_id);
    /// Same as memory_only().
    static ClientOptions local(std::string node_id);

    /// A copy with the transport enabled on host:port.
    ClientOptions with_transport(std::string host, std::uint16_t port) const {
        ClientOptions o = *this;
        o.enable_transport = true;
        o.transport_host = std::move(host);
        o.transport_port = port;
        return o;
    }
    /// A copy with the transport enabled on 127.0.0.1:port.
    ClientOptions with_local_transport(std::uint16_t port) const {
        return with_transport("127.0.0.1", port);
    }
    /// A copy with the transport enabled on host and a port the system picks (read it with
    /// Client::transport_port() once the transport runs).
    ClientOptions with_ephemeral_transport(std::string host = "127.0.0.1") const {
        ClientOptions o = with_transport(std::move(host), 0);
        o.ephemeral_transport_port = true;
        return o;
    }
    /// A copy with discovery enabled on host and a port the system picks
    /// (Client::discovery_port()). Unless discovery_broadcast_port is set, announcements
    /// go only to the targets added with Client::add_discovery_target().
    ClientOptions with_ephemeral_discovery(std::string host = "127.0.0.1") const {
        ClientOptions o = with_discovery(std::move(host), 0);
        o.ephemeral_discovery_port = true;
        return o;
    }
    /// A copy with discovery enabled on host:port.
    ClientOptions with_discovery(std::string host, std::uint16_t port) const {
        ClientOptions o = *this;
        o.enable_discovery = true;
        o.discovery_host = std::move(host);
        o.discovery_port = port;
        return o;
    }
    /// A copy with discovery enabled on 127.0.0.1:port.
    ClientOptions with_local_discovery(std::uint16_t port) const {
        return with_discovery("127.0.0.1", port);
    }
    /// A copy with this display name and application version.
    ClientOptions with_metadata(std::string name, std::string app_version = sdk_version()) const {
        ClientOptions o = *this;
        o.display_name = std::move(name);
        o.version = std::move(app_version);
        return o;
    }

    /// Ok, or an InvalidArgument naming the first offending field (context = field name).
    Result<void> validate() const;
    /// Every option as the library reads it, one `name=value` line each (for logs; the
    /// names are those of the fields). InvalidArgument when a text field is not UTF-8.
    Result<std::string> describe() const;
    /// False for an empty node id, an empty version, the WAL on with an empty path, batch
    /// size 0, transport or discovery on with an empty host or port 0 (unless the
    /// ephemeral port is asked for), a disk fault without the WAL.
    bool is_valid() const { return validate().is_ok(); }
    bool valid() const { return is_valid(); }
};

// ---------------------------------------------------------------------------------------
// Value types

/// A key: 1 to 1024 bytes of UTF-8 (checked by the core).
class Key {
public:
    Key() = default;
    explicit Key(std::string value) : value_(std::move(value)) {}
    explicit Key(std::string_view value) : value_(value) {}
    /// NULL gives an empty key.
    explicit Key(const char* value) : value_(value != nullptr ? value : "") {}

    static Key from(std::string value) { return Key{std::move(value)}; }

    const std::string& str() const noexcept { return value_; }
    const std::string& value() const noexcept { return value_; }
    bool empty() const noexcept { return value_.empty(); }
    bool is_valid() const noexcept { return !value_.empty(); }
    bool valid() const noexcept { return is_valid(); }

    friend bool operator==(const Key& a, const Key& b) { return a.value_ == b.value_; }
    friend bool operator!=(const Key& a, const Key& b) { return a.value_ != b.value_; }
    friend bool operator<(const Key& a, const Key& b) { return a.value_ < b.value_; }

private:
    std::string value_;
};

/// A value: any bytes, zero bytes included, up to 16 MiB.
class Value {
public:
    Value() = default;
    explicit Value(std::vector<std::uint8_t> bytes) : bytes_(std::move(bytes)) {}
    /// Copies every byte of `text`, zero bytes included.
    explicit Value(std::string_view text) : bytes_(text.begin(), text.end()) {}
    /// NULL gives an empty value.
    explicit Value(const char* text)
        : Value(text != nullptr ? std::string_view{text} : std::string_view{}) {}

    static Value from_bytes(std::vector<std::uint8_t> bytes) { return Value{std::move(bytes)}; }
    static Value from_string(std::string_view text) { return Value{text}; }

    const std::vector<std::uint8_t>& bytes() const noexcept { return bytes_; }
    const std::uint8_t* data() const noexcept { return bytes_.data(); }
    /// The bytes as a std::string (zero bytes preserved).
    std::string to_string() const { return std::string(bytes_.begin(), bytes_.end()); }
    std::size_t size() const noexcept { return bytes_.size(); }
    bool empty() const noexcept { return bytes_.empty(); }

    friend bool operator==(const Value& a, const Value& b) { return a.bytes_ == b.bytes_; }
    friend bool operator!=(const Value& a, const Value& b) { return a.bytes_ != b.bytes_; }

private:
    std::vector<std::uint8_t> bytes_;
};

/// What a node is.
struct NodeInfo {
    std::string node_id;
    /// The configured display name, or the node id when none is set.
    std::string display_name;
    std::string hostname;
    /// "linux", "macos", "windows", ...
    std::string os_name;
    std::string version;
    /// When the client was opened, in milliseconds since the Unix epoch.
    std::int64_t started_at_ms = 0;
    std::int64_t uptime_ms = 0;
    /// "core", "wal" (with a WAL), "store", "sync", "transport" (enabled), "discovery"
    /// (enabled), "metadata".
    std::vector<std::string> capabilities;
    /// The SHA-256 of the node's public key, 64 lowercase hex digits: how peers know it.
    std::string fingerprint;

    const std::string& label() const noexcept {
        return display_name.empty() ? node_id : display_name;
    }
    bool has_capability(std::string_view capability) const {
        for (const auto& c : capabilities) {
            if (c == capability) return true;
        }
        return false;
    }
    bool is_valid() const noexcept {
        return !node_id.empty() && !hostname.empty() && !os_name.empty() && !version.empty();
    }
};

/// The counters of the sync engine (returned by Client::sync_state()). A snapshot: the
/// counters were read together.
///
/// Every local put or removal is an operation in the outbox. It is pending (auto_queue off,
/// until Client::queue_pending()), queued, in flight (sent, waiting for a peer's ACK),
/// acknowledged (until Client::prune_completed()) or failed (every attempt timed out, until
/// Client::prune_failed()).
struct SyncState {
    /// Every operation in the outbox, pending ones included.
    std::size_t outbox_size = 0;
    std::size_t queued_count = 0;
    std::size_t in_flight_count = 0;
    std::size_t acknowledged_count = 0;
    std::size_t failed_count = 0;
    /// Version of the newest local operation (0 when there is none).
    std::uint64_t last_submitted_version = 0;
    /// Version of the newest operation applied from another node (0 when none).
    std::uint64_t last_applied_remote_version = 0;
    /// Retries since the client was opened.
    std::uint64_t total_retries = 0;
    // Added after the fields above, so that aggregate initialisation in their order
    // keeps working.
    /// Operations kept local until Client::queue_pending() (auto_queue off).
    std::size_t pending_count = 0;
    /// Conflicts (concurrent writes decided by last-writer-wins) since the client was opened.
    std::uint64_t conflict_count = 0;

    bool has_pending() const noexcept { return pending_count > 0; }
    bool has_queued() const noexcept { return queued_count > 0; }
    bool has_in_flight() const noexcept { return in_flight_count > 0; }
    bool has_failed() const noexcept { return failed_count > 0; }
    bool has_conflicts() const noexcept { return conflict_count > 0; }
    /// Operations not yet delivered remain: pending, queued, in flight or failed.
    bool has_work() const noexcept {
        return has_pending() || has_queued() || has_in_flight() || has_failed();
    }
    /// pending + queued + in flight + acknowledged + failed (equals outbox_size in a state
    /// returned by the client).
    std::size_t total_tracked() const noexcept {
        return pending_count + queued_count + in_flight_count + acknowledged_count +
               failed_count;
    }
    /// Every counter is zero.
    bool empty() const noexcept {
        return outbox_size == 0 && total_tracked() == 0 && last_submitted_version == 0 &&
               last_applied_remote_version == 0 && total_retries == 0 && conflict_count == 0;
    }
    /// The counters agree: the operations by state add up to outbox_size. Every state the
    /// client returns is valid; one assembled by hand may not be.
    bool is_valid() const noexcept { return total_tracked() == outbox_size; }
    bool valid() const noexcept { return is_valid(); }
};

using SyncResult = SyncState;

/// What one sync tick did (returned by Client::tick()).
struct TickResult {
    /// In-flight operations whose ACK timed out and that were queued again.
    std::size_t retried_count = 0;
    /// Acknowledged operations removed from the outbox (tick(true) only).
    std::size_t pruned_count = 0;
    /// Operations sent in the batch handed to the transport; 0 when no peer is connected.
    std::size_t batch_size = 0;

    bool retried() const noexcept { return retried_count > 0; }
    bool pruned() const noexcept { return pruned_count > 0; }
    bool produced_batch() const noexcept { return batch_size > 0; }
    bool has_work() const noexcept { return retried() || pruned() || produced_batch(); }
    bool empty() const noexcept { return !has_work(); }
    /// Always true: a tick's three counts have no rule between them, so every value is one
    /// a tick can return. Kept for code written against the earlier SDK.
    bool is_valid() const noexcept { return true; }
    bool valid() const noexcept { return is_valid(); }
};

/// The network's figures (returned by Client::network_stats()): connections, buffers,
/// catch-ups and refused input, for monitoring. Without a running transport the
/// transport figures are 0; the refused_* counts count since the client was opened.
struct NetworkStats {
    /// Open connections, handshaking ones included.
    std::size_t connections = 0;
    /// The connection limit in force.
    std::size_t connection_limit = 0;
    /// Connections refused at the limit.
    std::uint64_t refused_connections = 0;
    /// Frames that could not be read (the connection was closed).
    std::uint64_t garbage_frames = 0;
    /// Bytes of incomplete frames buffered.
    std::size_t receive_buffered = 0;
    /// Bytes waiting to be written.
    std::size_t send_buffered = 0;
    /// Addresses kept connected (redialled).
    std::size_t dialled = 0;
    /// Catch-ups being served now.
    std::size_t catch_up_serving = 0;
    /// Catch-ups begun.
    std::uint64_t catch_up_started = 0;
    /// Catch-up requests answered at once with an empty end (busy).
    std::uint64_t catch_up_busy = 0;
    /// Connections closed for breaking the catch-up conversation.
    std::uint64_t catch_up_protocol_errors = 0;
    /// Records of peers that are not connected (dialled, or seen recently).
    std::size_t peer_records = 0;
    /// Addresses dialled because discovery found them.
    std::size_t discovered_dials = 0;
    /// Remote operations refused: claiming this node's origin.
    std::uint64_t refused_own_origin = 0;
    /// ... stamped further ahead than max_clock_drift_ms.
    std::uint64_t refused_clock_ahead = 0;
    /// ... from a new origin when the origin table is full.
    std::uint64_t refused_too_many_origins = 0;
    /// ... widening a sync mark beyond its range limit.
    std::uint64_t refused_too_many_ranges = 0;
    /// ... relayed for an origin the sender may not speak for.
    std::uint64_t refused_second_hand = 0;
    /// Peers refused for their key: not trusted, or trusted for another node id.
    std::uint64_t untrusted_peers = 0;
    /// TLS handshakes or sessions that failed (no or bad certificate, not TLS, ...).
    std::uint64_t tls_failures = 0;
    /// Discovery datagrams ignored as forged (bad signature, or a known node id with
    /// another key).
    std::uint64_t forged_announcements = 0;
    /// Discovery datagrams ignored as replayed (not newer, or outside the clock window).
    std::uint64_t replayed_announcements = 0;

    /// Remote operations refused, all reasons together.
    std::uint64_t refused_operations() const noexcept {
        return refused_own_origin + refused_clock_ahead + refused_too_many_origins +
               refused_too_many_ranges + refused_second_hand;
    }
};

/// Two writes to one key made without knowledge of each other, decided by
/// last-writer-wins (returned by Client::recent_conflicts()).
struct Conflict {
    std::string key;
    /// The entry this node held when the other write arrived: its origin node, that
    /// node's number for it, and its version.
    std::string local_origin;
    std::uint64_t local_seq = 0;
    std::uint64_t local_version = 0;
    /// The write that arrived from a peer.
    std::string remote_origin;
    std::uint64_t remote_seq = 0;
    std::uint64_t remote_version = 0;
    /// Whether the arriving write won (and replaced the local entry).
    bool remote_won = false;

    /// The node whose write the key now holds.
    const std::string& winner_origin() const noexcept {
        return remote_won ? remote_origin : local_origin;
    }
};

/// Where a key's latest change (a put or a removal) is on its way to peers (returned by
/// Client::sync_status()). The numbers equal the C ABI's sa_key_status_t.
enum class SyncStatus : std::uint8_t {
    /// Written and durable locally; not queued for sync (auto_queue off).
    SavedLocally = 0,
    /// Queued, not sent yet.
    WaitingToSync = 1,
    /// Sent, waiting for a peer's ACK.
    Syncing = 2,
    /// A peer has it (or it came from a peer).
    Synced = 3,
    /// A send timed out; it will be sent again.
    Retrying = 4,
    /// Every attempt timed out; the catch-up with the next peer still delivers it.
    SyncFailed = 5,
    /// The key's value was decided by last-writer-wins between concurrent writes.
    ConflictDetected = 6,
};

/// snake_case name, as in JSON and the C ABI: "saved_locally", "waiting_to_sync",
/// "syncing", "synced", "retrying", "sync_failed", "conflict_detected" ("unknown" for a
/// value outside the enum).
inline std::string to_string(SyncStatus status) {
    switch (status) {
        case SyncStatus::SavedLocally: return "saved_locally";
        case SyncStatus::WaitingToSync: return "waiting_to_sync";
        case SyncStatus::Syncing: return "syncing";
        case SyncStatus::Synced: return "synced";
        case SyncStatus::Retrying: return "retrying";
        case SyncStatus::SyncFailed: return "sync_failed";
        case SyncStatus::ConflictDetected: return "conflict_detected";
    }
    return "unknown";
}

/// Words for a person: "saved locally", "waiting to sync", "syncing", "synced",
/// "retrying", "sync failed", "conflict detected" ("unknown" outside the enum).
inline std::string label(SyncStatus status) {
    switch (status) {
        case SyncStatus::SavedLocally: return "saved locally";
        case SyncStatus::WaitingToSync: return "waiting to sync";
        case SyncStatus::Syncing: return "syncing";
        case SyncStatus::Synced: return "synced";
        case SyncStatus::Retrying: return "retrying";
        case SyncStatus::SyncFailed: return "sync failed";
        case SyncStatus::ConflictDetected: return "conflict detected";
    }
    return "unknown";
}

/// A peer node: one to connect to (Peer{node_id, host, port}), or one Client::peers()
/// reports, with its state and when it was last heard from.
struct Peer {
    std::string node_id;
    std::string host;
    std::uint16_t port = 0;
    /// "available" (known, reachable as far as we know), "connected" (handshake done,
    /// operations flow), "stale" (not announced for half the discovery TTL), "expired" (not
    /// announced for a full TTL; reported once), "faulted" (the last connection failed or
    /// broke; it is redialled with backoff) or "unknown" (a peer you built).
    std::string state = "unknown";
    /// When it was last heard from, in milliseconds since the Unix epoch (0: never).
    std::uint64_t last_seen_ms = 0;

    /// A peer on 127.0.0.1.
    static Peer local(std::string node_id, std::uint16_t port) {
        return Peer{std::move(node_id), "127.0.0.1", port};
    }

    /// A valid node id (1 to 128 characters of [A-Za-z0-9._-], the rule of
    /// ClientOptions::node_id), a non-empty host and a port other than 0. Whether the host
    /// resolves is checked by Client::connect().
    [[nodiscard]] bool is_valid() const;
    /// The host is "127.0.0.1", "::1" or "localhost".
    [[nodiscard]] bool is_localhost() const noexcept {
        return host == "127.0.0.1" || host == "::1" || host == "localhost";
    }
    [[nodiscard]] bool is_connected() const noexcept { return state == "connected"; }
};

// ---------------------------------------------------------------------------------------
// Batches and listings

/// Changes written together by Client::write_batch(): one WAL record and one sync, all or
/// nothing (every change is checked before any is written). Later changes to a key win.
class WriteBatch {
public:
    WriteBatch& put(const Key& key, const Value& value) {
        const auto& bytes = value.bytes();
        return add(false, key.str(), std::string(bytes.begin(), bytes.end()));
    }
    WriteBatch& put(const std::string& key, const std::string& value) {
        return add(false, key, value);
    }
    WriteBatch& remove(const Key& key) { return add(true, key.str(), {}); }
    WriteBatch& remove(const std::string& key) { return add(true, key, {}); }

    /// Number of changes.
    std::size_t size() const noexcept { return removes_.size(); }
    bool empty() const noexcept { return removes_.empty(); }
    void clear() noexcept {
        removes_.clear();
        key_lengths_.clear();
        value_lengths_.clear();
        data_.clear();
    }

private:
    friend class Client;
    WriteBatch& add(bool remove, const std::string& key, const std::string& value) {
        removes_.push_back(remove ? 1 : 0);
        key_lengths_.push_back(key.size());
        value_lengths_.push_back(value.size());
        data_ += key;
        data_ += value;
        return *this;
    }
    // Change i: key_lengths_[i] bytes of key, then value_lengths_[i] bytes of value, in data_.
    std::vector<std::uint8_t> removes_;
    std::vector<std::size_t> key_lengths_;
    std::vector<std::size_t> value_lengths_;
    std::string data_;
};

/// A key and its value, as Client::list() returns them.
struct Entry {
    Key key;
    Value value;
};

// ---------------------------------------------------------------------------------------
// Client

/// A local-first node. Move-only. Every method may be called from several threads at
/// once; moving, assigning or destroying a client must not race other calls on it.
///
/// Errors: a closed (or moved-from) client gives InvalidState; an empty, over-long
/// (> 1024 bytes) or non-UTF-8 key gives InvalidArgument naming the key; a missing key
/// gives NotFound with the key as context; file-system failures give IoError naming the
/// WAL path and the cause. Removing a missing key succeeds.
class Client {
public:
    /// A closed client with the default options.
    Client();
    /// A closed client with these options (checked by open()).
    explicit Client(ClientOptions options);
    /// Closes the client (flushing the WAL) if it is open.
    ~Client();

    Client(Client&& other) noexcept;
    Client& operator=(Client&& other) noexcept;
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    /// Checks the options, opens the WAL (creating the file but never its directory) and
    /// replays it. Opening an open client does nothing.
    Result<void> open();
    /// Flushes and closes. Idempotent; the client can be opened again.
    Result<void> close();
    [[nodiscard]] bool is_open() const noexcept;
    [[nodiscard]] bool opened() const noexcept { return is_open(); }

    /// Stores a value. With auto_flush, returns once the write is on disk.
    Result<void> put(const Key& key, const Value& value);
    Result<void> put(const std::string& key, const std::string& value);
    [[nodiscard]] Result<Value> get(const Key& key) const;
    [[nodiscard]] Result<Value> get(const std::string& key) const;
    Result<void> remove(const Key& key);
    Result<void> remove(const std::string& key);
    /// Applies every change of `batch` atomically (one WAL record, one sync). An empty
    /// batch writes nothing. An invalid key or value fails the whole batch (InvalidArgument
    /// naming it) and nothing is written.
    Result<void> write_batch(const WriteBatch& batch);
    /// The keys that start with `prefix` ("" for every key), in key order, with their
    /// values. Removed keys are not listed. InvalidArgument when `prefix` is not UTF-8.
    [[nodiscard]] Result<std::vector<Entry>> list(const std::string& prefix = "") const;
    /// Whether the key has a value; false when closed or the key is invalid.
    [[nodiscard]] bool contains(const Key& key) const;
    [[nodiscard]] bool contains(const std::string& key) const;
    /// Number of keys with a value; 0 when closed.
    [[nodiscard]] std::size_t size() const;
    /// True when there is no key, or the client is closed.
    [[nodiscard]] bool empty() const { return size() == 0; }
    /// Makes every buffered write durable (useful with auto_flush off).
    Result<void> flush();
    /// Writes a snapshot of the live state and deletes the log it covers, so that disk use
    /// and start-up time follow the live data. Other threads keep writing meanwhile.
    /// InvalidState for a memory-only node; on IoError nothing was deleted.
    Result<void> compact();
    /// Writes a consistent backup of the node into the directory `dir` while it runs
    /// (other threads keep writing): a snapshot, the log written meanwhile, the node's
    /// identity key and trusted peers (mode 0600: the backup is as secret as the key), and
    /// a manifest written last (docs/backup.md). `dir` is created when missing, else it
    /// must be empty (AlreadyExists). The backup holds every write acknowledged before the
    /// call; nothing of the node changes. InvalidState for a memory-only node;
    /// InvalidArgument for an empty `dir`; on IoError no manifest is left. Check it with
    /// `softadastra backup verify DIR`, restore it with `softadastra restore DIR`.
    Result<void> backup(const std::string& dir);

    // Sync. Every local put and removal enters the outbox; these calls move it along and
    // report on it. Each count is how many operations the call touched.

    /// One sync cycle: queues again the in-flight operations whose ACK timed out (after
    /// their backoff), hands the next batch to the transport when a peer is connected, and
    /// with prune_completed removes acknowledged operations. With no connected peer nothing
    /// is sent (batch_size 0) and queued work keeps waiting without spending retries.
    Result<TickResult> tick(bool prune_completed = false);
    /// The counters of the sync engine. Reading them changes nothing.
    [[nodiscard]] Result<SyncState> sync_state() const;
    /// Queues again the in-flight operations whose ACK timed out; returns how many.
    Result<std::size_t> retry_expired();
    /// Removes acknowledged operations from the outbox; returns how many. Pending, queued,
    /// in-flight and failed work is never removed.
    Result<std::size_t> prune_completed();
    /// Removes failed operations from the outbox (a restart does not queue them again; the
    /// data stays and reaches peers by catch-up); returns how many. Other work stays.
    Result<std::size_t> prune_failed();
    /// Queues every pending operation (auto_queue off); returns how many.
    Result<std::size_t> queue_pending();
    /// Queues every failed operation again, its attempts reset (one attempt plus
    /// max_sync_retries again); returns how many. Operations removed by prune_failed() are
    /// not queued again: they reach peers by catch-up.
    Result<std::size_t> retry_failed();
    /// Where the key's latest change is on its way to peers. NotFound (context = the key)
    /// when the key was never written; a removed key still has a status (the removal
    /// syncs too).
    [[nodiscard]] Result<SyncStatus> sync_status(const Key& key) const;
    [[nodiscard]] Result<SyncStatus> sync_status(const std::string& key) const;
    /// The most recent conflicts (up to 64), oldest first; SyncState::conflict_count
    /// counts every one since the client was opened.
    [[nodiscard]] Result<std::vector<Conflict>> recent_conflicts() const;

    // Network. Nothing runs in the background: while the transport or discovery runs,
    // call process_transport_events() in a loop (or from a thread of its own). Local
    // reads and writes never wait for the network; work for peers stays in the outbox
    // until a peer acknowledges it.

    /// Binds the transport on transport_host:transport_port and accepts peers. Starting a
    /// running transport does nothing. TransportError when enable_transport is off
    /// ("transport is disabled") or the address cannot be bound ("address already in
    /// use").
    Result<void> start_transport();
    /// Closes every connection and the listener; sync work stays tracked. Stopping a
    /// stopped (or disabled) transport does nothing. close() stops it too.
    Result<void> stop_transport();
    /// False when closed, disabled, never started or stopped.
    [[nodiscard]] bool transport_running() const noexcept;
    /// The port the transport is bound to. TransportError when it does not run.
    [[nodiscard]] Result<std::uint16_t> transport_port() const;
    /// Does the pending network work without waiting (connections, handshakes, peers'
    /// operations and ACKs, pushing the outbox, redialling, discovery datagrams); returns
    /// how many transport events it handled, at most max_events (0: no limit).
    /// TransportError when neither the transport nor discovery runs.
    Result<std::size_t> process_transport_events(std::size_t max_events = 64);
    /// As process_transport_events(max_events), and when there is no work, sleeps until
    /// there is some (a frame, a connection, a datagram, or a local write from another
    /// thread, which wakes it at once) or `timeout` passes. For an event loop on a thread
    /// of the application's; timers fire within `timeout` (100 ms is a good default).
    Result<std::size_t> process_transport_events(std::size_t max_events,
                                                 std::chrono::milliseconds timeout);
    /// Runs the event loop on a thread of the client's: network events are handled as
    /// they come, timers fire within 100 ms, acknowledged operations are pruned every
    /// second. Start the transport (and discovery) as usual. Starting it twice does
    /// nothing; stop_background(), close() and the destructor stop it. InvalidState when
    /// closed. Without it nothing runs behind the application's back.
    Result<void> start_background();
    /// Stops the background loop and waits for its thread (at most one 100 ms turn).
    Result<void> stop_background();
    /// Whether the background loop runs.
    [[nodiscard]] bool background_running() const noexcept;
    /// Connects to the peer and keeps the connection (redialled with backoff when it
    /// drops) until disconnect(). Returns once the attempt has started; the handshake
    /// completes in process_transport_events(). InvalidArgument for an invalid peer (the
    /// context names it), TransportError when the transport is disabled or not running.
    Result<void> connect(const Peer& peer);
    /// Closes the connection to the peer (matched by address or node id) and stops
    /// redialling it. InvalidArgument when it is not connected.
    Result<void> disconnect(const Peer& peer);
    /// Trusts the key `fingerprint` (64 hex digits: NodeInfo::fingerprint on that node) as
    /// node `node_id`: connections from and to it are accepted from now on. A node id has
    /// one key and a key one node id: an earlier entry of either is replaced. Kept in the
    /// trust file (trust_path), written durably before this returns. InvalidArgument for
    /// a bad node id or fingerprint, IoError when the file cannot be written.
    Result<void> trust_peer(const std::string& node_id, const std::string& fingerprint);
    /// Stops trusting the key of `peer` (a node id or a fingerprint) and closes its
    /// connections. InvalidArgument when it was not trusted.
    Result<void> untrust_peer(const std::string& peer);
    /// Starts UDP discovery on discovery_host:discovery_port, announcing this node to
    /// discovery_broadcast_host (discovery_broadcast_port, or the discovery port when 0)
    /// every discovery_interval_ms. With auto_connect_discovered and a running transport,
    /// found peers are connected to. Starting it twice does nothing. DiscoveryError when
    /// enable_discovery is off ("discovery is disabled") or the socket cannot be bound.
    Result<void> start_discovery();
    /// Stops discovery. Safe when it is disabled or not running.
    Result<void> stop_discovery();
    /// False when closed, disabled, never started or stopped.
    [[nodiscard]] bool discovery_running() const noexcept;
    /// The port discovery is bound to. DiscoveryError when it does not run.
    [[nodiscard]] Result<std::uint16_t> discovery_port() const;
    /// Sends discovery's announcements and probes to host:port too, besides the broadcast
    /// address: for nodes on ephemeral discovery ports, several nodes on one host, or
    /// networks without broadcast. DiscoveryError when discovery does not run;
    /// InvalidArgument (context "host:port") for an empty host, port 0 or a host that does
    /// not resolve.
    Result<void> add_discovery_target(const std::string& host, std::uint16_t port);
    /// The known peers, sorted by node id: connected, dialled (faulted when the last
    /// connection failed), found by discovery (available or stale), and those that
    /// expired since the last call (reported once). TransportError when both the
    /// transport and discovery are disabled.
    Result<std::vector<Peer>> peers();
    /// The network's figures (see NetworkStats). InvalidState when closed.
    [[nodiscard]] Result<NetworkStats> network_stats() const;

    [[nodiscard]] Result<NodeInfo> node_info() const;
    Result<NodeInfo> refresh_node_info();
    /// The options this client was built with.
    [[nodiscard]] const ClientOptions& options() const noexcept;
    /// A text description for logs and bug reports: `name=value` lines in sections
    /// [options], and while open [node_info], [sync_state] and [network_stats] (the names
    /// are those of the fields here). Meant for people: it may gain lines.
    [[nodiscard]] Result<std::string> describe() const;

    /// For tests only: moves the clock of a client made with ClientOptions::manual_clock
    /// `by` forward, so that what falls due by then (ACK timeouts, retries after their
    /// backoff, redials, keepalives, stale and expired peers) happens on the next tick()
    /// or process_transport_events(). InvalidState without manual_clock, InvalidArgument
    /// for a negative duration. Open or closed.
    Result<void> advance_clock(std::chrono::milliseconds by);

private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace softadastra::sdk

#endif  // SOFTADASTRA_SDK_HPP
