// The transport through the SDK: a disabled transport is a TransportError, a closed client
// an InvalidState, a transport not started yet a TransportError; starting twice and
// stopping (also when disabled or never started) are fine; invalid peers are refused with
// InvalidArgument; two clients with persistent WALs sync over TCP on 127.0.0.1.
//
// Ports: the transport refuses port 0, so each test picks a free port first and retries
// with another when it was taken meanwhile. Every wait is bounded.
#include "test_support.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace softadastra::sdk;
using softadastra::test::contains;
using softadastra::test::free_port;
using softadastra::test::trust_each_other;
using softadastra::test::TempDir;

namespace {

/// An open client with its transport running on 127.0.0.1.
struct Node {
    Client client;
    std::uint16_t port = 0;
};

/// Opens a client with a persistent WAL `dir/<id>.wal` and starts its transport on a free
/// port of 127.0.0.1, retrying with another port when the chosen one is in use.
Node start_node(const TempDir& dir, const std::string& id) {
    for (int attempt = 0; attempt < 20; ++attempt) {
        const std::uint16_t port = free_port();
        if (port == 0) continue;
        Node node{Client{ClientOptions::persistent(id, dir.file(id + ".wal"))
                             .with_local_transport(port)},
                  port};
        auto opened = node.client.open();
        if (opened.is_err()) {
            ADD_FAILURE() << id << ": open failed: " << opened.error().message();
            return node;
        }
        auto started = node.client.start_transport();
        if (started.is_ok()) return node;
        if (!contains(started.error().message(), "in use")) {
            ADD_FAILURE() << id << ": start_transport failed: " << started.error().message();
            return node;
        }
    }
    ADD_FAILURE() << id << ": no free port found";
    return Node{};
}

/// Every network call on `client` fails with InvalidState and nothing runs.
void expect_every_network_call_is_invalid_state(Client& client) {
    const Peer peer = Peer::local("node-b", 4041);
    EXPECT_ERROR_CODE(client.start_transport(), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client.stop_transport(), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client.process_transport_events(), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client.process_transport_events(0), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client.connect(peer), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client.disconnect(peer), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client.peers(), Error::Code::InvalidState);
    EXPECT_FALSE(client.transport_running());
}

/// Drives both clients' transports until `done()` holds: at most ~10 s and 5000 rounds,
/// sleeping a millisecond after a round in which nothing happened. Returns whether
/// `done()` held.
template <typename Done>
bool pump(Client& a, Client& b, Done done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (int round = 0; round < 5000; ++round) {
        std::size_t handled = 0;
        for (Client* c : {&a, &b}) {
            auto r = c->process_transport_events();
            if (r.is_err()) {
                ADD_FAILURE() << "process_transport_events: " << r.error().message();
                return false;
            }
            handled += r.value();
        }
        if (done()) return true;
        if (std::chrono::steady_clock::now() > deadline) return false;
        if (handled == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return done();
}

/// The peer `node_id` as `client` reports it; a Peer with state "" when it is not listed.
Peer peer_named(Client& client, const std::string& node_id) {
    auto peers = client.peers();
    if (peers.is_ok()) {
        for (const auto& p : peers.value()) {
            if (p.node_id == node_id) return p;
        }
    }
    Peer none;
    none.state = "";
    return none;
}

TEST(TransportTest, DisabledTransportIsATransportError) {
    Client client{ClientOptions::memory_only("transport-disabled")};
    ASSERT_TRUE(client.open().is_ok());
    auto started = client.start_transport();
    EXPECT_ERROR_CODE(started, Error::Code::TransportError);
    EXPECT_TRUE(contains(started.error().message(), "transport is disabled"))
        << started.error().message();
    EXPECT_EQ(started.error().code_string(), "transport_error");
    EXPECT_FALSE(client.transport_running());

    const Peer peer = Peer::local("node-b", 4041);
    EXPECT_ERROR_CODE(client.process_transport_events(), Error::Code::TransportError);
    EXPECT_ERROR_CODE(client.connect(peer), Error::Code::TransportError);
    EXPECT_ERROR_CODE(client.disconnect(peer), Error::Code::TransportError);
    // With discovery disabled too there is no peer list at all.
    EXPECT_ERROR_CODE(client.peers(), Error::Code::TransportError);

    // Stopping what never ran is fine, and local work is not affected.
    EXPECT_TRUE(client.stop_transport().is_ok());
    EXPECT_TRUE(client.put("k", "v").is_ok());
    EXPECT_EQ(client.get("k").value().to_string(), "v");
}

TEST(TransportTest, ClosedClientIsInvalidState) {
    Client never_opened{ClientOptions::memory_only("transport-closed").with_local_transport(4041)};
    expect_every_network_call_is_invalid_state(never_opened);

    TempDir dir;
    Node node = start_node(dir, "transport-closed");
    ASSERT_TRUE(node.client.transport_running());
    ASSERT_TRUE(node.client.close().is_ok());
    expect_every_network_call_is_invalid_state(node.client);
    EXPECT_TRUE(contains(node.client.start_transport().error().message(), "not open"))
        << node.client.start_transport().error().message();

    Client moved_to{std::move(node.client)};
    expect_every_network_call_is_invalid_state(node.client);  // NOLINT(bugprone-use-after-move)
}

TEST(TransportTest, NotStartedIsATransportError) {
    Client client{ClientOptions::memory_only("transport-idle").with_local_transport(free_port())};
    ASSERT_TRUE(client.open().is_ok());
    EXPECT_FALSE(client.transport_running());
    auto events = client.process_transport_events();
    EXPECT_ERROR_CODE(events, Error::Code::TransportError);
    EXPECT_TRUE(contains(events.error().message(), "not running")) << events.error().message();
    auto connected = client.connect(Peer::local("node-b", 4041));
    EXPECT_ERROR_CODE(connected, Error::Code::TransportError);
    EXPECT_TRUE(contains(connected.error().message(), "not running"))
        << connected.error().message();
    EXPECT_ERROR_CODE(client.disconnect(Peer::local("node-b", 4041)), Error::Code::TransportError);
    // Enabled but not running: no peer yet.
    auto peers = client.peers();
    SA_ASSERT_OK(peers);
    EXPECT_TRUE(peers.value().empty());
    EXPECT_TRUE(client.stop_transport().is_ok());
    EXPECT_FALSE(client.transport_running());
}

TEST(TransportTest, StartTwiceIsFineAndStopIsSafe) {
    TempDir dir;
    Node node = start_node(dir, "transport-twice");
    Client& client = node.client;
    ASSERT_TRUE(client.transport_running());
    EXPECT_TRUE(client.start_transport().is_ok());
    EXPECT_TRUE(client.transport_running());
    auto events = client.process_transport_events();
    SA_ASSERT_OK(events);
    EXPECT_TRUE(client.process_transport_events(0).is_ok());

    EXPECT_TRUE(client.stop_transport().is_ok());
    EXPECT_FALSE(client.transport_running());
    EXPECT_TRUE(client.stop_transport().is_ok());
    EXPECT_ERROR_CODE(client.process_transport_events(), Error::Code::TransportError);

    // It starts again on the same port, and close() stops it.
    auto restarted = client.start_transport();
    SA_ASSERT_OK(restarted);
    EXPECT_TRUE(client.transport_running());
    ASSERT_TRUE(client.close().is_ok());
    EXPECT_FALSE(client.transport_running());
    ASSERT_TRUE(client.open().is_ok());
    EXPECT_FALSE(client.transport_running());
}

TEST(TransportTest, InvalidPeerIsRejected) {
    TempDir dir;
    Node node = start_node(dir, "transport-peers");
    Client& client = node.client;
    ASSERT_TRUE(client.transport_running());
    const Peer invalid[] = {
        Peer{"", "127.0.0.1", 4041},
        Peer{"has space", "127.0.0.1", 4041},
        Peer{std::string(129, 'a'), "127.0.0.1", 4041},
        Peer{"node-b", "", 4041},
        Peer{"node-b", "127.0.0.1", 0},
    };
    for (const auto& peer : invalid) {
        auto r = client.connect(peer);
        EXPECT_ERROR_CODE(r, Error::Code::InvalidArgument);
        EXPECT_TRUE(contains(r.error().message(), "invalid peer")) << r.error().message();
        EXPECT_ERROR_CODE(client.disconnect(peer), Error::Code::InvalidArgument);
    }
    auto not_utf8 = client.connect(Peer{"node-b", std::string("bad\xff"), 4041});
    EXPECT_ERROR_CODE(not_utf8, Error::Code::InvalidArgument);
    EXPECT_EQ(not_utf8.error().context(), "host");

    // A valid peer that was never connected cannot be disconnected.
    auto never = client.disconnect(Peer::local("node-b", 4041));
    EXPECT_ERROR_CODE(never, Error::Code::InvalidArgument);
    EXPECT_TRUE(contains(never.error().message(), "not connected")) << never.error().message();

    // Nothing was dialled.
    auto peers = client.peers();
    SA_ASSERT_OK(peers);
    EXPECT_TRUE(peers.value().empty());
}

TEST(TransportTest, TwoClientsSyncOverLoopback) {
    TempDir dir_a;
    TempDir dir_b;
    Node a = start_node(dir_a, "node-a");
    Node b = start_node(dir_b, "node-b");
    trust_each_other(a.client, b.client);
    ASSERT_TRUE(a.client.transport_running() && b.client.transport_running());

    constexpr int kPuts = 20;
    for (int i = 0; i < kPuts; ++i) {
        ASSERT_TRUE(a.client.put("a/" + std::to_string(i), "value " + std::to_string(i)).is_ok());
    }
    ASSERT_TRUE(b.client.put("b/only", "from b").is_ok());

    auto connected = a.client.connect(Peer::local("node-b", b.port));
    SA_ASSERT_OK(connected);
    // Connecting again to the same peer is harmless.
    EXPECT_TRUE(a.client.connect(Peer::local("node-b", b.port)).is_ok());

    const std::string last_key = "a/" + std::to_string(kPuts - 1);
    bool synced = pump(a.client, b.client, [&] {
        auto state = a.client.sync_state();
        return b.client.get(last_key).is_ok() && state.is_ok() &&
               state.value().acknowledged_count >= static_cast<std::size_t>(kPuts);
    });
    auto state = a.client.sync_state();
    ASSERT_TRUE(synced) << "acknowledged " << state.value_or(SyncState{}).acknowledged_count
                        << " of " << kPuts << ", b has " << b.client.size() << " keys";

    for (int i = 0; i < kPuts; ++i) {
        auto v = b.client.get("a/" + std::to_string(i));
        SA_ASSERT_OK(v);
        EXPECT_EQ(v.value().to_string(), "value " + std::to_string(i));
    }
    EXPECT_EQ(a.client.sync_status("a/0").value_or(SyncStatus::SavedLocally), SyncStatus::Synced);
    // The catch-up on connect brings B's data to A as well.
    EXPECT_TRUE(pump(a.client, b.client, [&] { return a.client.contains("b/only"); }));
    EXPECT_EQ(a.client.get("b/only").value().to_string(), "from b");

    Peer seen = peer_named(a.client, "node-b");
    EXPECT_EQ(seen.state, "connected");
    EXPECT_TRUE(seen.is_connected());
    EXPECT_EQ(seen.host, "127.0.0.1");
    EXPECT_EQ(seen.port, b.port);
    EXPECT_GT(seen.last_seen_ms, 0u);
    EXPECT_EQ(peer_named(b.client, "node-a").state, "connected");

    // A disconnects: B's operations no longer reach A, and A stops listing B as connected.
    ASSERT_TRUE(a.client.disconnect(Peer::local("node-b", b.port)).is_ok());
    EXPECT_TRUE(pump(a.client, b.client,
                     [&] { return peer_named(b.client, "node-a").state != "connected"; }));
    EXPECT_NE(peer_named(a.client, "node-b").state, "connected");

    // Both keep their data across a restart (persistent WALs).
    ASSERT_TRUE(b.client.close().is_ok());
    ASSERT_TRUE(b.client.open().is_ok());
    EXPECT_EQ(b.client.get(last_key).value().to_string(), "value " + std::to_string(kPuts - 1));
}

TEST(TransportTest, ConcurrentWritesAreReportedAsConflictsWithEveryField) {
    TempDir dir_a;
    TempDir dir_b;
    Node a = start_node(dir_a, "node-a");
    Node b = start_node(dir_b, "node-b");
    trust_each_other(a.client, b.client);
    ASSERT_TRUE(a.client.transport_running() && b.client.transport_running());
    EXPECT_EQ(a.client.transport_port().value_or(0), a.port);
    EXPECT_ERROR_CODE(a.client.discovery_port(), Error::Code::DiscoveryError);
    // Both write the same key before they know of each other.
    ASSERT_TRUE(a.client.put("shared", "from a").is_ok());
    ASSERT_TRUE(b.client.put("shared", "from b").is_ok());
    ASSERT_TRUE(a.client.connect(Peer::local("node-b", b.port)).is_ok());
    auto agreed = [&] {
        auto va = a.client.get("shared");
        auto vb = b.client.get("shared");
        auto ca = a.client.recent_conflicts();
        return va.is_ok() && vb.is_ok() && va.value().to_string() == vb.value().to_string() &&
               ca.is_ok() && !ca.value().empty();
    };
    ASSERT_TRUE(pump(a.client, b.client, agreed));

    auto conflicts = a.client.recent_conflicts();
    ASSERT_TRUE(conflicts.is_ok());
    const Conflict& c = conflicts.value().back();
    EXPECT_EQ(c.key, "shared");
    EXPECT_EQ(c.local_origin, "node-a");
    EXPECT_EQ(c.remote_origin, "node-b");
    EXPECT_EQ(c.local_seq, 1u);
    EXPECT_EQ(c.remote_seq, 1u);
    EXPECT_GT(c.local_version, 0u);
    EXPECT_GT(c.remote_version, 0u);
    // The value both now hold is the winner's.
    EXPECT_EQ(a.client.get("shared").value().to_string(),
              c.winner_origin() == "node-a" ? "from a" : "from b");
    EXPECT_GE(a.client.sync_state().value().conflict_count, 1u);

    // Parity: the conflict as the C++ SDK carries it equals the library's description.
    auto text = a.client.describe();
    ASSERT_TRUE(text.is_ok());
    std::string expected = "[conflict]\nkey=" + c.key + "\nlocal_origin=" + c.local_origin +
                           "\nlocal_seq=" + std::to_string(c.local_seq) +
                           "\nlocal_version=" + std::to_string(c.local_version) +
                           "\nremote_origin=" + c.remote_origin +
                           "\nremote_seq=" + std::to_string(c.remote_seq) +
                           "\nremote_version=" + std::to_string(c.remote_version) +
                           "\nremote_won=" + (c.remote_won ? "true" : "false") + "\n";
    EXPECT_TRUE(contains(text.value(), expected)) << text.value();
    auto stats = a.client.network_stats();
    ASSERT_TRUE(stats.is_ok());
    EXPECT_EQ(stats.value().connections, 1u);
    EXPECT_EQ(stats.value().refused_operations(), 0u);
}

TEST(TransportTest, BackgroundModeSyncsTwoClientsAndStopsOnClose) {
    TempDir dir_a;
    TempDir dir_b;
    Node a = start_node(dir_a, "node-a");
    Node b = start_node(dir_b, "node-b");
    trust_each_other(a.client, b.client);
    ASSERT_TRUE(a.client.start_background().is_ok());
    ASSERT_TRUE(b.client.start_background().is_ok());
    EXPECT_TRUE(a.client.background_running());
    ASSERT_TRUE(a.client.connect(Peer::local("node-b", b.port)).is_ok());
    ASSERT_TRUE(a.client.put("bg/key", "from a").is_ok());
    // Nothing here drives the transports: the clients' own threads do.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!b.client.contains("bg/key") && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    EXPECT_EQ(b.client.get("bg/key").value_or(Value{}).to_string(), "from a");
    ASSERT_TRUE(a.client.stop_background().is_ok());
    EXPECT_FALSE(a.client.background_running());
    // Closing a client whose loop runs stops it.
    ASSERT_TRUE(b.client.close().is_ok());
    EXPECT_FALSE(b.client.background_running());
    EXPECT_ERROR_CODE(b.client.start_background(), Error::Code::InvalidState);
}

TEST(TransportTest, TheWaitingCallReturnsWhenAPeersFrameArrives) {
    TempDir dir_a;
    TempDir dir_b;
    Node a = start_node(dir_a, "node-a");
    Node b = start_node(dir_b, "node-b");
    trust_each_other(a.client, b.client);
    ASSERT_TRUE(b.client.start_background().is_ok());
    ASSERT_TRUE(a.client.connect(Peer::local("node-b", b.port)).is_ok());
    ASSERT_TRUE(b.client.put("wake", "up").is_ok());
    const auto start = std::chrono::steady_clock::now();
    for (int round = 0; round < 100 && !a.client.contains("wake"); ++round) {
        auto r = a.client.process_transport_events(64, std::chrono::milliseconds(10000));
        SA_ASSERT_OK(r);
        if (std::chrono::steady_clock::now() - start > std::chrono::seconds(9)) break;
    }
    EXPECT_TRUE(a.client.contains("wake"));
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

}  // namespace
