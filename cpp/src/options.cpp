// Error, version and ClientOptions: everything here forwards to the Rust core, so the
// rules (presets, validity, code names) are written once, in Rust.
#include "bridge.hpp"

#include <softadastra.h>

#include <exception>
#include <type_traits>

namespace softadastra::sdk {

std::string sdk_version() { return std::string(ffi::sdk_version()); }

std::string Error::to_string(Code code) {
    return std::string(ffi::error_code_name(static_cast<std::uint32_t>(code)));
}

namespace detail {

Error to_error(const ffi::FfiStatus& status) {
    if (status.code == 0) {
        return Error{};
    }
    // A code newer than this SDK knows reads as Unknown (the message still tells).
    auto code = status.code <= static_cast<std::uint32_t>(Error::Code::InternalError)
                    ? static_cast<Error::Code>(status.code)
                    : Error::Code::Unknown;
    return Error{code, std::string(status.message), std::string(status.context)};
}

namespace {

/// Calls `visit(number, field)` for every option: the one place that pairs the C++ fields
/// with the library's option numbers (sa_option_t). Both directions use it, and
/// cpp/tests/parity_test.cpp fails when an option of the library has no field here.
template <typename Options, typename Visit>
void each_option(Options& o, Visit&& visit) {
    visit(SA_OPTION_NODE_ID, o.node_id);
    visit(SA_OPTION_WAL_PATH, o.wal_path);
    visit(SA_OPTION_ENABLE_WAL, o.enable_wal);
    visit(SA_OPTION_AUTO_FLUSH, o.auto_flush);
    visit(SA_OPTION_SYNC_BATCH_SIZE, o.sync_batch_size);
    visit(SA_OPTION_MAX_SYNC_RETRIES, o.max_sync_retries);
    visit(SA_OPTION_ACK_TIMEOUT_MS, o.ack_timeout_ms);
    visit(SA_OPTION_RETRY_INTERVAL_MS, o.retry_interval_ms);
    visit(SA_OPTION_REQUIRE_ACK, o.require_ack);
    visit(SA_OPTION_AUTO_QUEUE, o.auto_queue);
    visit(SA_OPTION_ENABLE_TRANSPORT, o.enable_transport);
    visit(SA_OPTION_TRANSPORT_HOST, o.transport_host);
    visit(SA_OPTION_TRANSPORT_PORT, o.transport_port);
    visit(SA_OPTION_ENABLE_DISCOVERY, o.enable_discovery);
    visit(SA_OPTION_DISCOVERY_HOST, o.discovery_host);
    visit(SA_OPTION_DISCOVERY_PORT, o.discovery_port);
    visit(SA_OPTION_DISCOVERY_BROADCAST_HOST, o.discovery_broadcast_host);
    visit(SA_OPTION_DISCOVERY_BROADCAST_PORT, o.discovery_broadcast_port);
    visit(SA_OPTION_DISPLAY_NAME, o.display_name);
    visit(SA_OPTION_VERSION, o.version);
    visit(SA_OPTION_DISCOVERY_INTERVAL_MS, o.discovery_interval_ms);
    visit(SA_OPTION_DISCOVERY_TTL_MS, o.discovery_ttl_ms);
    visit(SA_OPTION_AUTO_CONNECT_DISCOVERED, o.auto_connect_discovered);
    visit(SA_OPTION_MAX_CLOCK_DRIFT_MS, o.max_clock_drift_ms);
    visit(SA_OPTION_IDENTITY_PATH, o.identity_path);
    visit(SA_OPTION_INSECURE_TRANSPORT, o.insecure_transport);
    visit(SA_OPTION_TRUST_PATH, o.trust_path);
    visit(SA_OPTION_HANDSHAKE_TIMEOUT_MS, o.handshake_timeout_ms);
    visit(SA_OPTION_WAL_SEGMENT_SIZE, o.wal_segment_size);
    visit(SA_OPTION_AUTO_COMPACT, o.auto_compact);
    visit(SA_OPTION_COMPACT_LOG_BYTES, o.compact_log_bytes);
    visit(SA_OPTION_TOMBSTONE_HORIZON_MS, o.tombstone_horizon_ms);
    visit(SA_OPTION_EPHEMERAL_TRANSPORT_PORT, o.ephemeral_transport_port);
    visit(SA_OPTION_EPHEMERAL_DISCOVERY_PORT, o.ephemeral_discovery_port);
    visit(SA_OPTION_MANUAL_CLOCK, o.manual_clock);
    visit(SA_OPTION_FAIL_WRITE_AT, o.fail_write_at);
    visit(SA_OPTION_FAIL_SYNC_AT, o.fail_sync_at);
    visit(SA_OPTION_SYNC_PUSH_KEY_LIMIT, o.sync_push_key_limit);
}

/// Writes each field into the Rust options; remembers the first error.
struct Writer {
    ffi::RustOptions& out;
    Error error;

