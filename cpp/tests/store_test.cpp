// The local store through the SDK: text and binary values, overwrite, removal, the key
// rules and the errors of a closed client. Several threads may use one client.
#include "test_support.hpp"

#include <string>
#include <thread>
#include <vector>

using namespace softadastra::sdk;
using softadastra::test::contains;
using softadastra::test::TempDir;

namespace {

class StoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        client_ = Client{ClientOptions::persistent("store-test", dir_.file("store.wal"))};
        auto opened = client_.open();
        SA_ASSERT_OK(opened);
    }

    TempDir dir_;
    Client client_{ClientOptions::memory_only("unused")};
};

TEST_F(StoreTest, StringValueRoundTrips) {
    ASSERT_TRUE(client_.put("app/name", "Softadastra").is_ok());
    auto v = client_.get("app/name");
    SA_ASSERT_OK(v);
    EXPECT_EQ(v.value().to_string(), "Softadastra");
}

TEST_F(StoreTest, BinaryValueWithZeroBytesRoundTrips) {
    std::vector<std::uint8_t> bytes{0, 1, 2, 0, 255, 0};
    ASSERT_TRUE(client_.put(Key{"bin"}, Value::from_bytes(bytes)).is_ok());
    auto v = client_.get(Key{"bin"});
    ASSERT_TRUE(v.is_ok());
    EXPECT_EQ(v.value().bytes(), bytes);

    const std::string text("a\0b", 3);
    ASSERT_TRUE(client_.put("text-with-zero", text).is_ok());
    EXPECT_EQ(client_.get("text-with-zero").value().to_string(), text);
}

TEST_F(StoreTest, EmptyValueIsStored) {
    ASSERT_TRUE(client_.put("empty", "").is_ok());
    EXPECT_TRUE(client_.contains("empty"));
    EXPECT_TRUE(client_.get("empty").value().empty());
}

TEST_F(StoreTest, OverwriteKeepsTheLastValue) {
    ASSERT_TRUE(client_.put("k", "v1").is_ok());
    ASSERT_TRUE(client_.put("k", "v2").is_ok());
    EXPECT_EQ(client_.get("k").value().to_string(), "v2");
    EXPECT_EQ(client_.size(), 1u);
}

TEST_F(StoreTest, MissingKeyIsNotFoundWithKeyAsContext) {
    auto r = client_.get("no/such/key");
    EXPECT_ERROR_CODE(r, Error::Code::NotFound);
    EXPECT_EQ(r.error().context(), "no/such/key");
    EXPECT_TRUE(contains(r.error().message(), "no/such/key")) << r.error().message();
    EXPECT_EQ(r.error().code_string(), "not_found");
}

TEST_F(StoreTest, EmptyKeyIsInvalidArgument) {
    EXPECT_ERROR_CODE(client_.put("", "v"), Error::Code::InvalidArgument);
    EXPECT_ERROR_CODE(client_.get(""), Error::Code::InvalidArgument);
    EXPECT_ERROR_CODE(client_.remove(""), Error::Code::InvalidArgument);
    EXPECT_ERROR_CODE(client_.put(Key{}, Value{"v"}), Error::Code::InvalidArgument);
    auto r = client_.put("", "v");
    EXPECT_TRUE(contains(r.error().message(), "must not be empty")) << r.error().message();
    EXPECT_FALSE(client_.contains(""));
    EXPECT_EQ(client_.size(), 0u);
}

TEST_F(StoreTest, RemoveDeletesAndRemovingAMissingKeySucceeds) {
    ASSERT_TRUE(client_.put("k", "v").is_ok());
    EXPECT_TRUE(client_.remove("k").is_ok());
    EXPECT_FALSE(client_.contains("k"));
    EXPECT_ERROR_CODE(client_.get("k"), Error::Code::NotFound);
    EXPECT_TRUE(client_.remove("never-there").is_ok());
    EXPECT_TRUE(client_.remove(Key{"k"}).is_ok());
}

TEST_F(StoreTest, ContainsSizeAndEmptyFollowTheKeys) {
    EXPECT_TRUE(client_.empty());
    ASSERT_TRUE(client_.put("a", "1").is_ok());
    ASSERT_TRUE(client_.put("b", "2").is_ok());
    EXPECT_TRUE(client_.contains("a"));
    EXPECT_TRUE(client_.contains(Key{"b"}));
    EXPECT_FALSE(client_.contains("c"));
    EXPECT_EQ(client_.size(), 2u);
    EXPECT_FALSE(client_.empty());
}

TEST_F(StoreTest, WriteBatchAppliesEveryChangeTogether) {
    ASSERT_TRUE(client_.put("old", "x").is_ok());
    WriteBatch batch;
    batch.put("sale/1", "3 x coffee")
        .put(Key{"sale/2"}, Value::from_bytes({0, 1, 0}))
        .remove("old")
        .put("sale/1", "4 x coffee");
    EXPECT_EQ(batch.size(), 4u);
    auto written = client_.write_batch(batch);
    SA_ASSERT_OK(written);
    EXPECT_EQ(client_.get("sale/1").value().to_string(), "4 x coffee") << "later changes win";
    EXPECT_EQ(client_.get("sale/2").value().bytes(), (std::vector<std::uint8_t>{0, 1, 0}));
    EXPECT_FALSE(client_.contains("old"));
    EXPECT_TRUE(client_.write_batch(WriteBatch{}).is_ok()) << "an empty batch writes nothing";
}

