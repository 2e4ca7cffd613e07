// Parity of the C++ SDK with the library's one description of its foreign types
// (src/surface.rs): every option crosses the C++ ClientOptions in both directions, and
// every field of the value types the client returns shows, with the same name and value,
// in the client's own description. A field the SDK misses (an option with no C++ field,
// a counter not copied) fails here, naming it.
#include <softadastra.h>
#include <softadastra/sdk.hpp>

#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace softadastra::sdk;

using Lines = std::vector<std::pair<std::string, std::string>>;

/// The `name=value` lines of `text`, or of its section `[section]` when one is named.
Lines lines_of(const std::string& text, const std::string& section = "") {
    Lines lines;
    std::istringstream in(text);
    std::string line;
    bool inside = section.empty();
    while (std::getline(in, line)) {
        if (!line.empty() && line.front() == '[') {
            inside = section.empty() || line == "[" + section + "]";
            continue;
        }
        auto eq = line.find('=');
        if (inside && eq != std::string::npos) {
            lines.emplace_back(line.substr(0, eq), line.substr(eq + 1));
        }
    }
    return lines;
}

std::vector<std::string> names_of(const Lines& lines) {
    std::vector<std::string> names;
    for (const auto& l : lines) names.push_back(l.first);
    return names;
}

/// Every option of the library, by the C ABI's table.
std::vector<std::string> library_option_names() {
    std::vector<std::string> names;
    for (std::uint32_t n = 0; n < sa_option_count(); ++n) names.emplace_back(sa_option_name(n));
    return names;
}

/// Every C++ field set to a value unlike its default.
ClientOptions every_field_changed() {
    ClientOptions o;
    o.node_id = "parity-node";
    o.wal_path = "parity.wal";
    o.enable_wal = false;
    o.auto_flush = false;
    o.sync_batch_size = 7;
    o.max_sync_retries = 8;
    o.ack_timeout_ms = 9;
    o.retry_interval_ms = 10;
    o.require_ack = false;
    o.auto_queue = false;
    o.enable_transport = true;
    o.transport_host = "127.0.0.2";
    o.transport_port = 11;
    o.enable_discovery = true;
    o.discovery_host = "127.0.0.3";
    o.discovery_port = 12;
    o.discovery_broadcast_host = "127.0.0.4";
    o.discovery_broadcast_port = 13;
    o.display_name = "Parity";
    o.version = "9.9.9";
    o.discovery_interval_ms = 14;
    o.discovery_ttl_ms = 15;
    o.auto_connect_discovered = false;
    o.max_clock_drift_ms = 16;
    o.identity_path = "parity.key";
    o.insecure_transport = true;
    o.trust_path = "parity.trust";
    o.handshake_timeout_ms = 17;
    o.wal_segment_size = 1 << 20;
    o.auto_compact = false;
    o.compact_log_bytes = 18;
    o.tombstone_horizon_ms = 19;
    o.ephemeral_transport_port = true;
    o.ephemeral_discovery_port = true;
    o.manual_clock = true;
    o.fail_write_at = 20;
    o.fail_sync_at = 21;
    o.sync_push_key_limit = 22;
    return o;
}

TEST(ParityTest, EveryOptionOfTheLibraryHasACxxField) {
    auto defaults = ClientOptions{}.describe();
    auto changed = every_field_changed().describe();
    ASSERT_TRUE(defaults.is_ok() && changed.is_ok());
    Lines before = lines_of(defaults.value());
    Lines after = lines_of(changed.value());
    ASSERT_EQ(names_of(before), library_option_names());
    ASSERT_EQ(names_of(after), library_option_names());
    for (std::size_t i = 0; i < before.size(); ++i) {
        // Same value as the default: the C++ struct has no field for it, or the SDK does
        // not carry it to the library.
        EXPECT_NE(before[i].second, after[i].second) << "option " << before[i].first;
    }
}

TEST(ParityTest, HeaderDefaultsAndPresetsEqualTheLibrarys) {
    // The C++ defaults are written in sdk.hpp; the library's come from Rust (read here
    // through the C ABI). They must agree, option by option, as must the presets.
    sa_options_t* c = nullptr;
    ASSERT_EQ(sa_options_new(&c), SA_OK);
    sa_client_t* client = nullptr;
    ASSERT_EQ(sa_client_new(c, &client), SA_OK);
    sa_options_free(c);
    sa_bytes_t* text = nullptr;
    ASSERT_EQ(sa_client_describe(client, &text), SA_OK);
    std::string library(reinterpret_cast<const char*>(text->data), text->len);
    sa_bytes_free(text);
    sa_client_free(client);
    EXPECT_EQ(lines_of(ClientOptions{}.describe().value()), lines_of(library, "options"));

    ASSERT_EQ(sa_options_fast("n", "f.wal", &c), SA_OK);
    ASSERT_EQ(sa_client_new(c, &client), SA_OK);
    sa_options_free(c);
    ASSERT_EQ(sa_client_describe(client, &text), SA_OK);
    library.assign(reinterpret_cast<const char*>(text->data), text->len);
    sa_bytes_free(text);
    sa_client_free(client);
    EXPECT_EQ(lines_of(ClientOptions::fast("n", "f.wal").describe().value()),
              lines_of(library, "options"));
}

