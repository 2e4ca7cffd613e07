// Production guide, "Separate local success from sync success".
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

await client.put("app/name", "Softadastra");

// guide:begin
const state = await client.syncStateInfo();
// guide:end

const s = state.value();
console.log(`sync state: outbox=${s.outboxSize} queued=${s.queuedCount} failed=${s.failedCount} lastSubmittedVersion=${s.lastSubmittedVersion}`);
await client.close();
