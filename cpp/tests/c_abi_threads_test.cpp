// The C ABI's thread rules: one sa_client_t serves several threads at once, and each
// thread has its own last error.
#include "test_support.hpp"

#include <softadastra.h>

#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace {

const std::uint8_t* bytes(const std::string& s) {
    return reinterpret_cast<const std::uint8_t*>(s.data());
}

class CAbiThreadsTest : public ::testing::Test {
protected:
    void SetUp() override {
        sa_options_t* options = nullptr;
        ASSERT_EQ(sa_options_memory_only("c-threads", &options), SA_OK);
        ASSERT_EQ(sa_client_new(options, &client_), SA_OK);
        sa_options_free(options);
        ASSERT_EQ(sa_client_open(client_), SA_OK);
    }
    void TearDown() override { sa_client_free(client_); }

    sa_client_t* client_ = nullptr;
};

TEST_F(CAbiThreadsTest, LastErrorIsPerThread) {
    std::promise<void> first_failed;
    std::promise<void> second_failed;
    std::string first_context;
    std::thread first([&] {
        const std::string key = "missing-in-first";
        sa_bytes_t* value = nullptr;
        EXPECT_EQ(sa_client_get(client_, bytes(key), key.size(), &value), SA_NOT_FOUND);
        first_failed.set_value();
        second_failed.get_future().wait();  // the other thread fails in between
        first_context = sa_last_error_context();
        EXPECT_EQ(sa_last_error_code(), SA_NOT_FOUND);
    });
    std::thread second([&] {
        first_failed.get_future().wait();
        EXPECT_EQ(sa_client_put(client_, nullptr, 0, nullptr, 0), SA_INVALID_ARGUMENT);
        EXPECT_EQ(sa_last_error_code(), SA_INVALID_ARGUMENT);
        second_failed.set_value();
    });
    first.join();
    second.join();
    EXPECT_EQ(first_context, "missing-in-first");
}

TEST_F(CAbiThreadsTest, OneClientServesSeveralThreads) {
    constexpr int kThreads = 4;
    constexpr int kPerThread = 100;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([this, t] {
            for (int i = 0; i < kPerThread; ++i) {
                const std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
                EXPECT_EQ(sa_client_put(client_, bytes(key), key.size(), bytes(key), key.size()),
                          SA_OK);
                sa_bytes_t* value = nullptr;
                ASSERT_EQ(sa_client_get(client_, bytes(key), key.size(), &value), SA_OK);
                EXPECT_EQ(std::string(reinterpret_cast<const char*>(value->data), value->len), key);
                sa_bytes_free(value);
            }
        });
    }
    for (auto& th : threads) th.join();
    std::size_t size = 0;
    ASSERT_EQ(sa_client_size(client_, &size), SA_OK);
    EXPECT_EQ(size, static_cast<std::size_t>(kThreads * kPerThread));
}

}  // namespace
