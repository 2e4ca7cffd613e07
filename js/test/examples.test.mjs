// Every JavaScript snippet of the production guide and its minimal production-oriented
// program, as the files of examples/, run as written (the program with its WAL path moved
// under a temporary directory) and checked by their output.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { PACKAGE_DIR, REPO_DIR, freePort, runNode, runProductionShape, tempDir } from "./support.mjs";

const EXAMPLES = join(PACKAGE_DIR, "examples");

/** The guide's text (shared/ beside the repository, in CI and in a developer's tree). */
const GUIDE = [join(REPO_DIR, "..", "shared", "spec", "production-guide.txt")].find((p) => existsSync(p));

const expected = {
  "01-enable-persistence.mjs": { out: /walPath=\/var\/lib\/softadastra\/edge-store-kampala-01\/node\.wal enableWal=true autoFlush=true/ },
  "02-auto-flush.mjs": { out: /auto flush: recovered Softadastra/ },
  "03-open-errors.mjs": { status: 1, err: /open failed: .*missing.*node\.wal/ },
  "04-write-errors.mjs": { out: /written: app\/name = Softadastra\nempty key refused: invalid_argument/ },
  "05-sync-state.mjs": { out: /sync state: outbox=1 queued=1 failed=0 lastSubmittedVersion=\d+/ },
  "06-tick.mjs": { out: /tick: batch=0 retried=0/ },
  "07-tick-prune.mjs": { out: /tick prune: pruned=0 outbox=1/ },
  "08-transport.mjs": { out: /transport: listening on 127\.0\.0\.1:\d+/, ports: ["PORT"] },
  "09-discovery.mjs": { out: /discovery: running=true port=\d+/, ports: ["PORT", "BROADCAST_PORT"] },
  "10-node-info.mjs": { out: /node info: edge-store-kampala-01 on .+, version \d+\.\d+\.\d+, capabilities core,wal/ },
};

test("every example is checked", () => {
  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith(".mjs") && f !== "production-shape.mjs");
  assert.deepEqual(files.sort(), Object.keys(expected).sort());
});

for (const [file, want] of Object.entries(expected)) {
  test(`example ${file} runs as the guide writes it`, async (t) => {
    const env = { SOFTADASTRA_EXAMPLE_DIR: tempDir(t) };
    for (const name of want.ports ?? []) env[name] = String(await freePort());
    const r = runNode(join(EXAMPLES, file), { env });
    assert.equal(r.status, want.status ?? 0, r.stderr);
    if (want.out) assert.match(r.stdout, want.out);
    if (want.err) assert.match(r.stderr, want.err);
  });
}

test("the minimal production-oriented program runs", (t) => {
  const project = tempDir(t);
  mkdirSync(join(project, "node_modules", "@softadastra"), { recursive: true });
  symlinkSync(PACKAGE_DIR, join(project, "node_modules", "@softadastra", "sdk"));
  const r = runProductionShape(project, project);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "node: edge-store-kampala-01\n");
  assert.equal(r.stderr, "");
});

test("the examples hold the guide's JavaScript snippets as written", (t) => {
  if (!GUIDE) {
    t.skip("the production guide (shared/spec) is not beside the repository");
    return;
  }
  const guide = readFileSync(GUIDE, "utf8").replace(/\r/g, "");
  const norm = (s) => s.split("\n").map((l) => l.trimEnd()).join("\n").trim();
  let snippets = 0;
  for (const file of Object.keys(expected)) {
    const text = readFileSync(join(EXAMPLES, file), "utf8");
    const m = text.match(/\/\/ guide:begin\n([\s\S]*?)\/\/ guide:end/);
    assert.ok(m, `${file} marks its snippet`);
    assert.ok(guide.includes(`js\n${norm(m[1])}\n`), `${file}: snippet not found in the guide`);
    snippets++;
  }
  assert.equal(snippets, 10);
  const program = norm(readFileSync(join(EXAMPLES, "production-shape.mjs"), "utf8"));
  assert.ok(guide.includes(`js\n${program}\n`), "production-shape.mjs is the guide's program");
});
