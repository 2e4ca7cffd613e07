// Production guide, "Configure transport ports explicitly". Port 4041 as in the guide;
// PORT (the tests give a free one) when set.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Client, ClientOptions } from "@softadastra/sdk";

// The data directory: SOFTADASTRA_EXAMPLE_DIR (the tests give a temporary one), else a new
// temporary directory.
const dir = process.env.SOFTADASTRA_EXAMPLE_DIR ?? mkdtempSync(join(tmpdir(), "softadastra-example-"));

const options = ClientOptions.persistent("edge-store-kampala-01", join(dir, "node.wal"));

// guide:begin
options.enableTransport = true;
options.transportHost = "127.0.0.1";
options.transportPort = 4041;
// guide:end

if (process.env.PORT) options.transportPort = Number(process.env.PORT);
const client = new Client(options);
if ((await client.open()).isErr()) process.exit(1);
const started = await client.startTransport();
if (started.isErr()) {
  console.error(`transport start failed: ${started.error().message}`);
  process.exit(1);
}
console.log(`transport: listening on ${options.transportHost}:${(await client.transportPort()).value()}`);
await client.close();
