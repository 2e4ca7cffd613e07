#include <iostream>

#include <softadastra/sdk.hpp>

int main()
{
    using namespace softadastra::sdk;

    ClientOptions options =
        ClientOptions::persistent(
            "edge-store-kampala-01",
            "/var/lib/softadastra/edge-store-kampala-01/node.wal");

    options.auto_flush = true;

    options.enable_transport = true;
    options.transport_host = "0.0.0.0";
    options.transport_port = 4041;

    options.enable_discovery = false;

    options.display_name = "Edge Store Kampala 01";
    options.version = "0.1.0";

    Client client{options};

    auto opened = client.open();

    if (opened.is_err())
    {
        std::cerr << "open failed: "
                  << opened.error().message()
                  << "\n";

        return 1;
    }

    auto node = client.refresh_node_info();

    if (node.is_ok())
    {
        std::cout << "node: "
                  << node.value().node_id
                  << "\n";
    }

    auto state = client.sync_state();

    if (state.is_ok() && state.value().has_failed())
    {
        std::cerr << "warning: sync has failed work\n";
    }

    client.close();

    return 0;
}
