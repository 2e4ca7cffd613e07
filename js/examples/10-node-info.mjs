// Production guide, "Use metadata for diagnostics".
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Client, ClientOptions } from "@softadastra/sdk";

// The data directory: SOFTADASTRA_EXAMPLE_DIR (the tests give a temporary one), else a new
// temporary directory.
const dir = process.env.SOFTADASTRA_EXAMPLE_DIR ?? mkdtempSync(join(tmpdir(), "softadastra-example-"));

const options = ClientOptions.persistent("edge-store-kampala-01", join(dir, "node.wal"));
const client = new Client(options);
if ((await client.open()).isErr()) process.exit(1);

// guide:begin
const info = await client.refreshNodeInfo();
// guide:end

const i = info.value();
console.log(`node info: ${i.nodeId} on ${i.hostname} (${i.osName}), version ${i.version}, capabilities ${i.capabilities.join(",")}`);
await client.close();
