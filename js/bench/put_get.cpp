// The C++ side of bench.mjs: N puts of 100-byte values then N gets, through the C ABI
// (include/softadastra.h), in the same process shape as the JavaScript side. Prints one
// line: "<put ops/s> <get ops/s>".
//   put_get fast|durable WAL_PATH N
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "softadastra.h"

static double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: put_get fast|durable WAL_PATH N\n");
        return 2;
    }
    const bool fast = std::strcmp(argv[1], "fast") == 0;
    const long n = std::atol(argv[3]);
    sa_options_t* options = nullptr;
    sa_status_t s = fast ? sa_options_fast("bench-cpp", argv[2], &options)
                         : sa_options_persistent("bench-cpp", argv[2], &options);
    sa_client_t* client = nullptr;
    if (s == SA_OK) s = sa_client_new(options, &client);
    sa_options_free(options);
    if (s == SA_OK) s = sa_client_open(client);
    if (s != SA_OK) {
        std::fprintf(stderr, "open failed: %s\n", sa_last_error_message());
        return 1;
    }
    std::string value(100, 'v');
    auto start = std::chrono::steady_clock::now();
    for (long i = 0; i < n; i++) {
        std::string key = "key/" + std::to_string(i);
        if (sa_client_put(client, reinterpret_cast<const uint8_t*>(key.data()), key.size(),
                          reinterpret_cast<const uint8_t*>(value.data()), value.size()) != SA_OK) {
            std::fprintf(stderr, "put failed: %s\n", sa_last_error_message());
            return 1;
        }
    }
    double put_s = seconds_since(start);
    start = std::chrono::steady_clock::now();
    for (long i = 0; i < n; i++) {
        std::string key = "key/" + std::to_string(i);
        sa_bytes_t* out = nullptr;
        if (sa_client_get(client, reinterpret_cast<const uint8_t*>(key.data()), key.size(), &out) != SA_OK) {
            std::fprintf(stderr, "get failed: %s\n", sa_last_error_message());
            return 1;
        }
        sa_bytes_free(out);
    }
    double get_s = seconds_since(start);
    sa_client_close(client);
    sa_client_free(client);
    std::printf("%.0f %.0f\n", n / put_s, n / get_s);
    return 0;
}