    void keep(const ffi::FfiStatus& status) {
        if (!error.has_error()) error = to_error(status);
    }
    void operator()(std::uint32_t option, const std::string& value) {
        keep(out.set_text(option, bytes_of(value)));
    }
    void operator()(std::uint32_t option, bool value) { keep(out.set_bool(option, value)); }
    template <typename Number,
              typename = std::enable_if_t<std::is_integral_v<Number> && !std::is_same_v<Number, bool>>>
    void operator()(std::uint32_t option, Number value) {
        keep(out.set_uint(option, static_cast<std::uint64_t>(value)));
    }
};

/// Reads each field from the Rust options (numbers fit: the library checks each width).
struct Reader {
    const ffi::RustOptions& in;

    void operator()(std::uint32_t option, std::string& value) const {
        value = std::string(in.text(option));
    }
    void operator()(std::uint32_t option, bool& value) const { value = in.flag(option); }
    template <typename Number,
              typename = std::enable_if_t<std::is_integral_v<Number> && !std::is_same_v<Number, bool>>>
    void operator()(std::uint32_t option, Number& value) const {
        value = static_cast<Number>(in.number(option));
    }
};

}  // namespace

Result<rust::Box<ffi::RustOptions>> to_rust(const ClientOptions& o) {
    rust::Box<ffi::RustOptions> out = ffi::options_new(ffi::FfiPreset::Default);
    Writer writer{*out, Error{}};
    each_option(o, writer);
    if (writer.error.has_error()) {
        return writer.error;
    }
    return out;
}

ClientOptions from_rust(const ffi::RustOptions& in) {
    ClientOptions o;
    each_option(o, Reader{in});
    return o;
}

NodeInfo from_ffi(const ffi::FfiNodeInfo& f) {
    NodeInfo info;
    info.node_id = std::string(f.node_id);
    info.display_name = std::string(f.display_name);
    info.hostname = std::string(f.hostname);
    info.os_name = std::string(f.os_name);
    info.version = std::string(f.version);
    info.started_at_ms = f.started_at_ms;
    info.uptime_ms = f.uptime_ms;
    info.capabilities.reserve(f.capabilities.size());
    for (const auto& c : f.capabilities) {
        info.capabilities.emplace_back(std::string(c));
    }
    info.fingerprint = std::string(f.fingerprint);
    return info;
}

}  // namespace detail

namespace {
/// A Rust preset with the caller's node id and WAL path (strings stay byte-exact in C++;
/// open() reports them if they are not UTF-8).
ClientOptions preset(ffi::FfiPreset kind, std::string node_id, std::string wal_path) {
    ClientOptions o = detail::from_rust(*ffi::options_new(kind));
    o.node_id = std::move(node_id);
    o.wal_path = std::move(wal_path);
    return o;
}
}  // namespace

ClientOptions ClientOptions::persistent(std::string node_id, std::string wal_path) {
    return preset(ffi::FfiPreset::Persistent, std::move(node_id), std::move(wal_path));
}

ClientOptions ClientOptions::durable(std::string node_id, std::string wal_path) {
    return persistent(std::move(node_id), std::move(wal_path));
}

ClientOptions ClientOptions::fast(std::string node_id, std::string wal_path) {
    return preset(ffi::FfiPreset::Fast, std::move(node_id), std::move(wal_path));
}

ClientOptions ClientOptions::memory_only(std::string node_id) {
    ClientOptions o = detail::from_rust(*ffi::options_new(ffi::FfiPreset::MemoryOnly));
    o.node_id = std::move(node_id);
    return o;
}

ClientOptions ClientOptions::local(std::string node_id) { return memory_only(std::move(node_id)); }

Result<void> ClientOptions::validate() const {
    auto converted = detail::to_rust(*this);
    if (converted.is_err()) {
        return converted.error();
    }
    Error error = detail::to_error(converted.value()->validate());
    if (error.has_error()) {
        return error;
    }
    return {};
}

Result<std::string> ClientOptions::describe() const {
    auto converted = detail::to_rust(*this);
    if (converted.is_err()) {
        return converted.error();
    }
    return std::string(converted.value()->describe());
}

}  // namespace softadastra::sdk
