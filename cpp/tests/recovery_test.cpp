// Recovery: a client opened on the WAL of an earlier one sees exactly the acknowledged
// state (values, overwrites, removals); a memory-only client starts empty every time.
#include "test_support.hpp"

#include <string>

using namespace softadastra::sdk;
using softadastra::test::TempDir;

namespace {

TEST(RecoveryTest, ReopenRestoresValuesOverwritesAndRemovals) {
    TempDir dir;
    const auto wal = dir.file("node.wal");
    {
        Client client{ClientOptions::persistent("rec-1", wal)};
        ASSERT_TRUE(client.open().is_ok());
        ASSERT_TRUE(client.put("kept", "v").is_ok());
        ASSERT_TRUE(client.put("overwritten", "old").is_ok());
        ASSERT_TRUE(client.put("overwritten", "new").is_ok());
        ASSERT_TRUE(client.put("removed", "x").is_ok());
        ASSERT_TRUE(client.remove("removed").is_ok());
        ASSERT_TRUE(client.put(Key{"binary"}, Value::from_string(std::string("\0\1\0", 3))).is_ok());
        ASSERT_TRUE(client.close().is_ok());
    }
    Client reopened{ClientOptions::persistent("rec-1", wal)};
    auto opened = reopened.open();
    SA_ASSERT_OK(opened);
    EXPECT_EQ(reopened.size(), 3u);
    EXPECT_EQ(reopened.get("kept").value().to_string(), "v");
    EXPECT_EQ(reopened.get("overwritten").value().to_string(), "new");
    EXPECT_ERROR_CODE(reopened.get("removed"), Error::Code::NotFound);
    EXPECT_EQ(reopened.get("binary").value().to_string(), std::string("\0\1\0", 3));
}

TEST(RecoveryTest, ReopenWithoutCloseRestoresAcknowledgedWrites) {
    TempDir dir;
    const auto wal = dir.file("node.wal");
    {
        Client client{ClientOptions::persistent("rec-2", wal)};
        ASSERT_TRUE(client.open().is_ok());
        for (int i = 0; i < 20; ++i) {
            ASSERT_TRUE(client.put("k" + std::to_string(i), std::to_string(i * i)).is_ok());
        }
        // No close(): the destructor is the only shutdown.
    }
    Client reopened{ClientOptions::persistent("rec-2", wal)};
    ASSERT_TRUE(reopened.open().is_ok());
    EXPECT_EQ(reopened.size(), 20u);
    EXPECT_EQ(reopened.get("k19").value().to_string(), "361");
}

TEST(RecoveryTest, WritesAfterReopenAppendToTheSameWal) {
    TempDir dir;
    const auto wal = dir.file("node.wal");
    for (int round = 0; round < 3; ++round) {
        Client client{ClientOptions::persistent("rec-3", wal)};
        ASSERT_TRUE(client.open().is_ok());
        EXPECT_EQ(client.size(), static_cast<std::size_t>(round));
        ASSERT_TRUE(client.put("round" + std::to_string(round), "done").is_ok());
    }
    Client last{ClientOptions::persistent("rec-3", wal)};
    ASSERT_TRUE(last.open().is_ok());
    EXPECT_EQ(last.size(), 3u);
}

TEST(RecoveryTest, MemoryOnlyRestoresNothing) {
    TempDir dir;
    {
        Client client{ClientOptions::memory_only("mem-1")};
        ASSERT_TRUE(client.open().is_ok());
        ASSERT_TRUE(client.put("k", "v").is_ok());
        ASSERT_TRUE(client.close().is_ok());
        ASSERT_TRUE(client.open().is_ok());
        EXPECT_TRUE(client.empty());
        EXPECT_ERROR_CODE(client.get("k"), Error::Code::NotFound);
    }
    // A memory-only client never touches its (ignored) WAL path.
    auto options = ClientOptions::memory_only("mem-1");
    options.wal_path = dir.file("never-created.wal");
    Client other{options};
    ASSERT_TRUE(other.open().is_ok());
    EXPECT_TRUE(other.empty());
    ASSERT_TRUE(other.put("k", "v").is_ok());
    ASSERT_TRUE(other.close().is_ok());
    EXPECT_FALSE(std::filesystem::exists(options.wal_path));
    EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

}  // namespace
