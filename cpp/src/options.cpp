// Error, version and ClientOptions: everything here forwards to the Rust core, so the
// rules (presets, validity, code names) are written once, in Rust.
#include "bridge.hpp"

#include <exception>

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
/// Assigns a std::string to a rust::String field, or reports the field as not UTF-8.
bool assign(rust::String& out, const std::string& in, const char* field, Error& error) {
    try {
        out = rust::String(in);
        return true;
    } catch (const std::exception&) {
        error = Error::invalid_argument(
            std::string("invalid client options: ") + field + ": not valid UTF-8", field);
        return false;
    }
}
}  // namespace

Result<ffi::FfiOptions> to_ffi(const ClientOptions& o) {
    ffi::FfiOptions f;
    Error error;
    bool ok = assign(f.node_id, o.node_id, "node_id", error) &&
              assign(f.wal_path, o.wal_path, "wal_path", error) &&
              assign(f.transport_host, o.transport_host, "transport_host", error) &&
              assign(f.discovery_host, o.discovery_host, "discovery_host", error) &&
              assign(f.discovery_broadcast_host, o.discovery_broadcast_host,
                     "discovery_broadcast_host", error) &&
              assign(f.display_name, o.display_name, "display_name", error) &&
              assign(f.version, o.version, "version", error);
    if (!ok) {
        return error;
    }
    f.enable_wal = o.enable_wal;
    f.auto_flush = o.auto_flush;
    f.sync_batch_size = o.sync_batch_size;
    f.max_sync_retries = o.max_sync_retries;
    f.ack_timeout_ms = o.ack_timeout_ms;
    f.retry_interval_ms = o.retry_interval_ms;
    f.require_ack = o.require_ack;
    f.auto_queue = o.auto_queue;
    f.enable_transport = o.enable_transport;
    f.transport_port = o.transport_port;
    f.enable_discovery = o.enable_discovery;
    f.discovery_port = o.discovery_port;
    f.discovery_broadcast_port = o.discovery_broadcast_port;
    f.discovery_interval_ms = o.discovery_interval_ms;
    f.discovery_ttl_ms = o.discovery_ttl_ms;
    f.auto_connect_discovered = o.auto_connect_discovered;
    return f;
}

ClientOptions from_ffi(const ffi::FfiOptions& f) {
    ClientOptions o;
    o.node_id = std::string(f.node_id);
    o.wal_path = std::string(f.wal_path);
    o.enable_wal = f.enable_wal;
    o.auto_flush = f.auto_flush;
    o.sync_batch_size = f.sync_batch_size;
    o.max_sync_retries = f.max_sync_retries;
    o.ack_timeout_ms = f.ack_timeout_ms;
    o.retry_interval_ms = f.retry_interval_ms;
    o.require_ack = f.require_ack;
    o.auto_queue = f.auto_queue;
    o.enable_transport = f.enable_transport;
    o.transport_host = std::string(f.transport_host);
    o.transport_port = f.transport_port;
    o.enable_discovery = f.enable_discovery;
    o.discovery_host = std::string(f.discovery_host);
    o.discovery_port = f.discovery_port;
    o.discovery_broadcast_host = std::string(f.discovery_broadcast_host);
    o.discovery_broadcast_port = f.discovery_broadcast_port;
    o.display_name = std::string(f.display_name);
    o.version = std::string(f.version);
    o.discovery_interval_ms = f.discovery_interval_ms;
    o.discovery_ttl_ms = f.discovery_ttl_ms;
    o.auto_connect_discovered = f.auto_connect_discovered;
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
    return info;
}

}  // namespace detail

namespace {
/// A Rust preset with the caller's node id and WAL path (strings stay byte-exact in C++;
/// open() reports them if they are not UTF-8).
ClientOptions preset(ffi::FfiPreset kind, std::string node_id, std::string wal_path) {
    ClientOptions o = detail::from_ffi(ffi::options_preset(kind));
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
    ClientOptions o = detail::from_ffi(ffi::options_preset(ffi::FfiPreset::MemoryOnly));
    o.node_id = std::move(node_id);
    return o;
}

ClientOptions ClientOptions::local(std::string node_id) { return memory_only(std::move(node_id)); }

Result<void> ClientOptions::validate() const {
    auto converted = detail::to_ffi(*this);
    if (converted.is_err()) {
        return converted.error();
    }
    Error error = detail::to_error(ffi::options_validate(converted.value()));
    if (error.has_error()) {
        return error;
    }
    return {};
}

}  // namespace softadastra::sdk
