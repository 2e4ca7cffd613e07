// Sync through the SDK, with no peer connected: every local put and removal enters the
// outbox and waits there (queued, or pending with auto_queue off); tick() sends nothing and
// spends no retry while offline; pruning never drops undelivered work; the outbox is
// rebuilt from the WAL on reopen; sync_status() tells where a key's latest change is.
#include "test_support.hpp"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

using namespace softadastra::sdk;
using softadastra::test::contains;
using softadastra::test::TempDir;

namespace {

/// An open memory-only client; ADD_FAILURE when it does not open.
Client open_client(ClientOptions options) {
    Client client{std::move(options)};
    auto opened = client.open();
    SA_EXPECT_OK(opened);
    return client;
}

SyncState state_of(const Client& client) {
    auto state = client.sync_state();
    SA_EXPECT_OK(state);
    return state.value_or(SyncState{});
}

/// Every sync call on `client` fails with InvalidState.
void expect_every_sync_call_is_invalid_state(Client& client) {
    EXPECT_ERROR_CODE(client.tick(), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client.tick(true), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client.sync_state(), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client.retry_expired(), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client.prune_completed(), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client.prune_failed(), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client.queue_pending(), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client.retry_failed(), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client.sync_status("k"), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client.sync_status(Key{"k"}), Error::Code::InvalidState);
}

TEST(SyncTest, ClosedClientIsInvalidState) {
    Client never_opened{ClientOptions::memory_only("sync-closed")};
    expect_every_sync_call_is_invalid_state(never_opened);

    Client closed = open_client(ClientOptions::memory_only("sync-closed"));
    ASSERT_TRUE(closed.put("k", "v").is_ok());
    ASSERT_TRUE(closed.close().is_ok());
    expect_every_sync_call_is_invalid_state(closed);
    EXPECT_TRUE(contains(closed.sync_state().error().message(), "not open"))
        << closed.sync_state().error().message();
}

TEST(SyncTest, MovedFromClientIsInvalidState) {
    Client from = open_client(ClientOptions::memory_only("sync-moved"));
    Client to{std::move(from)};
    expect_every_sync_call_is_invalid_state(from);  // NOLINT(bugprone-use-after-move)
    EXPECT_TRUE(to.sync_state().is_ok());
}

TEST(SyncTest, InitialStateIsAllZero) {
    Client client = open_client(ClientOptions::memory_only("sync-initial"));
    SyncState state = state_of(client);
    EXPECT_TRUE(state.empty());
    EXPECT_FALSE(state.has_work());
    EXPECT_EQ(state.outbox_size, 0u);
    EXPECT_EQ(state.pending_count, 0u);
    EXPECT_EQ(state.queued_count, 0u);
    EXPECT_EQ(state.in_flight_count, 0u);
    EXPECT_EQ(state.acknowledged_count, 0u);
    EXPECT_EQ(state.failed_count, 0u);
    EXPECT_EQ(state.last_submitted_version, 0u);
    EXPECT_EQ(state.last_applied_remote_version, 0u);
    EXPECT_EQ(state.total_retries, 0u);
    EXPECT_EQ(state.conflict_count, 0u);
}

TEST(SyncTest, PutGrowsOutboxQueueAndLastSubmittedVersion) {
    Client client = open_client(ClientOptions::memory_only("sync-put"));
    ASSERT_TRUE(client.put("a", "1").is_ok());
    SyncState first = state_of(client);
    EXPECT_EQ(first.outbox_size, 1u);
    EXPECT_EQ(first.queued_count, 1u);
    EXPECT_GT(first.last_submitted_version, 0u);
    EXPECT_TRUE(first.has_queued());
    EXPECT_TRUE(first.has_work());
    EXPECT_FALSE(first.empty());

    ASSERT_TRUE(client.put(Key{"b"}, Value{"2"}).is_ok());
    SyncState second = state_of(client);
    EXPECT_EQ(second.outbox_size, 2u);
    EXPECT_EQ(second.queued_count, 2u);
    EXPECT_GT(second.last_submitted_version, first.last_submitted_version);
    EXPECT_EQ(second.total_tracked(), second.outbox_size);
    EXPECT_EQ(second.in_flight_count + second.acknowledged_count + second.failed_count, 0u);
    EXPECT_EQ(second.last_applied_remote_version, 0u);  // nothing came from a peer
}

TEST(SyncTest, RemovalIsSyncWorkToo) {
    Client client = open_client(ClientOptions::memory_only("sync-remove"));
    ASSERT_TRUE(client.put("k", "v").is_ok());
    ASSERT_TRUE(client.remove("k").is_ok());
    EXPECT_EQ(state_of(client).outbox_size, 2u);
    auto status = client.sync_status("k");
    SA_ASSERT_OK(status);
    EXPECT_EQ(status.value(), SyncStatus::WaitingToSync);
}

TEST(SyncTest, FreshPutIsWaitingToSync) {
    Client client = open_client(ClientOptions::memory_only("sync-status"));
    ASSERT_TRUE(client.put("doc/1", "draft").is_ok());
    auto status = client.sync_status("doc/1");
    SA_ASSERT_OK(status);
    EXPECT_EQ(status.value(), SyncStatus::WaitingToSync);
    EXPECT_EQ(to_string(status.value()), "waiting_to_sync");
    EXPECT_EQ(label(status.value()), "waiting to sync");
    EXPECT_EQ(client.sync_status(Key{"doc/1"}).value(), SyncStatus::WaitingToSync);
}

TEST(SyncTest, MissingKeyStatusIsNotFoundWithKeyAsContext) {
    Client client = open_client(ClientOptions::memory_only("sync-missing"));
    ASSERT_TRUE(client.put("present", "v").is_ok());
    auto status = client.sync_status("no/such/key");
    EXPECT_ERROR_CODE(status, Error::Code::NotFound);
    EXPECT_EQ(status.error().context(), "no/such/key");
    EXPECT_TRUE(contains(status.error().message(), "no/such/key")) << status.error().message();
}

TEST(SyncTest, InvalidKeyStatusIsInvalidArgument) {
    Client client = open_client(ClientOptions::memory_only("sync-bad-key"));
    EXPECT_ERROR_CODE(client.sync_status(""), Error::Code::InvalidArgument);
    EXPECT_ERROR_CODE(client.sync_status(std::string(1025, 'k')), Error::Code::InvalidArgument);
    EXPECT_ERROR_CODE(client.sync_status(std::string("a\xff", 2)), Error::Code::InvalidArgument);
}

TEST(SyncTest, WithoutAutoQueueAPutIsSavedLocallyUntilQueued) {
    auto options = ClientOptions::memory_only("sync-manual");
    options.auto_queue = false;
    Client client = open_client(options);
    ASSERT_TRUE(client.put("draft", "v").is_ok());

    EXPECT_EQ(client.sync_status("draft").value(), SyncStatus::SavedLocally);
    SyncState pending = state_of(client);
    EXPECT_EQ(pending.outbox_size, 1u);
    EXPECT_EQ(pending.pending_count, 1u);
    EXPECT_EQ(pending.queued_count, 0u);
    EXPECT_TRUE(pending.has_pending());
    EXPECT_TRUE(pending.has_work());
    EXPECT_EQ(pending.total_tracked(), 1u);

    // A tick does not queue pending work by itself.
    auto tick = client.tick();
    SA_ASSERT_OK(tick);
    EXPECT_EQ(state_of(client).pending_count, 1u);

    auto queued = client.queue_pending();
    SA_ASSERT_OK(queued);
    EXPECT_EQ(queued.value(), 1u);
    SyncState after = state_of(client);
    EXPECT_EQ(after.outbox_size, 1u);
    EXPECT_EQ(after.pending_count, 0u);
    EXPECT_EQ(after.queued_count, 1u);
    EXPECT_EQ(client.sync_status("draft").value(), SyncStatus::WaitingToSync);

    EXPECT_EQ(client.queue_pending().value(), 0u);  // nothing left to queue
}

TEST(SyncTest, RetryFailedWithNothingFailedQueuesNothing) {
    Client client = open_client(ClientOptions::memory_only("sync-retry-failed"));
    ASSERT_TRUE(client.put("k", "v").is_ok());
    auto retried = client.retry_failed();
    SA_ASSERT_OK(retried);
    EXPECT_EQ(retried.value(), 0u);
    SyncState state = state_of(client);
    EXPECT_EQ(state.queued_count, 1u);
    EXPECT_EQ(state.failed_count, 0u);
}

TEST(SyncTest, WithAutoQueueThereIsNothingToQueue) {
    Client client = open_client(ClientOptions::memory_only("sync-auto"));
    ASSERT_TRUE(client.put("k", "v").is_ok());
    EXPECT_EQ(client.queue_pending().value(), 0u);
    EXPECT_EQ(state_of(client).pending_count, 0u);
}

TEST(SyncTest, TickOnAnEmptyStateReturnsZeros) {
    Client client = open_client(ClientOptions::memory_only("sync-tick-empty"));
    for (bool prune : {false, true}) {
        auto tick = client.tick(prune);
        SA_ASSERT_OK(tick);
        EXPECT_EQ(tick.value().retried_count, 0u);
        EXPECT_EQ(tick.value().pruned_count, 0u);
        EXPECT_EQ(tick.value().batch_size, 0u);
        EXPECT_TRUE(tick.value().empty());
    }
    EXPECT_TRUE(state_of(client).empty());
}

TEST(SyncTest, TickWithoutAPeerSendsNothingAndKeepsWorkQueued) {
    Client client = open_client(ClientOptions::memory_only("sync-tick-offline"));
    ASSERT_TRUE(client.put("k1", "v").is_ok());
    ASSERT_TRUE(client.put("k2", "v").is_ok());
    for (int i = 0; i < 3; ++i) {
        auto tick = client.tick();
        SA_ASSERT_OK(tick);
        EXPECT_EQ(tick.value().batch_size, 0u);
        EXPECT_FALSE(tick.value().produced_batch());
        EXPECT_EQ(tick.value().retried_count, 0u);
    }
    SyncState state = state_of(client);
    EXPECT_EQ(state.outbox_size, 2u);
    EXPECT_EQ(state.queued_count, 2u);
    EXPECT_EQ(state.in_flight_count, 0u);
    EXPECT_EQ(state.total_retries, 0u);  // being offline spends no retries
    EXPECT_EQ(client.sync_status("k1").value(), SyncStatus::WaitingToSync);
}

TEST(SyncTest, RetryExpiredWithNothingInFlightRetriesNothing) {
    Client client = open_client(ClientOptions::memory_only("sync-retry"));
    ASSERT_TRUE(client.put("k", "v").is_ok());
    auto retried = client.retry_expired();
    SA_ASSERT_OK(retried);
    EXPECT_EQ(retried.value(), 0u);
    EXPECT_EQ(state_of(client).queued_count, 1u);
}

TEST(SyncTest, PruningNeverRemovesQueuedWork) {
    Client client = open_client(ClientOptions::memory_only("sync-prune"));
    ASSERT_TRUE(client.put("k1", "v").is_ok());
    ASSERT_TRUE(client.put("k2", "v").is_ok());

    auto completed = client.prune_completed();
    SA_ASSERT_OK(completed);
    EXPECT_EQ(completed.value(), 0u);
    auto failed = client.prune_failed();
    SA_ASSERT_OK(failed);
    EXPECT_EQ(failed.value(), 0u);
    auto tick = client.tick(true);
    SA_ASSERT_OK(tick);
    EXPECT_EQ(tick.value().pruned_count, 0u);

    SyncState state = state_of(client);
    EXPECT_EQ(state.outbox_size, 2u);
    EXPECT_EQ(state.queued_count, 2u);
}

TEST(SyncTest, PruningNeverRemovesPendingWork) {
    auto options = ClientOptions::memory_only("sync-prune-pending");
    options.auto_queue = false;
    Client client = open_client(options);
    ASSERT_TRUE(client.put("k", "v").is_ok());
    EXPECT_EQ(client.prune_completed().value(), 0u);
    EXPECT_EQ(client.prune_failed().value(), 0u);
    EXPECT_EQ(state_of(client).pending_count, 1u);
    EXPECT_EQ(client.sync_status("k").value(), SyncStatus::SavedLocally);
}

TEST(SyncTest, UnacknowledgedWorkSurvivesAReopen) {
    TempDir dir;
    const auto wal = dir.file("node.wal");
    SyncState before;
    {
        Client client = open_client(ClientOptions::persistent("sync-reopen", wal));
        ASSERT_TRUE(client.put("k1", "v1").is_ok());
        ASSERT_TRUE(client.put("k2", "v2").is_ok());
        ASSERT_TRUE(client.tick().is_ok());
        before = state_of(client);
        ASSERT_EQ(before.outbox_size, 2u);
        ASSERT_TRUE(client.close().is_ok());
    }
    Client reopened = open_client(ClientOptions::persistent("sync-reopen", wal));
    SyncState after = state_of(reopened);
    EXPECT_EQ(after.outbox_size, 2u);
    EXPECT_EQ(after.queued_count, 2u);
    EXPECT_EQ(after.last_submitted_version, before.last_submitted_version);
    EXPECT_EQ(reopened.sync_status("k2").value(), SyncStatus::WaitingToSync);

    // New work continues after the old: versions keep growing.
    ASSERT_TRUE(reopened.put("k3", "v3").is_ok());
    SyncState grown = state_of(reopened);
    EXPECT_EQ(grown.outbox_size, 3u);
    EXPECT_GT(grown.last_submitted_version, before.last_submitted_version);
}

TEST(SyncTest, ConcurrentPutsAndTicksCountEveryOperation) {
    Client client = open_client(ClientOptions::memory_only("sync-threads"));
    constexpr int kWriters = 4;
    constexpr int kPutsPerWriter = 50;
    std::atomic<bool> done{false};
    std::atomic<int> failures{0};

    std::thread ticker([&] {
        while (!done.load()) {
            if (client.tick().is_err() || client.sync_state().is_err()) failures++;
        }
    });
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
        writers.emplace_back([&, w] {
            for (int i = 0; i < kPutsPerWriter; ++i) {
                const auto key = "w" + std::to_string(w) + "/" + std::to_string(i);
                if (client.put(key, "v").is_err()) failures++;
                if (client.sync_status(key).is_err()) failures++;
            }
        });
    }
    for (auto& t : writers) t.join();
    done = true;
    ticker.join();

