// Production guide, "Treat open errors as serious": a WAL in a missing directory fails to
// open, with a message naming the path; the program exits 1.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { Client, ClientOptions } from "@softadastra/sdk";

// The data directory: SOFTADASTRA_EXAMPLE_DIR (the tests give a temporary one), else a new
// temporary directory.
const dir = process.env.SOFTADASTRA_EXAMPLE_DIR ?? mkdtempSync(join(tmpdir(), "softadastra-example-"));

const client = new Client(ClientOptions.persistent("edge-store-kampala-01", join(dir, "missing", "node.wal")));

// guide:begin
const opened = await client.open();

if (opened.isErr()) {
  console.error(`open failed: ${opened.error().message}`);
  process.exit(1);
}
// guide:end

console.log("opened");
