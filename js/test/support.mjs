// Shared by the tests: temporary directories, free ports, running node scripts and the CLI,
// bounded waits.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const PACKAGE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const REPO_DIR = resolve(PACKAGE_DIR, "..");

/** A new temporary directory, removed by the returned cleanup. */
export function tempDir(t, prefix = "softadastra-js-") {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A TCP port nothing listens on right now (the OS picks it). */
export function freePort() {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
  });
}

/** Runs `node file` with `env` (30 s at most); its status, stdout and stderr. */
export function runNode(file, { cwd, env = {} } = {}) {
  const r = spawnSync(process.execPath, [file], {
    cwd,
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Polls `f` every 20 ms until it returns a truthy value, for at most `ms`. */
export async function waitFor(f, ms = 15_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() >= deadline) return undefined;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The `softadastra` CLI: SOFTADASTRA_CLI, else the debug build under CARGO_TARGET_DIR (or
 * the repository's target/), built with cargo when missing. */
export function cliBinary() {
  if (process.env.SOFTADASTRA_CLI) return process.env.SOFTADASTRA_CLI;
  const target = process.env.CARGO_TARGET_DIR ?? join(REPO_DIR, "target");
  const bin = join(target, "debug", "softadastra");
  if (!existsSync(bin)) {
    execFileSync("cargo", ["build", "--quiet", "-p", "softadastra-cli"], {
      cwd: REPO_DIR,
      stdio: "inherit",
      timeout: 600_000,
    });
  }
  return bin;
}

/** Runs the CLI on `data` with `args` and `--json`; the parsed output (throws on failure). */
export function cliJson(bin, data, args) {
  const out = spawnSync(bin, ["--data-dir", data, ...args, "--json"], { encoding: "utf8", timeout: 30_000 });
  if (out.status !== 0) throw new Error(`softadastra ${args.join(" ")}: ${out.stdout}${out.stderr}`);
  return JSON.parse(out.stdout);
}

/** Starts `softadastra node start` on 127.0.0.1:port; killed when the test ends. */
export function startCliNode(t, bin, data, nodeId, port) {
  mkdirSync(data, { recursive: true });
  const child = spawn(
    bin,
    ["--data-dir", data, "--node-id", nodeId, "node", "start", "--transport-host", "127.0.0.1", "--transport-port", String(port)],
    {
      stdio: ["ignore", "ignore", "pipe"],
      env: {
        ...process.env,
        SOFTADASTRA_TICK_INTERVAL_MS: "100",
        SOFTADASTRA_SYNC_ACK_TIMEOUT_MS: "1000",
        SOFTADASTRA_SYNC_RETRY_INTERVAL_MS: "100",
      },
    },
  );
  let log = "";
  child.stderr.on("data", (d) => (log += d));
  t.after(() => child.kill("SIGKILL"));
  return { child, log: () => log };
}

/** The directory of the WAL path the guide's minimal program is written with. */
export const GUIDE_PATH = "/var/lib/softadastra/edge-store-kampala-01/";

/** Runs the guide's minimal program (examples/production-shape.mjs) in `project`, which
 * resolves @softadastra/sdk, with its WAL path moved under `dir`. */
export function runProductionShape(project, dir) {
  const source = readFileSync(join(PACKAGE_DIR, "examples", "production-shape.mjs"), "utf8");
  if (!source.includes(GUIDE_PATH)) throw new Error("production-shape.mjs lost the guide's WAL path");
  const data = join(dir, "edge-store-kampala-01");
  mkdirSync(data, { recursive: true });
  const program = join(project, "production-shape.mjs");
  writeFileSync(program, source.replaceAll(GUIDE_PATH, `${data}/`));
  return runNode(program, { cwd: project });
}
