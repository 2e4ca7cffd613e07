// An application using the installed C++ SDK: the production guide's shape (without the
// sync calls, which arrive with the sync layer), on a WAL path given as argv[1].
#include <iostream>
#include <string>

#include <softadastra/sdk.hpp>

int main(int argc, char** argv) {
    using namespace softadastra::sdk;
    if (argc != 2) {
        std::cerr << "usage: consumer_cpp WAL_PATH\n";
        return 2;
    }

    ClientOptions options = ClientOptions::persistent("consumer-01", argv[1]);
    options.auto_flush = true;
    options.display_name = "Consumer 01";
    options.version = "0.1.0";

    Client client{options};
    auto opened = client.open();
    if (opened.is_err()) {
        std::cerr << "open failed: " << opened.error().message() << "\n";
        return 1;
    }
    auto node = client.refresh_node_info();
    if (node.is_ok()) {
        std::cout << "node: " << node.value().node_id << "\n";
    }
    if (client.put("greeting", "hello").is_err()) return 1;
    auto value = client.get("greeting");
    if (value.is_err()) {
        std::cerr << "get failed: " << value.error().message() << "\n";
        return 1;
    }
    std::cout << "value: " << value.value().to_string() << "\n";
    auto missing = client.get("missing");
    std::cout << "missing: " << missing.error().code_string() << "\n";
    if (auto closed = client.close(); closed.is_err()) {
        std::cerr << "close failed: " << closed.error().message() << "\n";
        return 1;
    }
    return 0;
}
