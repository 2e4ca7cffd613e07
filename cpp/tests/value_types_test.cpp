// Result, Error, Key, Value, NodeInfo, SyncState, TickResult and Peer: the value types of
// the SDK.
#include "test_support.hpp"

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

using namespace softadastra::sdk;

namespace {

TEST(ResultTest, HoldsAValueOrAnError) {
    Result<int> ok = 42;
    EXPECT_TRUE(ok.is_ok());
    EXPECT_FALSE(ok.is_err());
    EXPECT_EQ(ok.value(), 42);
    EXPECT_TRUE(ok.error().ok());
    Result<int> err = Error::not_found("key not found: k", "k");
    EXPECT_TRUE(err.is_err());
    EXPECT_EQ(err.error().code(), Error::Code::NotFound);
    EXPECT_EQ(err.value_or(7), 7);
}

TEST(ResultTest, ValueCanBeMovedOut) {
    Result<std::string> r = std::string(100, 'x');
    std::string s = std::move(r).value();
    EXPECT_EQ(s.size(), 100u);
}

TEST(ResultTest, ErrorWithoutACodeStillFails) {
    Result<void> r = Error{};
    EXPECT_TRUE(r.is_err());
    EXPECT_EQ(r.error().code(), Error::Code::Unknown);
    EXPECT_TRUE(Result<void>{}.is_ok());
    EXPECT_TRUE(Result<void>::ok().is_ok());
}

TEST(ResultTest, ValueOfATemporaryIsTheValueItself) {
    // `for (auto& p : client.peers().value())` binds to what value() returns: a reference
    // into the temporary Result would dangle, a value lives as long as the loop.
    static_assert(std::is_same_v<decltype(std::declval<Result<std::vector<int>>>().value()),
                                 std::vector<int>>);
    static_assert(std::is_same_v<decltype(std::declval<Result<int>&>().value()), int&>);
    int sum = 0;
    for (int n : Result<std::vector<int>>{std::vector<int>{1, 2, 3}}.value()) sum += n;
    EXPECT_EQ(sum, 6);
}

TEST(ResultTest, MapMapErrorAndThen) {
    Result<int> two = 2;
    Result<int> missing = Error::not_found("key not found: k", "k");
    EXPECT_EQ(two.map([](int n) { return n * 10; }).value(), 20);
    EXPECT_EQ(missing.map([](int n) { return n * 10; }).error().code(), Error::Code::NotFound);
    auto text = two.map([](int n) { return std::to_string(n); });
    static_assert(std::is_same_v<decltype(text), Result<std::string>>);
    EXPECT_EQ(text.value(), "2");

    auto renamed = missing.map_error(
        [](const Error& e) { return Error::invalid_state("wrapped: " + e.message()); });
    EXPECT_EQ(renamed.error().code(), Error::Code::InvalidState);
    EXPECT_EQ(renamed.error().message(), "wrapped: key not found: k");
    EXPECT_EQ(two.map_error([](const Error&) { return Error::make(Error::Code::Unknown, "no"); }).value(),
              2);

    auto half = [](int n) -> Result<int> {
        if (n % 2 != 0) return Error::invalid_argument("odd", "n");
        return n / 2;
    };
    EXPECT_EQ(two.and_then(half).value(), 1);
    EXPECT_EQ(Result<int>{3}.and_then(half).error().code(), Error::Code::InvalidArgument);
    EXPECT_EQ(missing.and_then(half).error().code(), Error::Code::NotFound);

    std::string moved = Result<std::string>{std::string("abc")}
                            .map([](std::string s) { return s + "d"; })
                            .value();
    EXPECT_EQ(moved, "abcd");
}

TEST(ResultTest, VoidResultsMapAndChainToo) {
    Result<void> done;
    Result<void> failed = Error::io_error("disk full", "/data");
    EXPECT_EQ(done.map([] { return 5; }).value(), 5);
    EXPECT_EQ(failed.map([] { return 5; }).error().code(), Error::Code::IoError);
    EXPECT_TRUE(done.and_then([]() -> Result<void> { return Result<void>{}; }).is_ok());
    EXPECT_EQ(failed.and_then([]() -> Result<int> { return 1; }).error().code(),
              Error::Code::IoError);
    auto wrapped = failed.map_error([](const Error& e) {
        return Error::internal_error("while saving: " + e.message());
    });
    EXPECT_EQ(wrapped.error().code(), Error::Code::InternalError);
    EXPECT_TRUE(done.map_error([](const Error& e) { return e; }).is_ok());
}

TEST(ResultDeathTest, ValueOfAnErrorIsAProgrammingError) {
    Result<int> err = Error::invalid_state("closed");
    EXPECT_DEATH((void)err.value(), "");
}

TEST(ErrorTest, CarriesCodeMessageAndContext) {
    Error e = Error::io_error("cannot open WAL /x/a.wal: permission denied", "/x/a.wal");
    EXPECT_TRUE(e.has_error());
    EXPECT_FALSE(e.ok());
    EXPECT_TRUE(e.has_context());
    EXPECT_EQ(e.code_string(), "io_error");
    EXPECT_EQ(e, Error::make(Error::Code::IoError, e.message(), e.context()));
    EXPECT_NE(e, Error::none());
}

TEST(KeyTest, ConstructorsAndComparisons) {
    EXPECT_TRUE(Key{static_cast<const char*>(nullptr)}.empty());
    EXPECT_FALSE(Key{}.is_valid());
    Key a{"a"};
    Key b{std::string("b")};
    Key c{std::string_view("a")};
    EXPECT_EQ(a, c);
    EXPECT_NE(a, b);
    EXPECT_LT(a, b);
    EXPECT_EQ(Key::from("k").str(), "k");
    EXPECT_EQ(b.value(), "b");
    EXPECT_TRUE(a.valid());
}

TEST(ValueTest, KeepsZeroBytes) {
    const std::string text("a\0b\0", 4);
    Value v{std::string_view(text)};
    EXPECT_EQ(v.size(), 4u);
    EXPECT_EQ(v.to_string(), text);
    EXPECT_EQ(Value::from_string(text), v);
    std::vector<std::uint8_t> bytes{0, 1, 0, 255};
    EXPECT_EQ(Value::from_bytes(bytes).bytes(), bytes);
    EXPECT_EQ(Value{"abc"}.size(), 3u);
    EXPECT_TRUE(Value{static_cast<const char*>(nullptr)}.empty());
}

TEST(NodeInfoTest, LabelCapabilitiesAndValidity) {
    NodeInfo info;
    EXPECT_FALSE(info.is_valid());
    info.node_id = "n1";
    info.hostname = "h";
    info.os_name = "linux";
    info.version = "0.1.0";
    info.capabilities = {"core", "store"};
    EXPECT_TRUE(info.is_valid());
    EXPECT_EQ(info.label(), "n1");
    info.display_name = "Node One";
    EXPECT_EQ(info.label(), "Node One");
    EXPECT_TRUE(info.has_capability("store"));
    EXPECT_FALSE(info.has_capability("sync"));
}

TEST(SyncStateTest, HelpersFollowTheCounters) {
    SyncResult s;
    EXPECT_TRUE(s.empty());
    EXPECT_FALSE(s.has_work());
    s.queued_count = 2;
    s.acknowledged_count = 3;
    s.failed_count = 1;
    EXPECT_TRUE(s.has_queued());
    EXPECT_FALSE(s.has_in_flight());
    EXPECT_TRUE(s.has_failed());
    EXPECT_TRUE(s.has_work());
    EXPECT_EQ(s.total_tracked(), 6u);
    EXPECT_FALSE(s.empty());
}

TEST(SyncStateTest, PendingWorkAndConflictsCount) {
    SyncState s;
    s.pending_count = 2;
    EXPECT_TRUE(s.has_pending());
    EXPECT_TRUE(s.has_work());  // pending work is not delivered yet
    EXPECT_EQ(s.total_tracked(), 2u);
    EXPECT_FALSE(s.empty());

    SyncState c;
    c.conflict_count = 1;
    EXPECT_TRUE(c.has_conflicts());
    EXPECT_FALSE(c.has_work());  // a conflict is decided, not work
    EXPECT_FALSE(c.empty());
}

TEST(SyncStateTest, AggregateInitialisationFollowsTheDocumentedFieldOrder) {
    SyncState s{7, 1, 2, 3, 1, 40, 30, 5};
    EXPECT_EQ(s.outbox_size, 7u);
    EXPECT_EQ(s.queued_count, 1u);
    EXPECT_EQ(s.in_flight_count, 2u);
    EXPECT_EQ(s.acknowledged_count, 3u);
    EXPECT_EQ(s.failed_count, 1u);
    EXPECT_EQ(s.last_submitted_version, 40u);
    EXPECT_EQ(s.last_applied_remote_version, 30u);
    EXPECT_EQ(s.total_retries, 5u);
    EXPECT_EQ(s.pending_count, 0u);
    EXPECT_EQ(s.conflict_count, 0u);
}

TEST(SyncStateTest, ValidWhenTheCountsAddUp) {
    SyncState state;
    EXPECT_TRUE(state.is_valid());
    state.outbox_size = 3;
    EXPECT_FALSE(state.is_valid()) << "three operations in no state";
    state.queued_count = 1;
    state.acknowledged_count = 2;
    EXPECT_TRUE(state.is_valid());
    EXPECT_TRUE(state.valid());
}

TEST(TickResultTest, EveryTickIsValid) {
    TickResult tick;
    EXPECT_TRUE(tick.is_valid());
    tick.batch_size = 64;
    tick.retried_count = 3;
    EXPECT_TRUE(tick.is_valid() && tick.valid());
}

TEST(TickResultTest, HelpersFollowTheCounters) {
    TickResult t;
    EXPECT_TRUE(t.empty());
    t.batch_size = 3;
    EXPECT_TRUE(t.produced_batch());
    EXPECT_TRUE(t.has_work());
    EXPECT_FALSE(t.retried());
    EXPECT_FALSE(t.pruned());
}

TEST(PeerTest, BuiltFromIdHostAndPort) {
    Peer p{"node-b", "10.0.0.7", 4041};
    EXPECT_EQ(p.node_id, "node-b");
    EXPECT_EQ(p.host, "10.0.0.7");
    EXPECT_EQ(p.port, 4041);
    EXPECT_EQ(p.state, "unknown");
    EXPECT_EQ(p.last_seen_ms, 0u);
    EXPECT_TRUE(p.is_valid());
    EXPECT_FALSE(p.is_localhost());
    EXPECT_FALSE(p.is_connected());
    Peer l = Peer::local("node-c", 4042);
    EXPECT_EQ(l.host, "127.0.0.1");
    EXPECT_EQ(l.port, 4042);
    EXPECT_TRUE(l.is_valid());
    EXPECT_TRUE(l.is_localhost());
}

TEST(PeerTest, LocalhostNames) {
    EXPECT_TRUE((Peer{"n", "127.0.0.1", 1}).is_localhost());
    EXPECT_TRUE((Peer{"n", "::1", 1}).is_localhost());
    EXPECT_TRUE((Peer{"n", "localhost", 1}).is_localhost());
    EXPECT_FALSE((Peer{"n", "127.0.0.2", 1}).is_localhost());
    EXPECT_FALSE((Peer{"n", "", 1}).is_localhost());
}

// is_valid() follows the node id rule of the options (checked by the core).
TEST(PeerTest, ValidityNeedsANodeIdAHostAndAPort) {
    EXPECT_FALSE((Peer{"", "127.0.0.1", 4041}).is_valid());
    EXPECT_FALSE((Peer{"has space", "127.0.0.1", 4041}).is_valid());
    EXPECT_FALSE((Peer{std::string(129, 'a'), "127.0.0.1", 4041}).is_valid());
    EXPECT_TRUE((Peer{std::string(128, 'a'), "127.0.0.1", 4041}).is_valid());
    EXPECT_FALSE((Peer{std::string("bad\xff"), "127.0.0.1", 4041}).is_valid());
    EXPECT_FALSE((Peer{"node-b", "", 4041}).is_valid());
    EXPECT_FALSE((Peer{"node-b", "127.0.0.1", 0}).is_valid());
    EXPECT_FALSE(Peer{}.is_valid());
    EXPECT_TRUE((Peer{"Edge_01.a-b", "::1", 1}).is_valid());
}

}  // namespace
