// Production guide, "Use auto flush for safer persistence": a write returns once it is on
// disk, and survives closing and opening again.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Client, ClientOptions } from "@softadastra/sdk";

// The data directory: SOFTADASTRA_EXAMPLE_DIR (the tests give a temporary one), else a new
// temporary directory.
const dir = process.env.SOFTADASTRA_EXAMPLE_DIR ?? mkdtempSync(join(tmpdir(), "softadastra-example-"));

const options = ClientOptions.fast("edge-store-kampala-01", join(dir, "node.wal"));

// guide:begin
options.autoFlush = true;
// guide:end

const client = new Client(options);
if ((await client.open()).isErr()) process.exit(1);
await client.put("app/name", "Softadastra");
await client.close();
await client.open();
console.log(`auto flush: recovered ${(await client.getString("app/name")).value()}`);
await client.close();