TEST(ParityTest, AnOptionRoundTripsThroughTheLibrary) {
    // Presets are read back from the library into the C++ struct: the new option too.
    ClientOptions o = ClientOptions::memory_only("n");
    EXPECT_EQ(o.max_clock_drift_ms, ClientOptions{}.max_clock_drift_ms);
    EXPECT_FALSE(o.enable_wal);
    ClientOptions bad;
    bad.display_name = std::string("\xff", 1);
    auto described = bad.describe();
    ASSERT_TRUE(described.is_err());
    EXPECT_EQ(described.error().context(), "display_name");
}

template <typename T>
std::string str(T value) {
    return std::to_string(value);
}

TEST(ParityTest, ValueTypesCarryEveryFieldOfTheDescription) {
    Client client(ClientOptions::memory_only("parity"));
    ASSERT_TRUE(client.open().is_ok());
    ASSERT_TRUE(client.put("p/1", "v").is_ok());
    ASSERT_TRUE(client.put("p/2", "v").is_ok());
    auto state = client.sync_state();
    auto stats = client.network_stats();
    auto info = client.node_info();
    auto description = client.describe();
    ASSERT_TRUE(state.is_ok() && stats.is_ok() && info.is_ok() && description.is_ok());
    const std::string& text = description.value();

    const SyncState& s = state.value();
    Lines sync = {
        {"outbox_size", str(s.outbox_size)},
        {"pending_count", str(s.pending_count)},
        {"queued_count", str(s.queued_count)},
        {"in_flight_count", str(s.in_flight_count)},
        {"acknowledged_count", str(s.acknowledged_count)},
        {"failed_count", str(s.failed_count)},
        {"last_submitted_version", str(s.last_submitted_version)},
        {"last_applied_remote_version", str(s.last_applied_remote_version)},
        {"total_retries", str(s.total_retries)},
        {"conflict_count", str(s.conflict_count)},
    };
    EXPECT_EQ(sync, lines_of(text, "sync_state"));
    EXPECT_EQ(s.outbox_size, 2u);

    const NetworkStats& n = stats.value();
    Lines network = {
        {"connections", str(n.connections)},
        {"connection_limit", str(n.connection_limit)},
        {"refused_connections", str(n.refused_connections)},
        {"garbage_frames", str(n.garbage_frames)},
        {"receive_buffered", str(n.receive_buffered)},
        {"send_buffered", str(n.send_buffered)},
        {"dialled", str(n.dialled)},
        {"catch_up_serving", str(n.catch_up_serving)},
        {"catch_up_started", str(n.catch_up_started)},
        {"catch_up_busy", str(n.catch_up_busy)},
        {"catch_up_protocol_errors", str(n.catch_up_protocol_errors)},
        {"peer_records", str(n.peer_records)},
        {"discovered_dials", str(n.discovered_dials)},
        {"refused_own_origin", str(n.refused_own_origin)},
        {"refused_clock_ahead", str(n.refused_clock_ahead)},
        {"refused_too_many_origins", str(n.refused_too_many_origins)},
        {"refused_too_many_ranges", str(n.refused_too_many_ranges)},
        {"refused_second_hand", str(n.refused_second_hand)},
        {"untrusted_peers", str(n.untrusted_peers)},
        {"tls_failures", str(n.tls_failures)},
        {"forged_announcements", str(n.forged_announcements)},
        {"replayed_announcements", str(n.replayed_announcements)},
    };
    EXPECT_EQ(network, lines_of(text, "network_stats"));

    const NodeInfo& i = info.value();
    std::string capabilities;
    for (const auto& c : i.capabilities) capabilities += (capabilities.empty() ? "" : ",") + c;
    Lines node = {
        {"node_id", i.node_id},
        {"display_name", i.display_name},
        {"hostname", i.hostname},
        {"os_name", i.os_name},
        {"version", i.version},
        {"started_at_ms", str(i.started_at_ms)},
        {"uptime_ms", "(moves)"},
        {"capabilities", capabilities},
        {"fingerprint", i.fingerprint},
    };
    Lines described = lines_of(text, "node_info");
    ASSERT_EQ(names_of(node), names_of(described));
    for (std::size_t k = 0; k < node.size(); ++k) {
        if (node[k].first != "uptime_ms") {
            EXPECT_EQ(node[k], described[k]);
        }
    }
}

TEST(ParityTest, AClosedClientDescribesItsOptionsOnly) {
    Client client(ClientOptions::memory_only("closed"));
    auto text = client.describe();
    ASSERT_TRUE(text.is_ok());
    EXPECT_EQ(lines_of(text.value()), lines_of(text.value(), "options"));
    Lines all = lines_of(text.value());
    ASSERT_FALSE(all.empty());
    EXPECT_EQ(all.front(), (std::pair<std::string, std::string>{"node_id", "closed"}));
}

}  // namespace
