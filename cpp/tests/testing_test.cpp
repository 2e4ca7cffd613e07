// <softadastra/testing.hpp> and the options for applications' tests: ephemeral ports, the
// manual clock, disk faults, TempDir, Cluster and SA_ASSERT_OK / SA_EXPECT_OK.
#include <softadastra/testing.hpp>

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>

namespace {

using namespace std::chrono_literals;
using softadastra::sdk::Client;
using softadastra::sdk::ClientOptions;
using softadastra::sdk::Error;
using softadastra::testing::Cluster;
using softadastra::testing::Storage;
using softadastra::testing::TempDir;

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

TEST(TestingTempDir, IsRemovedWithItsContentsAndMovesItsOwnership) {
    std::filesystem::path kept;
    {
        TempDir dir;
        ASSERT_TRUE(std::filesystem::is_directory(dir.path()));
        Client client{ClientOptions::persistent("temp-node", dir.file("node.wal"))};
        SA_ASSERT_OK(client.open());
        SA_ASSERT_OK(client.close());
        TempDir moved{std::move(dir)};
        EXPECT_TRUE(dir.path().empty());
        kept = moved.path();
        EXPECT_TRUE(std::filesystem::exists(moved.file("node.wal")));
    }
    EXPECT_FALSE(std::filesystem::exists(kept));
}

void expect_ok_on_a_bad_key() {
    Client client{ClientOptions::memory_only("assert-node")};
    SA_EXPECT_OK(client.open());
    SA_EXPECT_OK(client.put("", "value"));
}

void expect_ok_on_a_missing_key() {
    Client client{ClientOptions::memory_only("assert-node")};
    SA_EXPECT_OK(client.open());
    SA_EXPECT_OK(client.get("sale/404"));
}

TEST(TestingAssertions, AFailedResultPrintsItsCodeMessageAndContext) {
    EXPECT_NONFATAL_FAILURE(expect_ok_on_a_bad_key(),
                            "client.put(\"\", \"value\") failed: code invalid_argument (2)");
    EXPECT_NONFATAL_FAILURE(expect_ok_on_a_missing_key(), "[context: sale/404]");
    EXPECT_NONFATAL_FAILURE(expect_ok_on_a_missing_key(), "code not_found (4)");
}

TEST(TestingOptions, EphemeralPortsAreAskedForExplicitlyAndReadBack) {
    auto plain = ClientOptions::memory_only("port-node").with_transport("127.0.0.1", 0);
    auto refused = plain.validate();
    ASSERT_TRUE(refused.is_err());
    EXPECT_EQ(refused.error().context(), "transport_port");
    auto options = ClientOptions::memory_only("port-node")
                       .with_ephemeral_transport()
                       .with_ephemeral_discovery();
    EXPECT_TRUE(options.ephemeral_transport_port && options.ephemeral_discovery_port);
    EXPECT_EQ(options.transport_port, 0);
    SA_ASSERT_OK(options.validate());
    Client a{options};
    Client b{ClientOptions::memory_only("port-node-b").with_ephemeral_transport()};
    SA_ASSERT_OK(a.open());
    SA_ASSERT_OK(b.open());
    EXPECT_EQ(a.transport_port().error().code(), Error::Code::TransportError);
    SA_ASSERT_OK(a.start_transport());
    SA_ASSERT_OK(b.start_transport());
    SA_ASSERT_OK(a.start_discovery());
    auto pa = a.transport_port();
    auto pb = b.transport_port();
    SA_ASSERT_OK(pa);
    SA_ASSERT_OK(pb);
    EXPECT_NE(pa.value(), 0);
    EXPECT_NE(pa.value(), pb.value());
    auto discovery = a.discovery_port();
    SA_ASSERT_OK(discovery);
    EXPECT_NE(discovery.value(), 0);
    SA_EXPECT_OK(a.add_discovery_target("127.0.0.1", discovery.value()));
    auto bad = a.add_discovery_target("127.0.0.1", 0);
    ASSERT_TRUE(bad.is_err());
    EXPECT_EQ(bad.error().code(), Error::Code::InvalidArgument);
    EXPECT_EQ(bad.error().context(), "127.0.0.1:0");
}

TEST(TestingOptions, TheManualClockIsAskedForAndOnlyMovesForward) {
    Client plain{ClientOptions::memory_only("clock-node")};
    auto refused = plain.advance_clock(1ms);
    ASSERT_TRUE(refused.is_err());
    EXPECT_EQ(refused.error().code(), Error::Code::InvalidState);
    EXPECT_TRUE(has(refused.error().message(), "manual_clock"));

    auto options = ClientOptions::memory_only("clock-node");
    options.manual_clock = true;
    Client manual{options};
    SA_EXPECT_OK(manual.advance_clock(1ms));  // closed: fine
    auto backwards = manual.advance_clock(-1ms);
    ASSERT_TRUE(backwards.is_err());
    EXPECT_EQ(backwards.error().code(), Error::Code::InvalidArgument);
    SA_ASSERT_OK(manual.open());
    auto info = manual.node_info();
    SA_ASSERT_OK(info);
    EXPECT_EQ(info.value().uptime_ms, 0);
    SA_ASSERT_OK(manual.advance_clock(90s));
    EXPECT_EQ(manual.node_info().value().uptime_ms, 90000);
}

TEST(TestingOptions, ADiskFaultNeedsTheWalAndFailsOnePut) {
    auto memory = ClientOptions::memory_only("fault-node");
    memory.fail_write_at = 1;
    EXPECT_EQ(memory.validate().error().context(), "fail_write_at");

    TempDir dir;
    auto options = ClientOptions::persistent("fault-node", dir.file("node.wal"));
    options.fail_sync_at = 2;
    Client client{options};
    SA_ASSERT_OK(client.open());
    SA_ASSERT_OK(client.put("sale/1", "9.50"));
    auto failed = client.put("sale/2", "4.00");
    ASSERT_TRUE(failed.is_err());
    EXPECT_EQ(failed.error().code(), Error::Code::IoError);
    EXPECT_EQ(client.get("sale/2").error().code(), Error::Code::NotFound);
    EXPECT_EQ(client.get("sale/1").value().to_string(), "9.50");
    EXPECT_EQ(client.close().error().code(), Error::Code::IoError);
    SA_ASSERT_OK(client.open());
    EXPECT_EQ(client.get("sale/1").value().to_string(), "9.50");
    SA_EXPECT_OK(client.put("sale/3", "1.25"));  // the fault fired once
}

TEST(TestingCluster, ConnectsItsNodesAndConverges) {
    Cluster cluster{3};
    ASSERT_TRUE(cluster.ready()) << cluster.setup_error();
    EXPECT_EQ(cluster.size(), 3u);
    EXPECT_EQ(cluster.node(1).options().node_id, "node-b");
    for (std::size_t i = 0; i < cluster.size(); ++i) {
        auto peers = cluster.node(i).peers();
        SA_ASSERT_OK(peers);
        std::size_t connected = 0;
        for (const auto& p : peers.value()) connected += p.is_connected() ? 1 : 0;
        EXPECT_EQ(connected, 2u) << Cluster::node_id(i);
    }
    SA_ASSERT_OK(cluster.node(0).put("k/a", "1"));
    SA_ASSERT_OK(cluster.node(2).put("k/c", "3"));
    ASSERT_TRUE(cluster.converge(5s));
    EXPECT_EQ(cluster.node(1).size(), 2u);
}

TEST(TestingCluster, AConvergenceThatTimesOutSaysWhatDiffers) {
    Cluster cluster{2};
    ASSERT_TRUE(cluster.ready()) << cluster.setup_error();
    SA_ASSERT_OK(cluster.partition({0}, {1}));
    SA_ASSERT_OK(cluster.node(1).put("only/b", "2"));
    auto result = cluster.converge(100ms);
    ASSERT_FALSE(result);
    EXPECT_TRUE(has(result.message(), "only/b: on node-b only")) << result.message();
    EXPECT_TRUE(has(result.message(), "not converged after 100 ms")) << result.message();
    SA_ASSERT_OK(cluster.heal());
    EXPECT_TRUE(cluster.converge(5s));
}

TEST(TestingCluster, PartitionRefusesNodesThatAreNotThere) {
    Cluster cluster{2};
    ASSERT_TRUE(cluster.ready()) << cluster.setup_error();
    auto refused = cluster.partition({0}, {5});
    ASSERT_TRUE(refused.is_err());
    EXPECT_EQ(refused.error().code(), Error::Code::InvalidArgument);
    SA_EXPECT_OK(cluster.heal());  // nothing to heal
}

TEST(TestingCluster, PersistentNodesKeepTheirLogsInTheClustersDirectory) {
    Cluster cluster{2, Storage::Persistent};
    ASSERT_TRUE(cluster.ready()) << cluster.setup_error();
    EXPECT_EQ(cluster.storage(), Storage::Persistent);
    EXPECT_TRUE(std::filesystem::exists(cluster.dir().file("node-a.wal")));
    SA_ASSERT_OK(cluster.node(0).put("k", "v"));
    ASSERT_TRUE(cluster.converge(5s));
    EXPECT_TRUE(cluster.node(1).contains("k"));
}

TEST(TestingCluster, StalePeersFollowTheManualClock) {
    // Discovery on ephemeral ports, pointed at each other; node-a's clock is manual.
    auto options = [](const std::string& id, bool manual) {
        auto o = ClientOptions::memory_only(id).with_ephemeral_transport().with_ephemeral_discovery();
        o.insecure_transport = true;
        o.auto_connect_discovered = false;
        o.discovery_interval_ms = 1000;
        o.discovery_ttl_ms = 4000;
        o.manual_clock = manual;
        return o;
    };
    Client a{options("stale-a", true)};
    Client b{options("stale-b", false)};
    for (Client* c : {&a, &b}) {
        SA_ASSERT_OK(c->open());
        SA_ASSERT_OK(c->start_transport());
        SA_ASSERT_OK(c->start_discovery());
    }
    SA_ASSERT_OK(a.add_discovery_target("127.0.0.1", b.discovery_port().value()));
    SA_ASSERT_OK(b.add_discovery_target("127.0.0.1", a.discovery_port().value()));
    auto state_of_b = [&]() -> std::string {
        auto peers = a.peers();
        if (peers.is_err()) return "error";
        for (const auto& p : peers.value()) {
            if (p.node_id == "stale-b") return p.state;
        }
        return "none";
    };
    for (int turn = 0; turn < 400 && state_of_b() != "available"; ++turn) {
        SA_ASSERT_OK(a.process_transport_events(64, 5ms));
        SA_ASSERT_OK(b.process_transport_events(64, 5ms));
    }
    ASSERT_EQ(state_of_b(), "available");
    SA_ASSERT_OK(b.stop_discovery());
    SA_ASSERT_OK(a.advance_clock(1999ms));
    EXPECT_EQ(state_of_b(), "available");
    SA_ASSERT_OK(a.advance_clock(1ms));
    EXPECT_EQ(state_of_b(), "stale");
    SA_ASSERT_OK(a.advance_clock(2000ms));
    EXPECT_EQ(state_of_b(), "expired");
}

}  // namespace
