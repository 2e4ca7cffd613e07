// Shared helpers for the SDK tests: those the SDK ships to applications
// (<softadastra/testing.hpp>: TempDir, Cluster, SA_ASSERT_OK), matchers for error messages,
// and free loopback ports for network tests.
#ifndef SOFTADASTRA_TEST_SUPPORT_HPP
#define SOFTADASTRA_TEST_SUPPORT_HPP

#include <softadastra/sdk.hpp>
#include <softadastra/testing.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>  // mkdtemp
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>

namespace softadastra::test {

/// A fresh directory under the system temp directory, removed with its contents at the
/// end of the test: the helper the SDK ships to applications (<softadastra/testing.hpp>).
/// Tests never write into the repository.
using TempDir = softadastra::testing::TempDir;

inline bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

/// A port on 127.0.0.1 that was free a moment ago: binds port 0 with a socket of `type`
/// (SOCK_STREAM for the transport, SOCK_DGRAM for discovery), reads the port the system
/// chose and closes the socket. Another process may take it before the test binds it, so
/// callers retry when the bind fails with "in use". 0 when no socket could be bound.
inline std::uint16_t free_port(int type = SOCK_STREAM) {
    int fd = ::socket(AF_INET, type, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    std::uint16_t port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
        port = ntohs(addr.sin_port);
    }
    ::close(fd);
    return port;
}

/// Makes two open clients trust each other's keys (each under its node id), as an operator
/// would with `softadastra peers trust`: peer connections are TLS between trusted keys.
inline void trust_each_other(sdk::Client& a, sdk::Client& b) {
    auto info_a = a.node_info();
    auto info_b = b.node_info();
    ASSERT_TRUE(info_a.is_ok() && info_b.is_ok());
    auto ab = a.trust_peer(info_b.value().node_id, info_b.value().fingerprint);
    ASSERT_TRUE(ab.is_ok()) << ab.error().message();
    auto ba = b.trust_peer(info_a.value().node_id, info_a.value().fingerprint);
    ASSERT_TRUE(ba.is_ok()) << ba.error().message();
}

}  // namespace softadastra::test

/// Asserts that `result` failed with `expected_code`, for use in TEST bodies.
#define EXPECT_ERROR_CODE(result, expected_code)                                      \
    do {                                                                              \
        const auto& r_ = (result);                                                    \
        EXPECT_TRUE(r_.is_err()) << "expected an error";                              \
        EXPECT_EQ(r_.error().code(), (expected_code))                                 \
            << "code " << r_.error().code_string() << ": " << r_.error().message();   \
    } while (0)

#endif  // SOFTADASTRA_TEST_SUPPORT_HPP
