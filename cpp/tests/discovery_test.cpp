// Discovery through the SDK: a disabled discovery is a DiscoveryError, a closed client an
// InvalidState; starting twice and stopping (also when disabled or never started) are
// fine; discovery_running() follows start, stop and close; two clients on 127.0.0.1 find
// each other, connect on their own and sync.
//
// Ports: discovery and the transport refuse port 0, so each test picks free ports first
// and retries with others when one was taken meanwhile. Every wait is bounded.
#include "test_support.hpp"

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>

using namespace softadastra::sdk;
using softadastra::test::contains;
using softadastra::test::free_port;
using softadastra::test::trust_each_other;

namespace {

/// Memory-only options with discovery on 127.0.0.1:`discovery_port`, announcing to
/// 127.0.0.1:`announce_to` every 50 ms, and the transport enabled on a free port of
/// 127.0.0.1 (the port discovery announces; the transport is started only when a test
/// does it).
ClientOptions discovery_options(const std::string& id, std::uint16_t discovery_port,
                                std::uint16_t announce_to) {
    ClientOptions o = ClientOptions::memory_only(id)
                          .with_local_transport(free_port(SOCK_STREAM))
                          .with_local_discovery(discovery_port);
    o.discovery_broadcast_host = "127.0.0.1";
    o.discovery_broadcast_port = announce_to;
    o.discovery_interval_ms = 50;
    o.discovery_ttl_ms = 1000;
    return o;
}

/// Starts `what` (start_discovery or start_transport) and reports whether it failed only
/// because a port was in use (the caller then retries with other ports).
template <typename Start>
bool start_or_in_use(const std::string& what, Start start) {
    auto r = start();
    if (r.is_ok()) return false;
    if (contains(r.error().message(), "in use")) return true;
    ADD_FAILURE() << what << " failed: " << r.error().message();
    return false;
}

/// Every discovery call on `client` fails with InvalidState and nothing runs.
void expect_every_discovery_call_is_invalid_state(Client& client) {
    EXPECT_ERROR_CODE(client.start_discovery(), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client.stop_discovery(), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client.peers(), Error::Code::InvalidState);
    EXPECT_FALSE(client.discovery_running());
}

TEST(DiscoveryTest, DisabledDiscoveryIsADiscoveryError) {
    Client client{ClientOptions::memory_only("discovery-disabled")};
    ASSERT_TRUE(client.open().is_ok());
    auto started = client.start_discovery();
    EXPECT_ERROR_CODE(started, Error::Code::DiscoveryError);
    EXPECT_TRUE(contains(started.error().message(), "discovery is disabled"))
        << started.error().message();
    EXPECT_EQ(started.error().code_string(), "discovery_error");
    EXPECT_FALSE(client.discovery_running());
    EXPECT_TRUE(client.stop_discovery().is_ok());
    EXPECT_FALSE(client.discovery_running());
    // Finding no peer never blocks local work.
    EXPECT_TRUE(client.put("k", "v").is_ok());
}

TEST(DiscoveryTest, DisabledDiscoveryWithATransportIsStillADiscoveryError) {
    Client client{ClientOptions::memory_only("discovery-off").with_local_transport(4041)};
    ASSERT_TRUE(client.open().is_ok());
    EXPECT_ERROR_CODE(client.start_discovery(), Error::Code::DiscoveryError);
    EXPECT_TRUE(client.stop_discovery().is_ok());
    EXPECT_FALSE(client.discovery_running());
}

TEST(DiscoveryTest, ClosedClientIsInvalidState) {
    Client never_opened{discovery_options("discovery-closed", 4042, 4042)};
    expect_every_discovery_call_is_invalid_state(never_opened);

    for (int attempt = 0; attempt < 20; ++attempt) {
        const std::uint16_t port = free_port(SOCK_DGRAM);
        Client client{discovery_options("discovery-closed", port, port)};
        ASSERT_TRUE(client.open().is_ok());
        if (start_or_in_use("start_discovery", [&] { return client.start_discovery(); })) {
            continue;
        }
        ASSERT_TRUE(client.discovery_running());
        ASSERT_TRUE(client.close().is_ok());
        EXPECT_FALSE(client.discovery_running());
        expect_every_discovery_call_is_invalid_state(client);

        Client moved_to{std::move(client)};
        expect_every_discovery_call_is_invalid_state(client);  // NOLINT(bugprone-use-after-move)
        return;
    }
    FAIL() << "no free UDP port found";
}

TEST(DiscoveryTest, StartTwiceIsFineAndStopIsSafe) {
    for (int attempt = 0; attempt < 20; ++attempt) {
        const std::uint16_t port = free_port(SOCK_DGRAM);
        Client client{discovery_options("discovery-twice", port, port)};
        ASSERT_TRUE(client.open().is_ok());
        EXPECT_FALSE(client.discovery_running());
        // Stopping before any start is fine.
        EXPECT_TRUE(client.stop_discovery().is_ok());
        if (start_or_in_use("start_discovery", [&] { return client.start_discovery(); })) {
            continue;
        }
        ASSERT_TRUE(client.discovery_running());
        EXPECT_TRUE(client.start_discovery().is_ok());
        EXPECT_TRUE(client.discovery_running());

        // Discovery alone is enough for the event loop and the peer list.
        auto events = client.process_transport_events();
        SA_EXPECT_OK(events);
        auto peers = client.peers();
        SA_ASSERT_OK(peers);
        EXPECT_TRUE(peers.value().empty()) << "its own announcements are not a peer";

        EXPECT_TRUE(client.stop_discovery().is_ok());
        EXPECT_FALSE(client.discovery_running());
        EXPECT_TRUE(client.stop_discovery().is_ok());
        EXPECT_ERROR_CODE(client.process_transport_events(), Error::Code::TransportError);

        auto restarted = client.start_discovery();
        SA_ASSERT_OK(restarted);
        EXPECT_TRUE(client.discovery_running());
        ASSERT_TRUE(client.close().is_ok());
        EXPECT_FALSE(client.discovery_running());
        return;
    }
    FAIL() << "no free UDP port found";
}

TEST(DiscoveryTest, TwoClientsFindEachOtherConnectAndSync) {
    for (int attempt = 0; attempt < 20; ++attempt) {
        const std::uint16_t port_a = free_port(SOCK_DGRAM);
        const std::uint16_t port_b = free_port(SOCK_DGRAM);
        if (port_a == port_b) continue;
        Client a{discovery_options("node-a", port_a, port_b)};
        Client b{discovery_options("node-b", port_b, port_a)};
        ASSERT_TRUE(a.open().is_ok() && b.open().is_ok());
        trust_each_other(a, b);
        bool in_use = false;
        for (Client* c : {&a, &b}) {
            in_use = in_use ||
                     start_or_in_use("start_transport", [&] { return c->start_transport(); }) ||
                     start_or_in_use("start_discovery", [&] { return c->start_discovery(); });
        }
        if (in_use) continue;
        ASSERT_TRUE(a.transport_running() && b.transport_running());
        ASSERT_TRUE(a.discovery_running() && b.discovery_running());

        ASSERT_TRUE(a.put("from/a", "1").is_ok());
        ASSERT_TRUE(b.put("from/b", "2").is_ok());
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        bool converged = false;
        for (int round = 0; round < 5000 && !converged; ++round) {
            std::size_t handled = 0;
            for (Client* c : {&a, &b}) {
                auto r = c->process_transport_events();
                SA_ASSERT_OK(r);
                handled += r.value();
            }
            converged = a.contains("from/b") && b.contains("from/a");
            if (std::chrono::steady_clock::now() > deadline) break;
            if (handled == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        ASSERT_TRUE(converged) << "a has from/b: " << a.contains("from/b")
                               << ", b has from/a: " << b.contains("from/a");

        auto peers = a.peers();
        SA_ASSERT_OK(peers);
        ASSERT_EQ(peers.value().size(), 1u);
        const Peer& found = peers.value().front();
        EXPECT_EQ(found.node_id, "node-b");
        EXPECT_EQ(found.state, "connected");
        EXPECT_TRUE(found.is_localhost());
        EXPECT_EQ(found.port, b.options().transport_port) << "the announced transport port";
        return;
    }
    FAIL() << "no free ports found";
}

}  // namespace
