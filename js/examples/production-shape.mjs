import {
  Client,
  ClientOptions,
} from "@softadastra/sdk";

const options = ClientOptions.persistent(
  "edge-store-kampala-01",
  "/var/lib/softadastra/edge-store-kampala-01/node.wal",
);

options.autoFlush = true;

options.enableTransport = true;
options.transportHost = "0.0.0.0";
options.transportPort = 4041;

options.enableDiscovery = false;

options.displayName = "Edge Store Kampala 01";
options.version = "0.1.0";

const client = new Client(options);

const opened = await client.open();

if (opened.isErr()) {
  console.error(`open failed: ${opened.error().message}`);
  process.exit(1);
}

const node = await client.refreshNodeInfo();

if (node.isOk()) {
  console.log(`node: ${node.value().nodeId}`);
}

const state = await client.syncStateInfo();

if (state.isOk() && state.value().hasFailed()) {
  console.error("warning: sync has failed work");
}

await client.close();