TEST_F(StoreTest, AnInvalidChangeFailsTheWholeBatch) {
    WriteBatch batch;
    batch.put("fine", "1").put("", "empty key").put("also-fine", "2");
    auto written = client_.write_batch(batch);
    ASSERT_TRUE(written.is_err());
    EXPECT_EQ(written.error().code(), Error::Code::InvalidArgument);
    EXPECT_FALSE(client_.contains("fine")) << "nothing of the batch was written";
    EXPECT_FALSE(client_.contains("also-fine"));
    batch.clear();
    EXPECT_TRUE(batch.empty());
}

TEST_F(StoreTest, ListReturnsTheKeysOfAPrefixInOrder) {
    ASSERT_TRUE(client_.put("sale/2", "b").is_ok());
    ASSERT_TRUE(client_.put("sale/1", std::string("a\0z", 3)).is_ok());
    ASSERT_TRUE(client_.put("stock/1", "c").is_ok());
    ASSERT_TRUE(client_.put("sale/3", "gone").is_ok());
    ASSERT_TRUE(client_.remove("sale/3").is_ok());
    auto sales = client_.list("sale/");
    SA_ASSERT_OK(sales);
    ASSERT_EQ(sales.value().size(), 2u);
    EXPECT_EQ(sales.value()[0].key.str(), "sale/1");
    EXPECT_EQ(sales.value()[0].value.to_string(), std::string("a\0z", 3));
    EXPECT_EQ(sales.value()[1].key.str(), "sale/2");
    std::size_t all = 0;
    for (const auto& e : client_.list().value()) {  // a temporary Result: safe
        EXPECT_FALSE(e.key.empty());
        ++all;
    }
    EXPECT_EQ(all, 3u);
    auto bad = client_.list(std::string("\xff"));
    ASSERT_TRUE(bad.is_err());
    EXPECT_EQ(bad.error().code(), Error::Code::InvalidArgument);
}

TEST_F(StoreTest, ClosedClientIsInvalidState) {
    ASSERT_TRUE(client_.put("k", "v").is_ok());
    ASSERT_TRUE(client_.close().is_ok());
    auto put = client_.put("k", "v2");
    EXPECT_ERROR_CODE(put, Error::Code::InvalidState);
    EXPECT_TRUE(contains(put.error().message(), "not open")) << put.error().message();
    EXPECT_ERROR_CODE(client_.get("k"), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client_.remove("k"), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client_.flush(), Error::Code::InvalidState);
    EXPECT_FALSE(client_.contains("k"));
    EXPECT_EQ(client_.size(), 0u);
    EXPECT_TRUE(client_.empty());
}

TEST_F(StoreTest, SeveralThreadsShareOneClient) {
    constexpr int kThreads = 4;
    constexpr int kPerThread = 50;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([this, t] {
            for (int i = 0; i < kPerThread; ++i) {
                auto key = "t" + std::to_string(t) + "/" + std::to_string(i);
                EXPECT_TRUE(client_.put(key, key).is_ok());
                EXPECT_TRUE(client_.contains(key));
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(client_.size(), static_cast<std::size_t>(kThreads * kPerThread));
    EXPECT_EQ(client_.get("t3/49").value().to_string(), "t3/49");
}

}  // namespace

TEST_F(StoreTest, CompactionKeepsEveryValueAcrossAReopen) {
    for (int round = 0; round < 20; ++round) {
        for (int key = 0; key < 50; ++key) {
            ASSERT_TRUE(client_.put("k" + std::to_string(key), "v" + std::to_string(round)).is_ok());
        }
    }
    ASSERT_TRUE(client_.remove("k7").is_ok());
    auto compacted = client_.compact();
    SA_ASSERT_OK(compacted);
    ASSERT_TRUE(client_.close().is_ok());
    ASSERT_TRUE(client_.open().is_ok());
    EXPECT_EQ(client_.size(), 49u);
    EXPECT_EQ(client_.get("k3").value().to_string(), "v19");
    EXPECT_FALSE(client_.contains("k7"));
}

TEST_F(StoreTest, ABackupIsWrittenIntoAnEmptyDirectoryWhileTheNodeRuns) {
    for (int key = 0; key < 50; ++key) {
        ASSERT_TRUE(client_.put("k" + std::to_string(key), "v").is_ok());
    }
    auto backup_dir = dir_.file("backup");
    auto made = client_.backup(backup_dir);
    SA_ASSERT_OK(made);
    EXPECT_TRUE(std::filesystem::exists(backup_dir + "/MANIFEST"));
    EXPECT_TRUE(std::filesystem::exists(backup_dir + "/snapshot"));
    EXPECT_TRUE(std::filesystem::exists(backup_dir + "/identity.key"));
    // The node goes on; a second backup into the same directory is refused.
    EXPECT_TRUE(client_.put("after", "1").is_ok());
    EXPECT_ERROR_CODE(client_.backup(backup_dir), Error::Code::AlreadyExists);
    EXPECT_ERROR_CODE(client_.backup(""), Error::Code::InvalidArgument);
    Client memory{ClientOptions::memory_only("mem-backup")};
    ASSERT_TRUE(memory.open().is_ok());
    EXPECT_ERROR_CODE(memory.backup(dir_.file("mem")), Error::Code::InvalidState);
}

TEST(StoreCompactionTest, AMemoryOnlyNodeHasNothingToCompact) {
    Client client{ClientOptions::memory_only("mem-compact")};
    ASSERT_TRUE(client.open().is_ok());
    EXPECT_ERROR_CODE(client.compact(), Error::Code::InvalidState);
}
