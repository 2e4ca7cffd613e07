// Shared helpers for the SDK tests: a unique temporary directory removed at the end of
// the test, and matchers for error messages.
#ifndef SOFTADASTRA_TEST_SUPPORT_HPP
#define SOFTADASTRA_TEST_SUPPORT_HPP

#include <softadastra/sdk.hpp>

#include <gtest/gtest.h>

#include <stdlib.h>  // mkdtemp
#include <filesystem>
#include <string>
#include <system_error>

namespace softadastra::test {

/// A fresh directory under the system temp directory (mkdtemp), removed with its contents
/// when the object goes out of scope. Tests never write into the repository.
class TempDir {
public:
    TempDir() {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "softadastra-test-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            ADD_FAILURE() << "mkdtemp failed for " << pattern;
        }
        path_ = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    /// `name` inside the directory, as a string.
    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

inline bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
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