    EXPECT_EQ(failures.load(), 0);
    SyncState state = state_of(client);
    EXPECT_EQ(state.outbox_size, static_cast<std::size_t>(kWriters * kPutsPerWriter));
    EXPECT_EQ(state.queued_count, state.outbox_size);
}

TEST(SyncStatusTest, NamesAndLabelsAreSnakeCaseAndWords) {
    const struct {
        SyncStatus status;
        const char* name;
        const char* label;
    } cases[] = {
        {SyncStatus::SavedLocally, "saved_locally", "saved locally"},
        {SyncStatus::WaitingToSync, "waiting_to_sync", "waiting to sync"},
        {SyncStatus::Syncing, "syncing", "syncing"},
        {SyncStatus::Synced, "synced", "synced"},
        {SyncStatus::Retrying, "retrying", "retrying"},
        {SyncStatus::SyncFailed, "sync_failed", "sync failed"},
        {SyncStatus::ConflictDetected, "conflict_detected", "conflict detected"},
    };
    std::uint8_t expected_value = 0;
    for (const auto& c : cases) {
        EXPECT_EQ(static_cast<std::uint8_t>(c.status), expected_value++) << c.name;
        EXPECT_EQ(to_string(c.status), c.name);
        EXPECT_EQ(label(c.status), c.label);
    }
    EXPECT_EQ(to_string(static_cast<SyncStatus>(99)), "unknown");
    EXPECT_EQ(label(static_cast<SyncStatus>(99)), "unknown");
}

}  // namespace
