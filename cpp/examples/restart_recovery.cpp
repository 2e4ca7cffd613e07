// Restart recovery, the flow of the production guide's "Test restart recovery":
//
//   open client
//   put value
//   close client
//   open client with same WAL path
//   get value
//
// Expected result: the recovered value is readable.
//
// Usage: restart_recovery [DATA_DIR]
// DATA_DIR defaults to ./data and is created when missing (the guide's "mkdir -p data").

#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>

#include <softadastra/sdk.hpp>

int main(int argc, char** argv)
{
    using namespace softadastra::sdk;

    const std::filesystem::path data_dir = argc > 1 ? argv[1] : "data";

    std::error_code created;
    std::filesystem::create_directories(data_dir, created);

    if (created)
    {
        std::cerr << "cannot create data directory "
                  << data_dir.string()
                  << ": "
                  << created.message()
                  << "\n";

        return 1;
    }

    ClientOptions options =
        ClientOptions::persistent(
            "edge-store-kampala-01",
            (data_dir / "edge-store-kampala-01.wal").string());

    options.auto_flush = true;

    // Open client, put value, close client.
    {
        Client client{options};

        auto opened = client.open();

        if (opened.is_err())
        {
            std::cerr << "open failed: "
                      << opened.error().message()
                      << "\n";

            return 1;
        }

        auto written = client.put("app/name", "Softadastra");

        if (written.is_err())
        {
            std::cerr << written.error().message() << "\n";
            // Already failing: the first error is the one reported.
            static_cast<void>(client.close());
            return 1;
        }

        auto closed = client.close();

        if (closed.is_err())
        {
            std::cerr << "close failed: "
                      << closed.error().message()
                      << "\n";

            return 1;
        }

        std::cout << "written: app/name = Softadastra\n";
    }

    // Open client with same WAL path, get value.
    {
        Client client{options};

        auto opened = client.open();

        if (opened.is_err())
        {
            std::cerr << "reopen failed: "
                      << opened.error().message()
                      << "\n";

            return 1;
        }

        auto value = client.get("app/name");

        if (value.is_err())
        {
            std::cerr << "recovery failed: "
                      << value.error().message()
                      << "\n";

            // Already failing: the first error is the one reported.
            static_cast<void>(client.close());
            return 1;
        }

        if (value.value().to_string() != "Softadastra")
        {
            std::cerr << "recovery failed: app/name is \""
                      << value.value().to_string()
                      << "\"\n";

            // Already failing: the first error is the one reported.
            static_cast<void>(client.close());
            return 1;
        }

        std::cout << "recovered value is readable: app/name = "
                  << value.value().to_string()
                  << "\n";

        if (auto closed_again = client.close(); closed_again.is_err())
        {
            std::cerr << closed_again.error().message() << "\n";
            return 1;
        }
    }

    return 0;
}
