// softadastra/testing.hpp: helpers for an application's own GoogleTest suites.
//
// Header-only, over the public C++ SDK (<softadastra/sdk.hpp>) and GoogleTest. With CMake:
//
//   find_package(softadastra CONFIG REQUIRED COMPONENTS testing)
//   target_link_libraries(app_tests PRIVATE softadastra::testing GTest::gtest_main)
//
// softadastra::testing links the SDK and GoogleTest (found with find_package(GTest)).
//
//   TempDir        a scratch directory, removed with its contents on destruction
//   Cluster        N connected clients on ephemeral loopback ports: node(i), converge(),
//                  partition(), heal(), advance_clock()
//   SA_ASSERT_OK / SA_EXPECT_OK
//                  GoogleTest assertions on a Result that print the error's code, message
//                  and context when it failed
//
// docs/testing.md walks through a complete application test.

#ifndef SOFTADASTRA_TESTING_HPP
#define SOFTADASTRA_TESTING_HPP

#include <softadastra/sdk.hpp>

#include <gtest/gtest.h>

#include <stdlib.h>  // mkdtemp

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace softadastra::testing {

// ---------------------------------------------------------------------------------------
// Assertions

namespace detail {

/// "code not_found (4): <message> [context: <context>]"
inline std::string describe(const sdk::Error& e) {
    std::ostringstream out;
    out << "code " << e.code_string() << " (" << static_cast<std::uint32_t>(e.code())
        << "): " << e.message();
    if (e.has_context()) out << " [context: " << e.context() << "]";
    return out.str();
}

/// A GoogleTest predicate-formatter: success when `result` is ok.
template <typename R>
::testing::AssertionResult is_ok(const char* expression, const R& result) {
    if (result.is_ok()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << expression << " failed: " << describe(result.error());
}

}  // namespace detail

}  // namespace softadastra::testing

/// Fails the test (and returns from it) unless `expr`, a softadastra::sdk::Result, is ok;
/// prints the error's code, message and context.
#define SA_ASSERT_OK(expr) ASSERT_PRED_FORMAT1(::softadastra::testing::detail::is_ok, expr)
/// Like SA_ASSERT_OK, and the test goes on.
#define SA_EXPECT_OK(expr) EXPECT_PRED_FORMAT1(::softadastra::testing::detail::is_ok, expr)

namespace softadastra::testing {

// ---------------------------------------------------------------------------------------
// TempDir

/// A new directory under the system's temporary directory (mkdtemp), removed with its
/// contents when the object is destroyed. Move-only.
class TempDir {
public:
    TempDir() {
        std::error_code ec;
        auto base = std::filesystem::temp_directory_path(ec);
        if (ec) base = "/tmp";
        std::string pattern = (base / "softadastra-test-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            ADD_FAILURE() << "softadastra::testing::TempDir: mkdtemp failed for " << pattern;
            return;
        }
        path_ = pattern;
    }
    ~TempDir() {
        if (path_.empty()) return;
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
    TempDir& operator=(TempDir&& other) noexcept {
        if (this != &other) {
            TempDir gone{std::move(*this)};
            path_ = std::exchange(other.path_, {});
        }
        return *this;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    /// The directory (empty when it could not be made: the test has failed then).
    const std::filesystem::path& path() const noexcept { return path_; }
    /// `name` inside the directory, as a string (a WAL path, say).
    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

// ---------------------------------------------------------------------------------------
// Cluster

/// Where a Cluster's nodes keep their data.
enum class Storage {
    /// No WAL: nothing is written to disk (the default).
    MemoryOnly,
    /// A WAL per node in a TempDir of the cluster's (Cluster::dir()).
    Persistent,
};

/// N clients on 127.0.0.1 with ephemeral transport ports, trusting each other's keys (TLS,
/// as in production) and connected: node i dials every node after it. Nothing runs in the
/// background: converge() pumps every client's events.
///
///   softadastra::testing::Cluster cluster{3};
///   SA_ASSERT_OK(cluster.node(0).put("sale/1", "9.50"));
///   ASSERT_TRUE(cluster.converge(std::chrono::seconds(5)));
///
/// Node i is "node-a", "node-b", ... (past 26 nodes "node-<i>"). `tune` may change each
/// node's options before it is made (a manual clock, disk faults, ACKs); the transport
/// settings it must leave alone. Set-up failures are reported as GoogleTest failures and
/// by ready() (the cluster is then unusable).
class Cluster {
public:
    using Tune = std::function<void(std::size_t index, sdk::ClientOptions& options)>;

    explicit Cluster(std::size_t nodes, Storage storage = Storage::MemoryOnly, Tune tune = {})
        : storage_(storage) {
        if (nodes == 0) {
            fail_setup("a cluster needs at least one node");
            return;
        }
        for (std::size_t i = 0; i < nodes; ++i) {
            std::string id = node_id(i);
            sdk::ClientOptions o = storage == Storage::Persistent
                                       ? sdk::ClientOptions::persistent(id, dir_.file(id + ".wal"))
                                       : sdk::ClientOptions::memory_only(id);
            if (tune) tune(i, o);
            o = o.with_ephemeral_transport("127.0.0.1");
            nodes_.push_back(std::make_unique<sdk::Client>(std::move(o)));
            if (!step(nodes_.back()->open(), "open " + id)) return;
        }
        for (auto& a : nodes_) {
            for (auto& b : nodes_) {
                if (a == b) continue;
                auto info = b->node_info();
                if (!step(info, "node_info")) return;
                if (!step(a->trust_peer(info.value().node_id, info.value().fingerprint),
                          "trust_peer")) {
                    return;
                }
            }
        }
        for (auto& n : nodes_) {
            if (!step(n->start_transport(), "start_transport")) return;
            auto port = n->transport_port();
            if (!step(port, "transport_port")) return;
            ports_.push_back(port.value());
        }
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            for (std::size_t j = i + 1; j < nodes_.size(); ++j) {
                if (!step(link(i, j, true), "connect")) return;
            }
        }
        auto connected = wait_connected(std::chrono::seconds(10));
        if (!connected) fail_setup(connected.message());
    }

    Cluster(const Cluster&) = delete;
    Cluster& operator=(const Cluster&) = delete;

    /// Whether the cluster was set up (every node open, started and connected).
    bool ready() const noexcept { return setup_error_.empty(); }
    /// Why it was not ("" when it was).
    const std::string& setup_error() const noexcept { return setup_error_; }

    std::size_t size() const noexcept { return nodes_.size(); }
    /// Node i's client (i < size()).
    sdk::Client& node(std::size_t i) { return *nodes_.at(i); }
    const sdk::Client& node(std::size_t i) const { return *nodes_.at(i); }
    /// The node id of node i: "node-a", "node-b", ...
    static std::string node_id(std::size_t i) {
        return i < 26 ? std::string("node-") + static_cast<char>('a' + i)
                      : "node-" + std::to_string(i);
    }
    /// Where the nodes keep their data.
    Storage storage() const noexcept { return storage_; }
    /// The directory of the nodes' WALs with Storage::Persistent ("node-a.wal", ...);
    /// unused (and empty) with Storage::MemoryOnly. Removed with the cluster.
    const TempDir& dir() const noexcept { return dir_; }

    /// One turn for every node: pending network work (waiting up to `wait` on the last
    /// node when none has any), then a sync tick. Errors fail the test.
    void pump(std::chrono::milliseconds wait = std::chrono::milliseconds(0)) {
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            auto turn = i + 1 == nodes_.size() ? nodes_[i]->process_transport_events(64, wait)
                                               : nodes_[i]->process_transport_events(64);
            SA_EXPECT_OK(turn) << " (" << node_id(i) << ")";
            SA_EXPECT_OK(nodes_[i]->tick()) << " (" << node_id(i) << ")";
        }
    }

    /// Pumps every node until all stores hold the same keys and values and no node has
    /// work on its way (pending, queued or in flight; failed operations reach peers by
    /// catch-up and do not count), or `timeout` passes. Success, or a failure describing
    /// what differs: use it as ASSERT_TRUE(cluster.converge(5s)).
    ::testing::AssertionResult converge(std::chrono::milliseconds timeout) {
        if (!ready()) return ::testing::AssertionFailure() << "cluster not set up: " << setup_error_;
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            pump();
            std::string difference = differences();
            if (difference.empty()) return ::testing::AssertionSuccess();
            if (std::chrono::steady_clock::now() >= deadline) {
                return ::testing::AssertionFailure()
                       << "not converged after " << timeout.count() << " ms:\n"
                       << difference;
            }
            pump(std::chrono::milliseconds(2));
        }
    }

    /// Cuts every connection between a node of `side_a` and a node of `side_b` (by node
    /// index): neither side redials the other until heal(). Nodes within a side stay
    /// connected, as do nodes named in neither. Waits (up to 5 s) until both ends have
    /// seen the connections close.
    sdk::Result<void> partition(const std::vector<std::size_t>& side_a,
                                const std::vector<std::size_t>& side_b) {
        for (auto a : side_a) {
            for (auto b : side_b) {
                if (a >= size() || b >= size() || a == b) {
                    return sdk::Error::invalid_argument(
                        "partition: node indexes must be below " + std::to_string(size()) +
                        " and on one side only");
                }
                auto cut = std::make_pair(std::min(a, b), std::max(a, b));
                if (cut_.count(cut) != 0) continue;
                auto done = link(cut.first, cut.second, false);
                if (done.is_err()) return done;
                cut_.insert(cut);
            }
        }
        return wait_for("the partition", std::chrono::seconds(5), [&] {
            for (const auto& cut : cut_) {
                if (connected(cut.first, cut.second) || connected(cut.second, cut.first)) {
                    return false;
                }
            }
            return true;
        });
    }

    /// Connects again every pair partition() cut, and waits (up to 10 s) until they are.
    /// What was written meanwhile reaches the other side by catch-up: converge() next.
    sdk::Result<void> heal() {
        for (const auto& cut : cut_) {
            auto done = link(cut.first, cut.second, true);
            if (done.is_err()) return done;
        }
        cut_.clear();
        auto connected_again = wait_connected(std::chrono::seconds(10));
        if (!connected_again) return sdk::Error::invalid_state(connected_again.message());
        return {};
    }

    /// Moves the clock of every node forward (they must have been made with
    /// ClientOptions::manual_clock, through `tune`).
    sdk::Result<void> advance_clock(std::chrono::milliseconds by) {
        for (auto& n : nodes_) {
            auto moved = n->advance_clock(by);
            if (moved.is_err()) return moved;
        }
        return {};
    }

private:
    bool step(const sdk::Result<void>& r, const std::string& what) {
        if (r.is_ok()) return true;
        fail_setup(what + ": " + detail::describe(r.error()));
        return false;
    }
    template <typename T>
    bool step(const sdk::Result<T>& r, const std::string& what) {
        if (r.is_ok()) return true;
        fail_setup(what + ": " + detail::describe(r.error()));
        return false;
    }
    void fail_setup(const std::string& why) {
        if (setup_error_.empty()) setup_error_ = why;
        ADD_FAILURE() << "softadastra::testing::Cluster: " << why;
    }

    /// Node `dialler` (the lower index) connects to, or disconnects from, node `other`.
    sdk::Result<void> link(std::size_t dialler, std::size_t other, bool up) {
        sdk::Peer peer = sdk::Peer::local(node_id(other), ports_.at(other));
        return up ? nodes_.at(dialler)->connect(peer) : nodes_.at(dialler)->disconnect(peer);
    }

    /// Whether node `from` lists node `to` as connected.
    bool connected(std::size_t from, std::size_t to) {
        auto peers = nodes_.at(from)->peers();
        if (peers.is_err()) return false;
        for (const auto& p : peers.value()) {
            if (p.node_id == node_id(to)) return p.is_connected();
        }
        return false;
    }

    /// Success once every pair not cut is connected both ways.
    ::testing::AssertionResult wait_connected(std::chrono::milliseconds timeout) {
        auto all = [&] {
            for (std::size_t i = 0; i < size(); ++i) {
                for (std::size_t j = i + 1; j < size(); ++j) {
                    if (cut_.count({i, j}) != 0) continue;
                    if (!connected(i, j) || !connected(j, i)) return false;
                }
            }
            return true;
        };
        auto done = wait_for("the connections", timeout, all);
        if (done.is_ok()) return ::testing::AssertionSuccess();
        return ::testing::AssertionFailure() << done.error().message();
    }

    template <typename Done>
    sdk::Result<void> wait_for(const std::string& what, std::chrono::milliseconds timeout,
                               Done&& done) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!done()) {
            if (std::chrono::steady_clock::now() >= deadline) {
                return sdk::Error::invalid_state(what + " did not happen within " +
                                                 std::to_string(timeout.count()) + " ms");
            }
            pump(std::chrono::milliseconds(2));
        }
        return {};
    }

    /// What keeps the cluster from having converged, one line each ("" when nothing).
    std::string differences() {
        std::ostringstream out;
        auto reference = nodes_[0]->list();
        if (reference.is_err()) return "node-a: list failed: " + detail::describe(reference.error());
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            auto state = nodes_[i]->sync_state();
            if (state.is_err()) {
                out << node_id(i) << ": sync_state failed: " << detail::describe(state.error())
                    << "\n";
                continue;
            }
            const auto& s = state.value();
            if (s.pending_count + s.queued_count + s.in_flight_count > 0) {
                out << node_id(i) << ": work on its way: " << s.pending_count << " pending, "
                    << s.queued_count << " queued, " << s.in_flight_count << " in flight ("
                    << s.failed_count << " failed)\n";
            }
            if (i == 0) continue;
            auto entries = nodes_[i]->list();
            if (entries.is_err()) {
                out << node_id(i) << ": list failed: " << detail::describe(entries.error()) << "\n";
                continue;
            }
            compare(reference.value(), entries.value(), node_id(i), out);
        }
        return out.str();
    }

    /// Writes the keys on which node-a and `other` differ, at most 10 of them.
    static void compare(const std::vector<sdk::Entry>& a, const std::vector<sdk::Entry>& b,
                        const std::string& other, std::ostringstream& out) {
        std::size_t i = 0, j = 0, shown = 0, differing = 0;
        auto show = [&](const std::string& line) {
            if (++differing <= 10) {
                out << line << "\n";
                ++shown;
            }
        };
        while (i < a.size() || j < b.size()) {
            if (j == b.size() || (i < a.size() && a[i].key < b[j].key)) {
                show(a[i].key.str() + ": on node-a only");
                ++i;
            } else if (i == a.size() || b[j].key < a[i].key) {
                show(b[j].key.str() + ": on " + other + " only");
                ++j;
            } else {
                if (a[i].value != b[j].value) {
                    show(a[i].key.str() + ": \"" + a[i].value.to_string() + "\" on node-a, \"" +
                         b[j].value.to_string() + "\" on " + other);
                }
                ++i;
                ++j;
            }
        }
        if (differing > shown) {
            out << "... and " << (differing - shown) << " more keys differ between node-a and "
                << other << "\n";
        }
    }

    Storage storage_;
    TempDir dir_;
    std::vector<std::unique_ptr<sdk::Client>> nodes_;
    std::vector<std::uint16_t> ports_;
    std::set<std::pair<std::size_t, std::size_t>> cut_;
    std::string setup_error_;
};

}  // namespace softadastra::testing

#endif  // SOFTADASTRA_TESTING_HPP
