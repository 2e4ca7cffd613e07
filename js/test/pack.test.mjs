// `npm pack` makes a tarball that installs into an empty project elsewhere, offline, and
// runs the guide's minimal program.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { PACKAGE_DIR, runProductionShape, tempDir } from "./support.mjs";

const npm = process.platform === "win32" ? "npm.cmd" : "npm";

test("the packed tarball installs into an empty project and runs the minimal program", (t) => {
  const dir = tempDir(t);
  // --ignore-scripts: the addon is built already (npm install did); packing ships it.
  const packed = execFileSync(npm, ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], {
    cwd: PACKAGE_DIR,
    encoding: "utf8",
    timeout: 120_000,
  });
  const [info] = JSON.parse(packed);
  const files = info.files.map((f) => f.path);
  for (const f of ["index.js", "index.mjs", "index.d.ts", "native.js", "package.json"]) assert.ok(files.includes(f), f);
  assert.ok(files.some((f) => f.endsWith(".node")), "the addon is shipped");
  assert.ok(!files.some((f) => f.startsWith("src/") || f.startsWith("test/")), files.join(","));

  const project = join(dir, "consumer");
  execFileSync("mkdir", ["-p", project]);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true }));
  execFileSync(npm, ["install", "--offline", "--no-audit", "--no-fund", join(dir, info.filename)], {
    cwd: project,
    encoding: "utf8",
    timeout: 120_000,
  });
  assert.ok(existsSync(join(project, "node_modules", "@softadastra", "sdk", "index.d.ts")));
  const r = runProductionShape(project, dir);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "node: edge-store-kampala-01\n");
});
