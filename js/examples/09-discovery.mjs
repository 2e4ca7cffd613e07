// Production guide, "Configure discovery intentionally". Ports 5051/5052 as in the guide;
// PORT and BROADCAST_PORT (the tests give free ones) when set.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Client, ClientOptions } from "@softadastra/sdk";

// The data directory: SOFTADASTRA_EXAMPLE_DIR (the tests give a temporary one), else a new
// temporary directory.
const dir = process.env.SOFTADASTRA_EXAMPLE_DIR ?? mkdtempSync(join(tmpdir(), "softadastra-example-"));

const options = ClientOptions.persistent("edge-store-kampala-01", join(dir, "node.wal"));

// guide:begin
options.enableDiscovery = true;
options.discoveryHost = "127.0.0.1";
options.discoveryPort = 5051;
options.discoveryBroadcastHost = "127.0.0.1";
options.discoveryBroadcastPort = 5052;
// guide:end

if (process.env.PORT) options.discoveryPort = Number(process.env.PORT);
if (process.env.BROADCAST_PORT) options.discoveryBroadcastPort = Number(process.env.BROADCAST_PORT);
const client = new Client(options);
if ((await client.open()).isErr()) process.exit(1);
const started = await client.startDiscovery();
if (started.isErr()) {
  console.error(`discovery start failed: ${started.error().message}`);
  process.exit(1);
}
console.log(`discovery: running=${client.discoveryRunning()} port=${(await client.discoveryPort()).value()}`);
await client.close();
