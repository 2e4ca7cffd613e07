// ClientOptions: the defaults and presets of api.md, the builders, and the validity rules
// (checked by the Rust core through the bridge; the C++ side has no copy of them).
#include "test_support.hpp"

#include <softadastra.h>

using softadastra::sdk::ClientOptions;
using softadastra::sdk::Error;

namespace {

TEST(OptionsTest, DefaultsAreThoseOfTheApi) {
    ClientOptions o;
    EXPECT_EQ(o.node_id, "node-1");
    EXPECT_EQ(o.wal_path, "data/sdk-store.wal");
    EXPECT_TRUE(o.enable_wal);
    EXPECT_TRUE(o.auto_flush);
    EXPECT_EQ(o.sync_batch_size, 64u);
    EXPECT_EQ(o.max_sync_retries, 5u);
    EXPECT_EQ(o.ack_timeout_ms, 10000u);
    EXPECT_EQ(o.retry_interval_ms, 5000u);
    EXPECT_TRUE(o.require_ack);
    EXPECT_TRUE(o.auto_queue);
    EXPECT_FALSE(o.enable_transport);
    EXPECT_EQ(o.transport_host, "0.0.0.0");
    EXPECT_EQ(o.transport_port, 0);
    EXPECT_FALSE(o.enable_discovery);
    EXPECT_EQ(o.discovery_host, "0.0.0.0");
    EXPECT_EQ(o.discovery_port, 0);
    EXPECT_EQ(o.discovery_broadcast_host, "255.255.255.255");
    EXPECT_EQ(o.discovery_broadcast_port, 0);
    EXPECT_EQ(o.display_name, "");
    EXPECT_EQ(o.version, softadastra::sdk::sdk_version()) << "the default version is the library's";
    EXPECT_FALSE(o.version.empty());
    EXPECT_EQ(o.discovery_interval_ms, 3000u);
    EXPECT_EQ(o.discovery_ttl_ms, 15000u);
    EXPECT_TRUE(o.auto_connect_discovered);
    EXPECT_TRUE(o.is_valid());
}

// (The header's defaults against the library's: parity_test.cpp.)

// The presets come from the core through the bridge: every field, the discovery settings
// included, must cross it unchanged.
TEST(OptionsTest, PresetsCarryTheDiscoverySettings) {
    for (const auto& o : {ClientOptions::persistent("n", "p.wal"), ClientOptions::fast("n", "f.wal"),
                          ClientOptions::memory_only("n")}) {
        EXPECT_EQ(o.discovery_interval_ms, 3000u);
        EXPECT_EQ(o.discovery_ttl_ms, 15000u);
        EXPECT_TRUE(o.auto_connect_discovered);
    }
}

TEST(OptionsTest, PersistentPresetSyncsEveryWrite) {
    auto o = ClientOptions::persistent("edge-01", "/var/lib/x/node.wal");
    EXPECT_EQ(o.node_id, "edge-01");
    EXPECT_EQ(o.wal_path, "/var/lib/x/node.wal");
    EXPECT_TRUE(o.enable_wal);
    EXPECT_TRUE(o.auto_flush);
    EXPECT_EQ(o.sync_batch_size, 64u);
    EXPECT_EQ(o.max_sync_retries, 5u);
    EXPECT_TRUE(o.require_ack);
    EXPECT_TRUE(o.auto_queue);
    EXPECT_EQ(ClientOptions::persistent("edge-01").wal_path, "data/sdk-store.wal");
}

TEST(OptionsTest, DurableIsPersistent) {
    auto d = ClientOptions::durable("n", "a.wal");
    auto p = ClientOptions::persistent("n", "a.wal");
    EXPECT_EQ(d.auto_flush, p.auto_flush);
    EXPECT_EQ(d.sync_batch_size, p.sync_batch_size);
    EXPECT_EQ(d.max_sync_retries, p.max_sync_retries);
    EXPECT_EQ(d.require_ack, p.require_ack);
    EXPECT_EQ(d.wal_path, p.wal_path);
}

TEST(OptionsTest, FastPresetBuffersWritesAndNeedsNoAck) {
    auto o = ClientOptions::fast("n", "f.wal");
    EXPECT_TRUE(o.enable_wal);
    EXPECT_FALSE(o.auto_flush);
    EXPECT_EQ(o.sync_batch_size, 128u);
    EXPECT_EQ(o.max_sync_retries, 2u);
    EXPECT_FALSE(o.require_ack);
    EXPECT_TRUE(o.auto_queue);
    EXPECT_EQ(o.wal_path, "f.wal");
}

TEST(OptionsTest, MemoryOnlyAndLocalHaveNoWal) {
    for (const auto& o : {ClientOptions::memory_only("m"), ClientOptions::local("m")}) {
        EXPECT_EQ(o.node_id, "m");
        EXPECT_FALSE(o.enable_wal);
        EXPECT_FALSE(o.require_ack);
        EXPECT_TRUE(o.is_valid());
    }
}

TEST(OptionsTest, BuildersReturnChangedCopies) {
    const auto base = ClientOptions::memory_only("n");
    auto t = base.with_local_transport(4041);
    EXPECT_TRUE(t.enable_transport);
    EXPECT_EQ(t.transport_host, "127.0.0.1");
    EXPECT_EQ(t.transport_port, 4041);
    EXPECT_FALSE(base.enable_transport);
    auto t2 = base.with_transport("10.0.0.1", 9000);
    EXPECT_EQ(t2.transport_host, "10.0.0.1");
    auto d = base.with_local_discovery(4042);
    EXPECT_TRUE(d.enable_discovery);
    EXPECT_EQ(d.discovery_host, "127.0.0.1");
    EXPECT_EQ(d.discovery_port, 4042);
    auto d2 = base.with_discovery("0.0.0.0", 4043);
    EXPECT_EQ(d2.discovery_port, 4043);
    auto m = base.with_metadata("Edge Store");
    EXPECT_EQ(m.display_name, "Edge Store");
    EXPECT_EQ(m.version, softadastra::sdk::sdk_version());
    EXPECT_EQ(base.with_metadata("x", "2.0.0").version, "2.0.0");
    EXPECT_TRUE(t.is_valid() && d.is_valid() && m.is_valid());
}

// Each rule of api.md, and the field the error names.
TEST(OptionsTest, InvalidOptionsNameTheOffendingField) {
    struct Case {
        const char* field;
        ClientOptions options;
    };
    const auto base = ClientOptions::persistent("n", "x.wal");
    auto with = [&](auto change) {
        ClientOptions o = base;
        change(o);
        return o;
    };
    const Case cases[] = {
        {"node_id", with([](ClientOptions& o) { o.node_id = ""; })},
        {"node_id", with([](ClientOptions& o) { o.node_id = "has space"; })},
        {"version", with([](ClientOptions& o) { o.version = ""; })},
        {"wal_path", with([](ClientOptions& o) { o.wal_path = ""; })},
        {"sync_batch_size", with([](ClientOptions& o) { o.sync_batch_size = 0; })},
        {"transport_host", base.with_transport("", 4041)},
        {"transport_port", base.with_transport("127.0.0.1", 0)},
        {"discovery_host", base.with_discovery("", 4042)},
        {"discovery_port", base.with_discovery("127.0.0.1", 0)},
    };
    for (const auto& c : cases) {
        EXPECT_FALSE(c.options.is_valid()) << c.field;
        EXPECT_FALSE(c.options.valid()) << c.field;
        auto r = c.options.validate();
        EXPECT_ERROR_CODE(r, Error::Code::InvalidArgument);
        EXPECT_EQ(r.error().context(), c.field);
        EXPECT_TRUE(softadastra::test::contains(r.error().message(), c.field))
            << r.error().message();
    }
}

TEST(OptionsTest, EmptyWalPathIsValidWithoutWal) {
    auto o = ClientOptions::memory_only("n");
    o.wal_path = "";
    EXPECT_TRUE(o.is_valid());
}

TEST(OptionsTest, NonUtf8StringIsInvalidAndNamed) {
    auto o = ClientOptions::persistent("n", std::string("bad\xff.wal"));
    auto r = o.validate();
    EXPECT_ERROR_CODE(r, Error::Code::InvalidArgument);
    EXPECT_EQ(r.error().context(), "wal_path");
}

TEST(ErrorTest, CodesMatchTheCAbiTable) {
    EXPECT_EQ(static_cast<std::uint32_t>(Error::Code::None), SA_OK);
    EXPECT_EQ(static_cast<std::uint32_t>(Error::Code::Unknown), SA_UNKNOWN);
    EXPECT_EQ(static_cast<std::uint32_t>(Error::Code::InvalidArgument), SA_INVALID_ARGUMENT);
    EXPECT_EQ(static_cast<std::uint32_t>(Error::Code::InvalidState), SA_INVALID_STATE);
    EXPECT_EQ(static_cast<std::uint32_t>(Error::Code::NotFound), SA_NOT_FOUND);
    EXPECT_EQ(static_cast<std::uint32_t>(Error::Code::AlreadyExists), SA_ALREADY_EXISTS);
    EXPECT_EQ(static_cast<std::uint32_t>(Error::Code::IoError), SA_IO_ERROR);
    EXPECT_EQ(static_cast<std::uint32_t>(Error::Code::StoreError), SA_STORE_ERROR);
    EXPECT_EQ(static_cast<std::uint32_t>(Error::Code::SyncError), SA_SYNC_ERROR);
    EXPECT_EQ(static_cast<std::uint32_t>(Error::Code::TransportError), SA_TRANSPORT_ERROR);
    EXPECT_EQ(static_cast<std::uint32_t>(Error::Code::DiscoveryError), SA_DISCOVERY_ERROR);
    EXPECT_EQ(static_cast<std::uint32_t>(Error::Code::MetadataError), SA_METADATA_ERROR);
    EXPECT_EQ(static_cast<std::uint32_t>(Error::Code::InternalError), SA_INTERNAL_ERROR);
}

TEST(ErrorTest, CodeStringsAreSnakeCase) {
    EXPECT_EQ(Error{}.code_string(), "none");
    EXPECT_EQ(Error::to_string(Error::Code::NotFound), "not_found");
    EXPECT_EQ(Error::to_string(Error::Code::IoError), "io_error");
    EXPECT_EQ(Error::to_string(Error::Code::InvalidArgument), "invalid_argument");
    EXPECT_EQ(Error::to_string(Error::Code::InternalError), "internal_error");
    for (std::uint32_t n = 1; n <= SA_INTERNAL_ERROR; ++n) {
        EXPECT_EQ(Error::to_string(static_cast<Error::Code>(n)), sa_status_string(n));
    }
}

TEST(VersionTest, SdkVersionIsTheHeaderVersion) {
    EXPECT_EQ(softadastra::sdk::sdk_version(), SOFTADASTRA_VERSION);
    EXPECT_STREQ(sa_version(), SOFTADASTRA_VERSION);
}

}  // namespace
