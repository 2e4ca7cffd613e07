// Production guide, "Do not ignore write errors".
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
const written = await client.put("app/name", "Softadastra");

if (written.isErr()) {
  console.error(written.error().message);
  await client.close();
  process.exit(1);
}
// guide:end

console.log(`written: app/name = ${(await client.getString("app/name")).value()}`);
const refused = await client.put("", "no key");
console.log(`empty key refused: ${refused.error().code}`);
await client.close();
