// The API as JavaScript sees it: Results (never exceptions) for failed calls, values as
// Buffers and strings, versions as BigInts, calls in order, a client closed under pending
// calls, and parity with the core's description of options and values.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import sdk, { Client, ClientOptions, Result, SoftadastraError, WriteBatch } from "@softadastra/sdk";
import { PACKAGE_DIR, tempDir } from "./support.mjs";

const native = (await import("../native.js")).default;

test("errors come back as Result errors, never exceptions", async (t) => {
  const dir = tempDir(t);
  const missing = new Client(ClientOptions.persistent("js-errors", join(dir, "missing", "node.wal")));
  const opened = await missing.open();
  assert.ok(opened.isErr());
  assert.equal(opened.error().code, "io_error");
  assert.match(opened.error().message, /missing/);
  assert.ok(opened.error() instanceof SoftadastraError);

  const client = new Client(ClientOptions.persistent("js-errors", join(dir, "node.wal")));
  const early = await client.put("k", "v");
  assert.equal(early.error().code, "invalid_state", "a call before open");
  assert.ok((await client.open()).isOk());
  for (const key of ["", "x".repeat(2000)]) {
    const bad = await client.put(key, "v");
    assert.equal(bad.error().code, "invalid_argument");
    assert.equal(bad.error().codeNumber, 2);
  }
  const wrongType = await client.put(42, "v");
  assert.equal(wrongType.error().code, "invalid_argument");
  assert.equal(wrongType.error().context, "key");
  const notFound = await client.get("nothing");
  assert.equal(notFound.error().code, "not_found");
  assert.equal(notFound.error().context, "nothing");
  assert.throws(() => notFound.value(), /value\(\) called on an error result/);
  assert.ok((await client.close()).isOk());
  const closed = await client.get("k");
  assert.equal(closed.error().code, "invalid_state");
});

test("values are Buffers or strings, versions BigInts", async () => {
  const client = new Client(ClientOptions.memoryOnly("js-values"));
  assert.ok((await client.open()).isOk());
  const v1 = (await client.put("text", "héllo")).value();
  const v2 = (await client.put("bytes", Buffer.from([0, 1, 255]))).value();
  await client.put("u8", new Uint8Array([7, 0, 7]));
  assert.equal(typeof v1, "bigint");
  assert.ok(v2 > v1);
  assert.ok(v1 > BigInt(Number.MAX_SAFE_INTEGER), "hybrid-clock versions exceed 2^53");
  assert.equal((await client.getString("text")).value(), "héllo");
  assert.deepEqual([...(await client.get("bytes")).value()], [0, 1, 255]);
  assert.deepEqual([...(await client.get("u8")).value()], [7, 0, 7]);
  assert.equal((await client.contains("text")).value(), true);
  assert.equal((await client.size()).value(), 3);
  const listed = (await client.list("b")).value();
  assert.deepEqual(listed.map((e) => e.key), ["bytes"]);
  const batch = new WriteBatch().put("a", "1").put("b", "2").remove("text");
  assert.ok((await client.writeBatch(batch)).isOk());
  assert.equal((await client.contains("text")).value(), false);
  const state = (await client.syncState()).value();
  assert.equal(typeof state.lastSubmittedVersion, "bigint");
  assert.equal(typeof state.outboxSize, "number");
  assert.equal(state.hasWork(), true);
  assert.equal((await client.syncStatus("a")).value(), "waiting_to_sync");
  await client.close();
});

test("calls made without awaiting run in the order they were made", async () => {
  const client = new Client(ClientOptions.memoryOnly("js-order"));
  const calls = [client.open()];
  for (let i = 0; i < 500; i++) calls.push(client.put("k", String(i)));
  calls.push(client.getString("k"));
  const results = await Promise.all(calls);
  assert.ok(results.every((r) => r.isOk()));
  assert.equal(results.at(-1).value(), "499");
  // Several batches went to the client's thread; each put's version is above the last.
  const versions = results.slice(1, 501).map((r) => r.value());
  assert.ok(versions.every((v, i) => i === 0 || v > versions[i - 1]), "versions rise in call order");
  await client.close();
});

test("calls made while earlier batches are out still run in order", async () => {
  const client = new Client(ClientOptions.memoryOnly("js-order-2"));
  await client.open();
  const first = [];
  for (let i = 0; i < 300; i++) first.push(client.put("k", `a${i}`));
  // Resumes when the first put is answered, with the rest of them still out.
  await first[0];
  const second = [];
  for (let i = 0; i < 300; i++) second.push(client.put("k", `b${i}`));
  const last = client.getString("k");
  const versions = (await Promise.all([...first, ...second])).map((r) => r.value());
  assert.ok(versions.every((v, i) => i === 0 || v > versions[i - 1]), "versions rise in call order");
  assert.equal((await last).value(), "b299");
  await client.close();
});

/** Runs an ES module script in a child Node.js (bounded); returns its output. */
function runScript(script, flags = []) {
  return execFileSync(process.execPath, [...flags, "--input-type=module", "-e", script], {
    cwd: PACKAGE_DIR,
    encoding: "utf8",
    timeout: 30_000,
  });
}

