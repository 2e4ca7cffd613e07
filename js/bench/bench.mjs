// Put/get through JavaScript beside the same through C++ (the C ABI, bench/put_get.cpp),
// in one run, with 100-byte values: the fast preset (writes not synced) and the durable
// one (each write synced). Prints a table and the targets: fast put from JavaScript at
// least 300k/s; durable put within 10% of C++. Durable is measured twice from
// JavaScript: one awaited call at a time (each call then pays a full trip to the client's
// thread and back to the event loop), and 64 calls in flight (as a server handling many
// requests does; each put is still synced before it resolves, one after the other).
//
//   npm --prefix js run bench [-- N_FAST N_DURABLE]
//
// JavaScript issues a window of calls without awaiting each (as a server handling many
// requests does); the client runs them in order, in batches, off the JavaScript thread.
// The durable WAL goes under BENCH_DIR (default: js/bench/.data, on the disk the
// repository is on; /tmp may be memory).
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { Client, ClientOptions } from "@softadastra/sdk";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "..", "..");
const target = process.env.CARGO_TARGET_DIR ?? join(repo, "target");
const nFast = Number(process.argv[2] ?? 200_000);
const nDurable = Number(process.argv[3] ?? 2_000);
const base = process.env.BENCH_DIR ?? join(here, ".data");
mkdirSync(base, { recursive: true });

function buildCpp() {
  execFileSync("cargo", ["build", "--quiet", "--release", "--lib", "-p", "softadastra"], { cwd: repo, stdio: "inherit" });
  // The shared library's SONAME is libsoftadastra.so.0 (what CMake installs): link it under
  // that name from the bench's own directory.
  const lib = join(base, "libsoftadastra.so.0");
  rmSync(lib, { force: true });
  symlinkSync(join(target, "release", "libsoftadastra.so"), lib);
  const bin = join(base, "put_get");
  execFileSync("g++", ["-O2", "-std=c++17", join(here, "put_get.cpp"), "-I", join(repo, "include"), lib, `-Wl,-rpath,${base}`, "-o", bin], { stdio: "inherit" });
  return bin;
}

function runCpp(bin, mode, n) {
  const dir = mkdtempSync(join(base, "cpp-"));
  try {
    const [put, get] = execFileSync(bin, [mode, join(dir, "node.wal"), String(n)], { encoding: "utf8" }).trim().split(" ").map(Number);
    return { put, get };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runJs(mode, n, window) {
  const dir = mkdtempSync(join(base, "js-"));
  try {
    const wal = join(dir, "node.wal");
    const client = new Client(mode === "fast" ? ClientOptions.fast("bench-js", wal) : ClientOptions.persistent("bench-js", wal));
    if ((await client.open()).isErr()) throw new Error("open failed");
    const value = Buffer.alloc(100, "v");
    const timed = async (f) => {
      const start = process.hrtime.bigint();
      for (let i = 0; i < n; i += window) {
        const calls = [];
        for (let j = i; j < Math.min(n, i + window); j++) calls.push(f(j));
        for (const r of await Promise.all(calls)) if (r.isErr()) throw new Error(r.error().message);
      }
      return n / (Number(process.hrtime.bigint() - start) / 1e9);
    };
    const put = await timed((i) => client.put(`key/${i}`, value));
    const get = await timed((i) => client.get(`key/${i}`));
    await client.close();
    return { put, get };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const bin = buildCpp();
const rows = [];
// [row, preset, operations, calls in flight from JavaScript]
for (const [row, mode, n, window] of [
  ["fast", "fast", nFast, 1024],
  ["durable", "durable", nDurable, 1],
  ["durable/64", "durable", nDurable, 64],
]) {
  // Warm up each side once, then measure.
  runCpp(bin, mode, Math.min(n, 1000));
  await runJs(mode, Math.min(n, 1000), 1024);
  // Three rounds, alternating, the median of each: the disk and the CPUs are shared.
  const cpps = [];
  const jss = [];
  for (let round = 0; round < 3; round++) {
    cpps.push(runCpp(bin, mode, n));
    jss.push(await runJs(mode, n, window));
  }
  const median = (xs, f) => xs.map(f).sort((a, b) => a - b)[1];
  const pick = (xs) => ({ put: median(xs, (x) => x.put), get: median(xs, (x) => x.get) });
  rows.push({ mode: row, n, cpp: pick(cpps), js: pick(jss) });
}

const k = (x) => `${(x / 1000).toFixed(1)}k/s`.padStart(11);
console.log("mode        ops      C++ put     JS put   JS/C++    C++ get     JS get   JS/C++");
for (const { mode, n, cpp, js } of rows) {
  console.log(
    `${mode.padEnd(10)} ${String(n).padStart(7)} ${k(cpp.put)} ${k(js.put)} ${(js.put / cpp.put).toFixed(2).padStart(8)} ${k(cpp.get)} ${k(js.get)} ${(js.get / cpp.get).toFixed(2).padStart(8)}`,
  );
}
const fast = rows.find((r) => r.mode === "fast");
console.log(`target: fast put from JS >= 300k/s: ${fast.js.put >= 300_000 ? "met" : "NOT met"} (${k(fast.js.put).trim()})`);
for (const durable of rows.filter((r) => r.mode.startsWith("durable"))) {
  const met = durable.js.put >= 0.9 * durable.cpp.put ? "met" : "NOT met";
  console.log(`target: durable put within 10% of C++ (${durable.mode}): ${met} (${(100 * durable.js.put / durable.cpp.put).toFixed(0)}%)`);
}
rmSync(base, { recursive: true, force: true });
