// Failure cases. Each gives an explicit error naming the path or key and the cause,
// creates nothing anywhere unexpected, and leaves stored data readable.
#include "test_support.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

using namespace softadastra::sdk;
using softadastra::test::contains;
using softadastra::test::TempDir;
namespace fs = std::filesystem;

namespace {

/// Opens a persistent client on `wal` and returns the open error (expected to fail).
Error open_error(const std::string& wal) {
    Client client{ClientOptions::persistent("err-1", wal)};
    auto r = client.open();
    EXPECT_TRUE(r.is_err()) << "open of " << wal << " unexpectedly succeeded";
    EXPECT_FALSE(client.is_open());
    return r.error();
}

TEST(ErrorsTest, WalInAMissingDirectoryIsIoErrorAndCreatesNothing) {
    TempDir dir;
    const auto missing = dir.file("missing");
    const auto wal = missing + "/node.wal";
    Error e = open_error(wal);
    EXPECT_EQ(e.code(), Error::Code::IoError) << e.message();
    EXPECT_EQ(e.context(), wal);
    EXPECT_TRUE(contains(e.message(), wal)) << e.message();
    EXPECT_TRUE(contains(e.message(), "does not exist")) << e.message();
    EXPECT_FALSE(fs::exists(missing)) << "the missing directory was created";
    EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(ErrorsTest, DirectoryThatIsARegularFileIsIoError) {
    TempDir dir;
    const auto file = dir.file("plain-file");
    std::ofstream(file) << "not a directory";
    const auto wal = file + "/node.wal";
    Error e = open_error(wal);
    EXPECT_EQ(e.code(), Error::Code::IoError) << e.message();
    EXPECT_EQ(e.context(), wal);
    EXPECT_TRUE(contains(e.message(), wal)) << e.message();
    EXPECT_TRUE(contains(e.message(), "is not a directory")) << e.message();
    EXPECT_TRUE(fs::is_regular_file(file));
    EXPECT_EQ(fs::file_size(file), std::string("not a directory").size());
}

TEST(ErrorsTest, WalPathThatIsADirectoryIsIoError) {
    TempDir dir;
    const auto wal = dir.file("a-directory.wal");
    fs::create_directory(wal);
    Error e = open_error(wal);
    EXPECT_EQ(e.code(), Error::Code::IoError) << e.message();
    EXPECT_EQ(e.context(), wal);
    EXPECT_TRUE(contains(e.message(), wal)) << e.message();
    EXPECT_TRUE(contains(e.message(), "is a directory")) << e.message();
    EXPECT_TRUE(fs::is_empty(wal));
}

// Tests run as root, so chmod proves nothing; sysfs refuses new files even to root.
TEST(ErrorsTest, UnwritableLocationIsIoErrorNamingPermission) {
    const std::string wal = "/sys/softadastra-test.wal";
    Error e = open_error(wal);
    EXPECT_EQ(e.code(), Error::Code::IoError) << e.message();
    EXPECT_EQ(e.context(), wal);
    EXPECT_TRUE(contains(e.message(), wal)) << e.message();
    EXPECT_TRUE(contains(e.message(), "permission denied")) << e.message();
    EXPECT_FALSE(fs::exists(wal));
}

std::string value_for(int i) {
    std::string v(100 * 1024, static_cast<char>('a' + i % 26));
    v.replace(0, std::to_string(i).size(), std::to_string(i));
    return v;
}

std::string key_for(int i) { return "big/" + std::to_string(i); }

/// Child side of DiskFull...: writes "acked\ncode\ncontext\nmessage" to `fd`.
[[noreturn]] void fill_disk_in_child(const std::string& wal, int fd) {
    constexpr rlim_t kLimit = 2 * 1024 * 1024 + 4096;
    struct rlimit limit {};
    limit.rlim_cur = kLimit;
    limit.rlim_max = kLimit;
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(20);
    ::signal(SIGXFSZ, SIG_IGN);  // get EFBIG from write() instead of being killed

    Client client{ClientOptions::persistent("full-1", wal)};
    if (client.open().is_err()) ::_exit(21);
    int acked = 0;
    Error error;
    // Bounded: 200 x 100 KiB is 20 MiB, ten times the limit.
    for (int i = 0; i < 200; ++i) {
        auto r = client.put(key_for(i), value_for(i));
        if (r.is_err()) {
            error = r.error();
            break;
        }
        ++acked;
    }
    std::ostringstream report;
    report << acked << "\n"
           << static_cast<std::uint32_t>(error.code()) << "\n"
           << error.context() << "\n"
           << error.message();
    const std::string text = report.str();
    std::size_t written = 0;
    while (written < text.size()) {
        ssize_t n = ::write(fd, text.data() + written, text.size() - written);
        if (n <= 0) ::_exit(22);
        written += static_cast<std::size_t>(n);
    }
    ::close(fd);
    // No destructors, no gtest teardown: the parent checks what reached the disk.
    ::_exit(0);
}

TEST(ErrorsTest, DiskFullIsIoErrorAndAcknowledgedValuesSurvive) {
    TempDir dir;
    const auto wal = dir.file("full.wal");
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::close(fds[0]);
        fill_disk_in_child(wal, fds[1]);
    }
    ::close(fds[1]);
    std::string report;
    char buf[4096];
    for (int reads = 0; reads < 1000; ++reads) {  // the report is far below 4 MB
        ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n <= 0) break;
        report.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "child died, status " << status;
    ASSERT_EQ(WEXITSTATUS(status), 0) << "child failed before filling the disk";

    std::istringstream in(report);
    std::string acked_line, code_line, context, message;
    std::getline(in, acked_line);
    std::getline(in, code_line);
    std::getline(in, context);
    std::getline(in, message, '\0');
    const int acked = std::stoi(acked_line);
    std::cout << "child acknowledged " << acked << " puts, then: " << message << "\n";
    EXPECT_GE(acked, 1) << "no put succeeded before the limit: " << message;
    EXPECT_LT(acked, 200) << "the size limit was never hit";
    EXPECT_EQ(std::stoul(code_line), static_cast<std::uint32_t>(Error::Code::IoError)) << message;
    // The file the write failed on: the WAL's active segment, "<wal>.<first record>".
    EXPECT_EQ(context.rfind(wal + ".", 0), 0u) << context;
    EXPECT_TRUE(contains(message, wal)) << message;
    EXPECT_TRUE(contains(message, "file too large")) << message;

    // The parent has no size limit: every acknowledged value is there, byte for byte.
    Client client{ClientOptions::persistent("full-1", wal)};
    auto opened = client.open();
    SA_ASSERT_OK(opened);
    EXPECT_EQ(client.size(), static_cast<std::size_t>(acked));
    for (int i = 0; i < acked; ++i) {
        auto v = client.get(key_for(i));
        ASSERT_TRUE(v.is_ok()) << key_for(i) << ": " << v.error().message();
        EXPECT_EQ(v.value().to_string(), value_for(i)) << key_for(i);
    }
    EXPECT_ERROR_CODE(client.get(key_for(acked)), Error::Code::NotFound);
    EXPECT_TRUE(client.put("after/full", "ok").is_ok());
}

class InvalidInputTest : public ::testing::Test {
protected:
    void SetUp() override {
        client_ = Client{ClientOptions::persistent("inv-1", dir_.file("inv.wal"))};
        ASSERT_TRUE(client_.open().is_ok());
        ASSERT_TRUE(client_.put("stored", "still here").is_ok());
    }
    void TearDown() override {
        // Whatever was rejected, the stored data stays readable.
        EXPECT_EQ(client_.get("stored").value_or(Value{}).to_string(), "still here");
        EXPECT_EQ(client_.size(), 1u);
    }

