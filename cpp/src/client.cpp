// Client: a move-only handle over the Rust client (rust::Box<ffi::RustClient>).
// Every bridge call returns a status value; the only call that can throw (client_new,
// on an internal error) is caught, so nothing throws out of the SDK.
#include "bridge.hpp"

#include <exception>
#include <optional>

namespace softadastra::sdk {

class Client::Impl {
public:
    explicit Impl(ClientOptions options) : options_(std::move(options)) {
        auto converted = detail::to_rust(options_);
        if (converted.is_err()) {
            construct_error_ = converted.error();
            return;
        }
        try {
            client_.emplace(ffi::client_new(*converted.value()));
        } catch (const std::exception& e) {
            construct_error_ = Error::internal_error(
                std::string("cannot create the client: ") + e.what(), options_.node_id);
        }
    }

    const ClientOptions& options() const noexcept { return options_; }

    /// Runs `call(rust_client)` (returning an FfiStatus) and converts the status. When the
    /// client could not be built, open() reports why and every other call is InvalidState.
    template <typename Call>
    Result<void> run(bool is_open_call, Call&& call) const {
        if (!client_) {
            if (is_open_call) {
                return construct_error_;
            }
            return Error::invalid_state("client is not open");
        }
        Error error = detail::to_error(call(**client_));
        if (error.has_error()) {
            return error;
        }
        return {};
    }

    bool is_open() const noexcept { return client_ && (*client_)->is_open(); }

    /// Whether the Rust client exists (the options converted and the core built it).
    bool built() const noexcept { return client_.has_value(); }