test("an open client left idle does not keep the process alive; a call not awaited finishes first", (t) => {
  const wal = join(tempDir(t), "node.wal");
  // Neither awaited nor closed: the process waits for the put, then ends by itself.
  const out = runScript(`
    import { Client, ClientOptions } from "@softadastra/sdk";
    const client = new Client(ClientOptions.persistent("js-exit", ${JSON.stringify(wal)}));
    client.open();
    client.put("k", "v").then((r) => console.log("put", r.isOk()));
  `);
  assert.equal(out.trim(), "put true");
  const check = runScript(`
    import { Client, ClientOptions } from "@softadastra/sdk";
    const client = new Client(ClientOptions.persistent("js-exit", ${JSON.stringify(wal)}));
    await client.open();
    console.log((await client.getString("k")).value());
  `);
  assert.equal(check.trim(), "v");
});

test("a client the application drops is collected and closed, after its calls are answered", (t) => {
  const wal = join(tempDir(t), "node.wal");
  // The WAL is locked while a client has it open: a second client opens it only once the
  // first, dropped without close(), has been collected and closed.
  const out = runScript(
    `
    import { Client, ClientOptions } from "@softadastra/sdk";
    const wal = ${JSON.stringify(wal)};
    const options = ClientOptions.persistent("js-gc", wal);
    // Dropped with a call out: still answered.
    const put = new Client(options).put("k", "v");
    console.log("dropped put", (await put).error().code);
    let first = new Client(options);
    console.log("first put", (await first.open()).isOk() && (await first.put("k", "v")).isOk());
    first = null;
    let second;
    for (let i = 0; i < 100; i++) {
      globalThis.gc();
      await new Promise((r) => setTimeout(r, 20));
      second = new Client(options);
      if ((await second.open()).isOk()) break;
      second = null;
    }
    console.log("second", second ? (await second.getString("k")).value() : "never opened");
    await second?.close();
  `,
    ["--expose-gc"],
  );
  assert.deepEqual(out.trim().split("\n"), ["dropped put invalid_state", "first put true", "second v"]);
});

test("a client closed while calls are pending answers them, then refuses later ones", async (t) => {
  const dir = tempDir(t);
  const client = new Client(ClientOptions.persistent("js-close", join(dir, "node.wal")));
  await client.open();
  const before = [];
  for (let i = 0; i < 200; i++) before.push(client.put(`k${i}`, "v"));
  const closing = client.close();
  const after = client.put("late", "v");
  const results = await Promise.all([...before, closing, after]);
  assert.ok(results.slice(0, 201).every((r) => r.isOk()), "calls before close() complete");
  assert.equal(results.at(-1).error().code, "invalid_state");
  // A reopened client holds them.
  await client.open();
  assert.equal((await client.size()).value(), 200);
  await client.close();
});

test("options are checked by open(), naming the field", async () => {
  const options = ClientOptions.memoryOnly("js-options");
  options.transportPort = 70000;
  const r = await new Client(options).open();
  assert.equal(r.error().code, "invalid_argument");
  assert.match(r.error().message, /transportPort/);
  const typo = new ClientOptions({ autoflush: true });
  assert.match((await new Client(typo).open()).error().message, /autoflush/);
  const invalid = ClientOptions.memoryOnly("");
  assert.equal(invalid.isValid(), false);
  assert.equal(invalid.validate().error().context, "node_id");
  assert.match(ClientOptions.fast("n", "x.wal").describe().value(), /^auto_flush=false$/m);
  const t = ClientOptions.memoryOnly("n").withLocalTransport(4100);
  assert.deepEqual([t.enableTransport, t.transportHost, t.transportPort], [true, "127.0.0.1", 4100]);
  assert.equal(ClientOptions.durable("n", "a.wal").autoFlush, true);
  assert.equal(ClientOptions.local("n").enableWal, false);
});

test("every option of the core is a ClientOptions field, in camelCase (parity)", () => {
  const options = new ClientOptions();
  const specs = native.optionSpecs();
  assert.ok(specs.length >= 32);
  for (const spec of specs) {
    const camel = spec.snakeName.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
    assert.equal(spec.name, camel);
    assert.ok(Object.hasOwn(options, camel), `ClientOptions lacks ${camel}`);
  }
  assert.deepEqual(Object.keys(options).sort(), specs.map((s) => s.name).sort());
  for (const name of ["nodeId", "walPath", "autoFlush", "enableTransport", "transportHost", "transportPort", "enableDiscovery", "discoveryHost", "discoveryPort", "displayName", "version"]) {
    assert.ok(Object.hasOwn(options, name), name);
  }
});

test("every call and every returned field is in the API and its declarations (parity)", () => {
  for (const name of native.callNames()) {
    assert.equal(typeof Client.prototype[name], "function", `Client lacks ${name}()`);
  }
  const dts = readFileSync(join(PACKAGE_DIR, "index.d.ts"), "utf8");
  for (const [type, fields] of Object.entries(native.surfaceTypes())) {
    const block = dts.slice(dts.search(new RegExp(`(class|interface) ${type} `)));
    const body = block.slice(0, block.indexOf("\n}"));
    for (const f of fields) assert.match(body, new RegExp(`\\b${f.name}: ${f.type.replace("[]", "\\[\\]")};`), `${type}.${f.name}`);
  }
  for (const spec of native.optionSpecs()) assert.match(dts, new RegExp(`\\b${spec.name}: `), spec.name);
  for (const name of native.callNames()) assert.match(dts, new RegExp(`\\b${name}\\(`), name);
});

test("CommonJS and ES module entry points give the same API", async () => {
  const { createRequire } = await import("node:module");
  const cjs = createRequire(import.meta.url)("@softadastra/sdk");
  assert.equal(cjs.Client, Client);
  assert.equal(sdk.Result, Result);
  assert.equal(cjs.sdkVersion(), native.sdkVersion());
});