    TempDir dir_;
    Client client_{ClientOptions::memory_only("unused")};
};

TEST_F(InvalidInputTest, EmptyKeyIsRejected) {
    auto r = client_.put("", "v");
    EXPECT_ERROR_CODE(r, Error::Code::InvalidArgument);
    EXPECT_TRUE(contains(r.error().message(), "key must not be empty")) << r.error().message();
}

TEST_F(InvalidInputTest, KeyOverTheLimitIsRejectedAndNamed) {
    const std::string key = "long/" + std::string(1100, 'k');
    auto r = client_.put(key, "v");
    EXPECT_ERROR_CODE(r, Error::Code::InvalidArgument);
    EXPECT_TRUE(contains(r.error().message(), "limit 1024")) << r.error().message();
    EXPECT_TRUE(contains(r.error().message(), "long/kkk")) << r.error().message();
    EXPECT_TRUE(contains(key, r.error().context().substr(0, 60))) << r.error().context();
    EXPECT_ERROR_CODE(client_.get(key), Error::Code::InvalidArgument);
    // Exactly 1024 bytes is fine.
    const std::string max_key(1024, 'm');
    EXPECT_TRUE(client_.put(max_key, "v").is_ok());
    EXPECT_TRUE(client_.remove(max_key).is_ok());
}

TEST_F(InvalidInputTest, ValueOverSixteenMebibytesIsRejectedAndNamed) {
    const std::string big(16 * 1024 * 1024 + 1, 'x');
    auto r = client_.put("too-big", big);
    EXPECT_ERROR_CODE(r, Error::Code::InvalidArgument);
    EXPECT_EQ(r.error().context(), "too-big");
    EXPECT_TRUE(contains(r.error().message(), "too-big")) << r.error().message();
    EXPECT_TRUE(contains(r.error().message(), "too large")) << r.error().message();
    EXPECT_FALSE(client_.contains("too-big"));
}

TEST_F(InvalidInputTest, NonUtf8KeyIsRejectedNotACrash) {
    const std::string key("bad\xff\xfekey");
    auto r = client_.put(key, "v");
    EXPECT_ERROR_CODE(r, Error::Code::InvalidArgument);
    EXPECT_TRUE(contains(r.error().message(), "not valid UTF-8")) << r.error().message();
    EXPECT_ERROR_CODE(client_.get(key), Error::Code::InvalidArgument);
    EXPECT_ERROR_CODE(client_.remove(key), Error::Code::InvalidArgument);
    EXPECT_FALSE(client_.contains(key));
}

TEST_F(InvalidInputTest, ClosedClientIsInvalidStateAndReopenKeepsData) {
    ASSERT_TRUE(client_.close().is_ok());
    auto r = client_.put("k", "v");
    EXPECT_ERROR_CODE(r, Error::Code::InvalidState);
    EXPECT_TRUE(contains(r.error().message(), "not open")) << r.error().message();
    EXPECT_ERROR_CODE(client_.get("stored"), Error::Code::InvalidState);
    EXPECT_ERROR_CODE(client_.refresh_node_info(), Error::Code::InvalidState);
    ASSERT_TRUE(client_.open().is_ok());  // TearDown reads the stored value
}

TEST(ErrorsTest, NonUtf8WalPathIsInvalidArgumentNotACrash) {
    TempDir dir;
    const std::string wal = dir.file("bad\xff.wal");
    Client client{ClientOptions::persistent("err-2", wal)};
    auto r = client.open();
    EXPECT_ERROR_CODE(r, Error::Code::InvalidArgument);
    EXPECT_EQ(r.error().context(), "wal_path");
    EXPECT_ERROR_CODE(client.put("k", "v"), Error::Code::InvalidState);
    EXPECT_TRUE(fs::is_empty(dir.path()));
}

}  // namespace