    /// A yes/no question to the Rust client; false when it could not be built.
    template <typename Call>
    bool flag(Call&& call) const noexcept {
        return client_ && call(**client_);
    }

private:
    ClientOptions options_;
    std::optional<rust::Box<ffi::RustClient>> client_;
    Error construct_error_;
};

namespace {

// The bridge's key status and the SDK's SyncStatus share their numbers (and those of the
// C ABI's sa_key_status_t), so a status converts by value.
#define SA_SAME_STATUS(name)                                                    \
    static_assert(static_cast<std::uint8_t>(ffi::FfiKeyStatus::name) ==         \
                      static_cast<std::uint8_t>(SyncStatus::name),              \
                  "FfiKeyStatus::" #name " differs from SyncStatus::" #name)
SA_SAME_STATUS(SavedLocally);
SA_SAME_STATUS(WaitingToSync);
SA_SAME_STATUS(Syncing);
SA_SAME_STATUS(Synced);
SA_SAME_STATUS(Retrying);
SA_SAME_STATUS(SyncFailed);
SA_SAME_STATUS(ConflictDetected);
#undef SA_SAME_STATUS

Error moved_from() { return Error::invalid_state("client is not usable: it was moved from"); }

const ClientOptions& default_options() {
    static const ClientOptions options;
    return options;
}

}  // namespace

Client::Client() : Client(ClientOptions{}) {}

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Client::~Client() = default;
Client::Client(Client&& other) noexcept = default;
Client& Client::operator=(Client&& other) noexcept = default;

Result<void> Client::open() {
    if (!impl_) return moved_from();
    return impl_->run(true, [](const ffi::RustClient& c) { return c.open(); });
}

Result<void> Client::close() {
    // A moved-from client, or one whose core could not be built, is closed already, and
    // closing a closed client does nothing.
    if (!impl_ || !impl_->built()) return {};
    return impl_->run(false, [](const ffi::RustClient& c) { return c.close(); });
}

bool Client::is_open() const noexcept { return impl_ && impl_->is_open(); }

Result<void> Client::put(const Key& key, const Value& value) {
    if (!impl_) return moved_from();
    const auto& bytes = value.bytes();
    return impl_->run(false, [&](const ffi::RustClient& c) {
        return c.put(detail::bytes_of(key.str()),
                     rust::Slice<const std::uint8_t>{bytes.data(), bytes.size()});
    });
}

Result<void> Client::put(const std::string& key, const std::string& value) {
    if (!impl_) return moved_from();
    return impl_->run(false, [&](const ffi::RustClient& c) {
        return c.put(detail::bytes_of(key), detail::bytes_of(value));
    });
}

Result<Value> Client::get(const Key& key) const { return get(key.str()); }

Result<Value> Client::get(const std::string& key) const {
    if (!impl_) return moved_from();
    rust::Vec<std::uint8_t> bytes;
    auto result = impl_->run(
        false, [&](const ffi::RustClient& c) { return c.get(detail::bytes_of(key), bytes); });
    if (result.is_err()) {
        return result.error();
    }
    return Value{std::vector<std::uint8_t>(bytes.begin(), bytes.end())};
}

Result<void> Client::write_batch(const WriteBatch& batch) {
    if (!impl_) return moved_from();
    return impl_->run(false, [&](const ffi::RustClient& c) {
        return c.write_batch(
            rust::Slice<const std::uint8_t>{batch.removes_.data(), batch.removes_.size()},
            rust::Slice<const std::size_t>{batch.key_lengths_.data(), batch.key_lengths_.size()},
            rust::Slice<const std::size_t>{batch.value_lengths_.data(),
                                           batch.value_lengths_.size()},
            detail::bytes_of(batch.data_));
    });
}

Result<std::vector<Entry>> Client::list(const std::string& prefix) const {
    if (!impl_) return moved_from();
    rust::Vec<std::size_t> key_lengths;
    rust::Vec<std::size_t> value_lengths;
    rust::Vec<std::uint8_t> data;
    auto result = impl_->run(false, [&](const ffi::RustClient& c) {
        return c.list(detail::bytes_of(prefix), key_lengths, value_lengths, data);
    });
    if (result.is_err()) {
        return result.error();
    }
    std::vector<Entry> entries;
    entries.reserve(key_lengths.size());
    const std::uint8_t* at = data.data();
    for (std::size_t i = 0; i < key_lengths.size(); ++i) {
        std::string key(reinterpret_cast<const char*>(at), key_lengths[i]);
        at += key_lengths[i];
        std::vector<std::uint8_t> value(at, at + value_lengths[i]);
        at += value_lengths[i];
        entries.push_back(Entry{Key{std::move(key)}, Value{std::move(value)}});
    }
    return entries;
}

Result<void> Client::remove(const Key& key) { return remove(key.str()); }

Result<void> Client::remove(const std::string& key) {
    if (!impl_) return moved_from();
    return impl_->run(false,
                      [&](const ffi::RustClient& c) { return c.remove(detail::bytes_of(key)); });
}

bool Client::contains(const Key& key) const { return contains(key.str()); }

bool Client::contains(const std::string& key) const {
    if (!impl_) return false;
    bool found = false;
    auto result = impl_->run(
        false, [&](const ffi::RustClient& c) { return c.contains(detail::bytes_of(key), found); });
    return result.is_ok() && found;
}

std::size_t Client::size() const {
    if (!impl_) return 0;
    std::size_t n = 0;
    auto result = impl_->run(false, [&](const ffi::RustClient& c) { return c.size(n); });
    return result.is_ok() ? n : 0;
}

Result<void> Client::flush() {
    if (!impl_) return moved_from();
    return impl_->run(false, [](const ffi::RustClient& c) { return c.flush(); });
}

Result<void> Client::compact() {
    if (!impl_) return moved_from();
    return impl_->run(false, [](const ffi::RustClient& c) { return c.compact(); });
}

Result<void> Client::backup(const std::string& dir) {
    if (!impl_) return moved_from();
    return impl_->run(false, [&](const ffi::RustClient& c) { return c.backup(detail::bytes_of(dir)); });
}

Result<NodeInfo> Client::node_info() const {
    if (!impl_) return moved_from();
    ffi::FfiNodeInfo info;
    auto result = impl_->run(false, [&](const ffi::RustClient& c) { return c.node_info(info); });
    if (result.is_err()) {
        return result.error();
    }
    return detail::from_ffi(info);
}

Result<NodeInfo> Client::refresh_node_info() {
    if (!impl_) return moved_from();
    ffi::FfiNodeInfo info;
    auto result =
        impl_->run(false, [&](const ffi::RustClient& c) { return c.refresh_node_info(info); });
    if (result.is_err()) {
        return result.error();
    }
    return detail::from_ffi(info);
}

Result<TickResult> Client::tick(bool prune_completed) {
    if (!impl_) return moved_from();
    ffi::FfiTickResult out{};
    auto result = impl_->run(
        false, [&](const ffi::RustClient& c) { return c.tick(prune_completed, out); });
    if (result.is_err()) {
        return result.error();
    }
    TickResult tick;
    tick.retried_count = out.retried_count;
    tick.pruned_count = out.pruned_count;
    tick.batch_size = out.batch_size;
    return tick;
}

Result<SyncState> Client::sync_state() const {
    if (!impl_) return moved_from();
    ffi::FfiSyncState out{};
    auto result = impl_->run(false, [&](const ffi::RustClient& c) { return c.sync_state(out); });
    if (result.is_err()) {
        return result.error();
    }
    SyncState state;
    state.outbox_size = out.outbox_size;
    state.pending_count = out.pending_count;
    state.queued_count = out.queued_count;
    state.in_flight_count = out.in_flight_count;
    state.acknowledged_count = out.acknowledged_count;
    state.failed_count = out.failed_count;
    state.last_submitted_version = out.last_submitted_version;
    state.last_applied_remote_version = out.last_applied_remote_version;
    state.total_retries = out.total_retries;
    state.conflict_count = out.conflict_count;
    return state;
}

namespace {

/// Runs a bridge call that reports a count.
template <typename Impl, typename Call>
Result<std::size_t> count_call(const Impl& impl, Call call) {
    std::size_t count = 0;
    auto result = impl.run(false, [&](const ffi::RustClient& c) { return call(c, count); });
    if (result.is_err()) {
        return result.error();
    }
    return count;
}

}  // namespace

Result<std::size_t> Client::retry_expired() {
    if (!impl_) return moved_from();
    return count_call(*impl_, [](const ffi::RustClient& c, std::size_t& n) {
        return c.retry_expired(n);
    });
}

Result<std::size_t> Client::prune_completed() {
    if (!impl_) return moved_from();
    return count_call(*impl_, [](const ffi::RustClient& c, std::size_t& n) {
        return c.prune_completed(n);
    });
}

Result<std::size_t> Client::prune_failed() {
    if (!impl_) return moved_from();
    return count_call(*impl_, [](const ffi::RustClient& c, std::size_t& n) {
        return c.prune_failed(n);
    });
}

Result<std::size_t> Client::queue_pending() {
    if (!impl_) return moved_from();
    return count_call(*impl_, [](const ffi::RustClient& c, std::size_t& n) {
        return c.queue_pending(n);
    });
}

Result<std::size_t> Client::retry_failed() {
    if (!impl_) return moved_from();
    return count_call(*impl_, [](const ffi::RustClient& c, std::size_t& n) {
        return c.retry_failed(n);
    });
}

Result<SyncStatus> Client::sync_status(const Key& key) const { return sync_status(key.str()); }

Result<SyncStatus> Client::sync_status(const std::string& key) const {
    if (!impl_) return moved_from();
    ffi::FfiKeyStatus out = ffi::FfiKeyStatus::SavedLocally;
    auto result = impl_->run(
        false, [&](const ffi::RustClient& c) { return c.sync_status(detail::bytes_of(key), out); });
    if (result.is_err()) {
        return result.error();
    }
    return static_cast<SyncStatus>(static_cast<std::uint8_t>(out));
}

// --- network -------------------------------------------------------------------------

bool Peer::is_valid() const {
    return ffi::node_id_is_valid(detail::bytes_of(node_id)) && !host.empty() && port != 0;
}

Result<void> Client::start_transport() {
    if (!impl_) return moved_from();
    return impl_->run(false, [](const ffi::RustClient& c) { return c.start_transport(); });
}

Result<void> Client::stop_transport() {
    if (!impl_) return moved_from();
    return impl_->run(false, [](const ffi::RustClient& c) { return c.stop_transport(); });
}

bool Client::transport_running() const noexcept {
    return impl_ && impl_->flag([](const ffi::RustClient& c) { return c.transport_running(); });
}

Result<std::size_t> Client::process_transport_events(std::size_t max_events) {
    if (!impl_) return moved_from();
    return count_call(*impl_, [max_events](const ffi::RustClient& c, std::size_t& n) {
        return c.process_transport_events(max_events, n);
    });
}

Result<void> Client::connect(const Peer& peer) {
    if (!impl_) return moved_from();
    return impl_->run(false, [&](const ffi::RustClient& c) {
        return c.connect(detail::bytes_of(peer.node_id), detail::bytes_of(peer.host), peer.port);
    });
}

Result<void> Client::disconnect(const Peer& peer) {
    if (!impl_) return moved_from();
    return impl_->run(false, [&](const ffi::RustClient& c) {
        return c.disconnect(detail::bytes_of(peer.node_id), detail::bytes_of(peer.host),
                            peer.port);
    });
}

Result<void> Client::trust_peer(const std::string& node_id, const std::string& fingerprint) {
    if (!impl_) return moved_from();
    return impl_->run(false, [&](const ffi::RustClient& c) {
        return c.trust_peer(detail::bytes_of(node_id), detail::bytes_of(fingerprint));
    });
}

Result<void> Client::untrust_peer(const std::string& peer) {
    if (!impl_) return moved_from();
    return impl_->run(false, [&](const ffi::RustClient& c) {
        return c.untrust_peer(detail::bytes_of(peer));
    });
}

Result<void> Client::start_discovery() {
    if (!impl_) return moved_from();
    return impl_->run(false, [](const ffi::RustClient& c) { return c.start_discovery(); });
}

Result<void> Client::stop_discovery() {
    if (!impl_) return moved_from();
    return impl_->run(false, [](const ffi::RustClient& c) { return c.stop_discovery(); });
}

bool Client::discovery_running() const noexcept {
    return impl_ && impl_->flag([](const ffi::RustClient& c) { return c.discovery_running(); });
}

Result<std::vector<Peer>> Client::peers() {
    if (!impl_) return moved_from();
    rust::Vec<ffi::FfiPeer> out;
    auto result = impl_->run(false, [&](const ffi::RustClient& c) { return c.peers(out); });
    if (result.is_err()) {
        return result.error();
    }
    std::vector<Peer> peers;
    peers.reserve(out.size());
    for (const auto& p : out) {
        Peer peer{std::string(p.node_id), std::string(p.host), p.port};
        peer.state = std::string(p.state);
        peer.last_seen_ms = p.last_seen_ms;
        peers.push_back(std::move(peer));
    }
    return peers;
}

Result<NetworkStats> Client::network_stats() const {
    if (!impl_) return moved_from();
    ffi::FfiNetworkStats out{};
    auto result = impl_->run(false, [&](const ffi::RustClient& c) { return c.network_stats(out); });
    if (result.is_err()) {
        return result.error();
    }
    NetworkStats stats;
    stats.connections = out.connections;
    stats.connection_limit = out.connection_limit;
    stats.refused_connections = out.refused_connections;
    stats.garbage_frames = out.garbage_frames;
    stats.receive_buffered = out.receive_buffered;
    stats.send_buffered = out.send_buffered;
    stats.dialled = out.dialled;
    stats.catch_up_serving = out.catch_up_serving;
    stats.catch_up_started = out.catch_up_started;
    stats.catch_up_busy = out.catch_up_busy;
    stats.catch_up_protocol_errors = out.catch_up_protocol_errors;
    stats.peer_records = out.peer_records;
    stats.discovered_dials = out.discovered_dials;
    stats.refused_own_origin = out.refused_own_origin;
    stats.refused_clock_ahead = out.refused_clock_ahead;
    stats.refused_too_many_origins = out.refused_too_many_origins;
    stats.refused_too_many_ranges = out.refused_too_many_ranges;
    stats.refused_second_hand = out.refused_second_hand;
    stats.untrusted_peers = out.untrusted_peers;
    stats.tls_failures = out.tls_failures;
    stats.forged_announcements = out.forged_announcements;
    stats.replayed_announcements = out.replayed_announcements;
    return stats;
}

Result<std::vector<Conflict>> Client::recent_conflicts() const {
    if (!impl_) return moved_from();
    rust::Vec<ffi::FfiConflict> out;
    auto result =
        impl_->run(false, [&](const ffi::RustClient& c) { return c.recent_conflicts(out); });
    if (result.is_err()) {
        return result.error();
    }
    std::vector<Conflict> conflicts;
    conflicts.reserve(out.size());
    for (const auto& f : out) {
        Conflict c;
        c.key = std::string(f.key);
        c.local_origin = std::string(f.local_origin);
        c.local_seq = f.local_seq;
        c.local_version = f.local_version;
        c.remote_origin = std::string(f.remote_origin);
        c.remote_seq = f.remote_seq;
        c.remote_version = f.remote_version;
        c.remote_won = f.remote_won;
        conflicts.push_back(std::move(c));
    }
    return conflicts;
}

Result<std::size_t> Client::process_transport_events(std::size_t max_events,
                                                     std::chrono::milliseconds timeout) {
    if (!impl_) return moved_from();
    const auto ms = timeout.count() <= 0 ? 0
                    : timeout.count() > 0xFFFFFFFFLL
                        ? 0xFFFFFFFFu
                        : static_cast<std::uint32_t>(timeout.count());
    std::size_t handled = 0;
    auto result = impl_->run(false, [&](const ffi::RustClient& c) {
        return c.wait_transport_events(max_events, ms, handled);
    });
    if (result.is_err()) {
        return result.error();
    }
    return handled;
}

Result<void> Client::start_background() {
    if (!impl_) return moved_from();
    return impl_->run(false, [](const ffi::RustClient& c) { return c.start_background(); });
}

Result<void> Client::stop_background() {
    if (!impl_ || !impl_->built()) return {};
    return impl_->run(false, [](const ffi::RustClient& c) { return c.stop_background(); });
}

bool Client::background_running() const noexcept {
    return impl_ && impl_->flag([](const ffi::RustClient& c) { return c.background_running(); });
}

Result<std::uint16_t> Client::transport_port() const {
    if (!impl_) return moved_from();
    std::uint16_t port = 0;
    auto result = impl_->run(false, [&](const ffi::RustClient& c) { return c.transport_port(port); });
    if (result.is_err()) {
        return result.error();
    }
    return port;
}

Result<void> Client::add_discovery_target(const std::string& host, std::uint16_t port) {
    if (!impl_) return moved_from();
    return impl_->run(false, [&](const ffi::RustClient& c) {
        return c.add_discovery_target(detail::bytes_of(host), port);
    });
}

Result<void> Client::advance_clock(std::chrono::milliseconds by) {
    if (!impl_) return moved_from();
    if (by.count() < 0) {
        return Error::invalid_argument("advance_clock: the clock only moves forward, not by " +
                                       std::to_string(by.count()) + " ms");
    }
    auto ms = static_cast<std::uint64_t>(by.count());
    return impl_->run(false, [&](const ffi::RustClient& c) { return c.advance_clock(ms); });
}

Result<std::uint16_t> Client::discovery_port() const {
    if (!impl_) return moved_from();
    std::uint16_t port = 0;
    auto result = impl_->run(false, [&](const ffi::RustClient& c) { return c.discovery_port(port); });
    if (result.is_err()) {
        return result.error();
    }
    return port;
}

Result<std::string> Client::describe() const {
    if (!impl_) return moved_from();
    rust::String out;
    auto result = impl_->run(false, [&](const ffi::RustClient& c) { return c.describe(out); });
    if (result.is_err()) {
        return result.error();
    }
    return std::string(out);
}

const ClientOptions& Client::options() const noexcept {
    return impl_ ? impl_->options() : default_options();
}

}  // namespace softadastra::sdk
