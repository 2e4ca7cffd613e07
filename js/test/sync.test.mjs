// Syncing from JavaScript without a polling loop: the background loop (startBackground)
// carries operations, and "change" events / changes() report remote changes applied
// locally. Every node listens on 127.0.0.1 on a free port; every wait is bounded.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";

import { Client, ClientOptions, Peer } from "@softadastra/sdk";
import { cliBinary, cliJson, freePort, startCliNode, tempDir, waitFor } from "./support.mjs";

async function jsNode(t, dir, nodeId) {
  const options = ClientOptions.persistent(nodeId, join(dir, `${nodeId}.wal`));
  options.enableTransport = true;
  options.transportHost = "127.0.0.1";
  options.transportPort = await freePort();
  options.ackTimeoutMs = 1000;
  options.retryIntervalMs = 100;
  const client = new Client(options);
  assert.ok((await client.open()).isOk());
  t.after(() => client.close());
  return client;
}

/** The next event of `events` matching `pred`, waiting at most 15 s. */
function nextChange(client, pred) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off("change", on);
      reject(new Error("no change within 15 s"));
    }, 15_000);
    function on(change) {
      if (!pred(change)) return;
      clearTimeout(timer);
      client.off("change", on);
      resolve(change);
    }
    client.on("change", on);
  });
}

test("two JavaScript nodes sync both ways in the background and report changes", async (t) => {
  const dir = tempDir(t);
  const a = await jsNode(t, dir, "js-a");
  const b = await jsNode(t, dir, "js-b");
  const fa = (await a.nodeInfo()).value().fingerprint;
  const fb = (await b.nodeInfo()).value().fingerprint;
  assert.ok((await a.trustPeer("js-b", fb)).isOk());
  assert.ok((await b.trustPeer("js-a", fa)).isOk());
  for (const c of [a, b]) {
    assert.ok((await c.startTransport()).isOk());
    assert.ok((await c.startBackground()).isOk());
    assert.ok(c.backgroundRunning());
  }
  const port = (await a.transportPort()).value();
  const seenByB = nextChange(b, (c) => c.key === "from-a");
  const iterator = a.changes();
  assert.ok((await b.connect(Peer.local("js-a", port))).isOk());
  assert.ok((await a.put("from-a", "hello b")).isOk());
  const change = await seenByB;
  assert.equal(change.value.toString(), "hello b");
  assert.equal(change.origin, "js-a");
  assert.equal(change.removed, false);
  assert.equal(typeof change.version, "bigint");

  assert.ok((await b.put("from-b", "hello a")).isOk());
  const first = await Promise.race([
    iterator.next(),
    new Promise((_, fail) => setTimeout(() => fail(new Error("no change within 15 s")), 15_000)),
  ]);
  assert.equal(first.value.type, "change");
  assert.equal(first.value.key, "from-b");
  await iterator.return();
  assert.equal((await a.getString("from-b")).value(), "hello a");

  const removed = nextChange(b, (c) => c.key === "from-a" && c.removed);
  assert.ok((await a.remove("from-a")).isOk());
  assert.equal((await removed).value, null);
  assert.equal((await b.contains("from-a")).value(), false);
  // Acknowledged: nothing left in flight on either side.
  const settled = await waitFor(async () => {
    const s = (await a.syncState()).value();
    return s.inFlightCount === 0 && s.queuedCount === 0;
  });
  assert.ok(settled, "a's work acknowledged");
});

test("a JavaScript node and the CLI node sync both ways over TCP", async (t) => {
  const bin = cliBinary();
  const dir = tempDir(t);
  const data = join(dir, "cli-data");
  const cliInfo = cliJson(bin, data, ["--node-id", "cli-node", "node", "init"]);
  const js = await jsNode(t, dir, "js-node");
  const jsInfo = (await js.nodeInfo()).value();
  cliJson(bin, data, ["peers", "trust", "js-node", jsInfo.fingerprint]);
  assert.ok((await js.trustPeer("cli-node", cliInfo.fingerprint)).isOk());

  const port = await freePort();
  const node = startCliNode(t, bin, data, "cli-node", port);
  const ready = await waitFor(() => {
    try {
      return cliJson(bin, data, ["status"]).node.running;
    } catch {
      return false;
    }
  });
  assert.ok(ready, `CLI node did not start: ${node.log()}`);

  assert.ok((await js.startTransport()).isOk());
  assert.ok((await js.startBackground()).isOk());
  assert.ok((await js.connect({ nodeId: "cli-node", host: "127.0.0.1", port })).isOk());

  assert.ok((await js.put("from-js", "hello cli")).isOk());
  const got = await waitFor(() => {
    try {
      return cliJson(bin, data, ["store", "get", "from-js"]);
    } catch {
      return undefined;
    }
  });
  assert.ok(got, `the CLI node never got from-js: ${node.log()}`);
  assert.equal(got.value, "hello cli");
  assert.equal(got.origin, "js-node");

  const seen = nextChange(js, (c) => c.key === "from-cli");
  cliJson(bin, data, ["store", "put", "from-cli", "hello js"]);
  const change = await seen;
  assert.equal(change.value.toString(), "hello js");
  assert.equal(change.origin, "cli-node");
  assert.equal((await js.getString("from-cli")).value(), "hello js");
  const peers = (await js.peers()).value();
  assert.ok(peers.some((p) => p.nodeId === "cli-node" && p.isConnected()), JSON.stringify(peers));
});
