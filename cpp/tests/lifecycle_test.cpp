// Client lifecycle: open and close are idempotent, a closed client reopens with its data,
// a moved client keeps working and the moved-from one reports InvalidState, and a WAL has
// one owner at a time.
#include "test_support.hpp"

#include <utility>

using namespace softadastra::sdk;
using softadastra::test::TempDir;

namespace {

TEST(LifecycleTest, NewClientIsClosed) {
    Client client{ClientOptions::memory_only("n1")};
    EXPECT_FALSE(client.is_open());
    EXPECT_FALSE(client.opened());
    EXPECT_EQ(client.options().node_id, "n1");
}

TEST(LifecycleTest, OpenTwiceSucceedsAndKeepsData) {
    TempDir dir;
    Client client{ClientOptions::persistent("n1", dir.file("a.wal"))};
    ASSERT_TRUE(client.open().is_ok());
    ASSERT_TRUE(client.put("k", "v").is_ok());
    auto again = client.open();
    SA_EXPECT_OK(again);
    EXPECT_TRUE(client.is_open());
    EXPECT_EQ(client.get("k").value().to_string(), "v");
}

TEST(LifecycleTest, CloseTwiceSucceeds) {
    Client client{ClientOptions::memory_only("n1")};
    ASSERT_TRUE(client.open().is_ok());
    EXPECT_TRUE(client.close().is_ok());
    EXPECT_FALSE(client.is_open());
    EXPECT_TRUE(client.close().is_ok());
}

TEST(LifecycleTest, CloseOfANeverOpenedClientSucceeds) {
    Client client{ClientOptions::memory_only("n1")};
    EXPECT_TRUE(client.close().is_ok());
}

TEST(LifecycleTest, ReopenAfterCloseRestoresTheWal) {
    TempDir dir;
    Client client{ClientOptions::persistent("n1", dir.file("a.wal"))};
    ASSERT_TRUE(client.open().is_ok());
    ASSERT_TRUE(client.put("k", "v1").is_ok());
    ASSERT_TRUE(client.close().is_ok());
    ASSERT_TRUE(client.open().is_ok());
    EXPECT_EQ(client.get("k").value().to_string(), "v1");
    EXPECT_EQ(client.size(), 1u);
}

TEST(LifecycleTest, MovedClientKeepsWorking) {
    Client a{ClientOptions::memory_only("n1")};
    ASSERT_TRUE(a.open().is_ok());
    ASSERT_TRUE(a.put("k", "v").is_ok());
    Client b{std::move(a)};
    EXPECT_TRUE(b.is_open());
    EXPECT_EQ(b.get("k").value().to_string(), "v");
    EXPECT_EQ(b.options().node_id, "n1");

    Client c;
    c = std::move(b);
    EXPECT_TRUE(c.is_open());
    EXPECT_EQ(c.size(), 1u);
}

TEST(LifecycleTest, MovedFromClientReportsInvalidState) {
    Client a{ClientOptions::memory_only("n1")};
    ASSERT_TRUE(a.open().is_ok());
    Client b{std::move(a)};
    // NOLINTBEGIN(bugprone-use-after-move): using a moved-from client is what is tested.
    EXPECT_FALSE(a.is_open());
    EXPECT_ERROR_CODE(a.open(), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(a.put("k", "v"), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(a.get("k"), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(a.node_info(), Error::Code::InvalidState);
    EXPECT_FALSE(a.contains("k"));
    EXPECT_EQ(a.size(), 0u);
    EXPECT_TRUE(a.empty());
    EXPECT_EQ(a.options().node_id, "node-1");
    // Closing is idempotent, as documented: a moved-from client is closed already.
    EXPECT_TRUE(a.close().is_ok());
    EXPECT_TRUE(a.close().is_ok());
    // NOLINTEND(bugprone-use-after-move)
}

TEST(LifecycleTest, AClientThatCouldNotBeBuiltClosesQuietlyAndReportsOnOpen) {
    auto options = ClientOptions::memory_only("n1");
    options.display_name = std::string("\xff", 1);
    Client client{options};
    EXPECT_TRUE(client.close().is_ok());
    auto r = client.open();
    EXPECT_ERROR_CODE(r, Error::Code::InvalidArgument);
    EXPECT_EQ(r.error().context(), "display_name");
    EXPECT_TRUE(client.close().is_ok());
}

TEST(LifecycleTest, DestructorFlushesAFastClient) {
    TempDir dir;
    const auto wal = dir.file("fast.wal");
    {
        Client client{ClientOptions::fast("n1", wal)};
        ASSERT_TRUE(client.open().is_ok());
        ASSERT_TRUE(client.put("k", "buffered").is_ok());
    }
    Client reopened{ClientOptions::persistent("n1", wal)};
    ASSERT_TRUE(reopened.open().is_ok());
    EXPECT_EQ(reopened.get("k").value().to_string(), "buffered");
}

TEST(LifecycleTest, SecondClientOnTheSameWalIsRefusedWhileTheFirstIsOpen) {
    TempDir dir;
    const auto wal = dir.file("a.wal");
    Client first{ClientOptions::persistent("n1", wal)};
    ASSERT_TRUE(first.open().is_ok());
    Client second{ClientOptions::persistent("n1", wal)};
    auto r = second.open();
    EXPECT_ERROR_CODE(r, Error::Code::IoError);
    EXPECT_TRUE(softadastra::test::contains(r.error().message(), wal)) << r.error().message();
    EXPECT_EQ(r.error().context(), wal);
    ASSERT_TRUE(first.close().is_ok());
    EXPECT_TRUE(second.open().is_ok());
}

TEST(LifecycleTest, InvalidOptionsFailOpenWithTheField) {
    auto options = ClientOptions::memory_only("n1");
    options.sync_batch_size = 0;
    Client client{options};
    auto r = client.open();
    EXPECT_ERROR_CODE(r, Error::Code::InvalidArgument);
    EXPECT_EQ(r.error().context(), "sync_batch_size");
    EXPECT_FALSE(client.is_open());
}

TEST(LifecycleTest, NodeInfoDescribesTheOpenNode) {
    TempDir dir;
    auto options = ClientOptions::persistent("edge-01", dir.file("a.wal"))
                       .with_metadata("Edge Store 01", "2.3.4");
    Client client{options};
    EXPECT_ERROR_CODE(client.node_info(), Error::Code::InvalidState);
    ASSERT_TRUE(client.open().is_ok());
    auto info = client.refresh_node_info();
    SA_ASSERT_OK(info);
    EXPECT_EQ(info.value().node_id, "edge-01");
    EXPECT_EQ(info.value().display_name, "Edge Store 01");
    EXPECT_EQ(info.value().label(), "Edge Store 01");
    EXPECT_EQ(info.value().version, "2.3.4");
    EXPECT_FALSE(info.value().hostname.empty());
    EXPECT_FALSE(info.value().os_name.empty());
    EXPECT_GT(info.value().started_at_ms, 0);
    EXPECT_GE(info.value().uptime_ms, 0);
    EXPECT_TRUE(info.value().is_valid());
    for (const char* capability : {"core", "wal", "store", "metadata"}) {
        EXPECT_TRUE(info.value().has_capability(capability)) << capability;
    }
    EXPECT_TRUE(client.node_info().is_ok());
}

TEST(LifecycleTest, MemoryOnlyNodeHasNoWalCapability) {
    Client client{ClientOptions::memory_only("m1")};
    ASSERT_TRUE(client.open().is_ok());
    auto info = client.node_info();
    ASSERT_TRUE(info.is_ok());
    EXPECT_FALSE(info.value().has_capability("wal"));
    EXPECT_EQ(info.value().display_name, "m1");
}

}  // namespace
