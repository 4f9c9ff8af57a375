// Where the CPU of the local runtime's worker process goes per write, measured with Linux `perf` and V8's perf map
// (the runtime started with MINIFLARE_WORKERD_V8_FLAGS=--perf-basic-prof, so JavaScript frames have names). Unlike
// profile.ts, whose V8 sampler comes late under load and charges each gap to the frame before it, perf samples at a
// fixed rate and sees the runtime's own work too: storage commits and their fsync, RPC between objects, the kernel.
// Under wrangler dev the worker and the three nodes share that process (wrangler's proxy runs in another, left out).
// Prints inclusive time per write for the project's JavaScript frames and for named parts of the runtime.
//
// Needs `perf` (Debian: apt-get install linux-perf) and leave to profile another process (root, or
// kernel.perf_event_paranoid at most 1). A measuring tool, not a test: nothing in `npm test` runs it.
//
//   npx tsx scripts/bench/perf-profile.ts [--clients 32] [--duration-s 8] [--baseline | --floor] [--top 40] [--keep DIR]
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { measurePoint } from "./load";
import { prepareTable, settleWithSchema, WRITE_SHAPE } from "./run";
import { WranglerServer } from "./servers";

/** Parts of the runtime worth a line of their own: perf's symbol (a prefix of it) and what it is. */
const RUNTIME_PARTS: readonly (readonly [string, string])[] = [
  ["workerd::api::JsRpcTargetBase::callImpl", "RPC calls received by the objects (their JavaScript included)"],
  ["workerd::ActorSqlite::startImplicitTxnImpl", "storage: the implicit transaction of each event, with its commit"],
  ["vdbeCommit", "storage: SQLite commits"],
  ["fsync", "storage: fsync (kernel time)"],
  ["sqlite3_step", "storage: every SQL statement and KV call, commits included"],
  ["v8::internal::Heap::CollectGarbage", "garbage collection"],
  ["workerd::jsg::Deserializer::readValue", "RPC: arguments and results deserialised"],
];

interface Options {
  readonly clients: number;
  readonly durationS: number;
  readonly kind: "cluster" | "baseline" | "floor";
  readonly top: number;
  /** Where to copy perf.data (and the perf map it needs) for a closer look with `perf report`; none by default. */
  readonly keepDir: string | null;
}

function parseOptions(argv: readonly string[]): Options {
  const numberOf = (flag: string, fallback: number): number => {
    const at = argv.indexOf(flag);
    const value = at < 0 ? fallback : Number(argv[at + 1]);
    if (!Number.isInteger(value) || value <= 0) {
      throw new Error(`${flag} needs a positive whole number`);
    }
    return value;
  };
  return {
    clients: numberOf("--clients", 32),
    durationS: numberOf("--duration-s", 8),
    kind: argv.includes("--baseline") ? "baseline" : argv.includes("--floor") ? "floor" : "cluster",
    top: numberOf("--top", 40),
    keepDir: keepDirOf(argv),
  };
}

/** The workerd process that runs the worker and its objects: the one wrangler starts with an inspector. */
function workerProcessId(pgid: number): number {
  for (const entry of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const command = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (
        Number(fields[2]) === pgid &&
        command[0]?.endsWith("workerd") === true &&
        command.some((arg) => arg.startsWith("--inspect"))
      ) {
        return Number(entry);
      }
    } catch {
      // it exited meanwhile
    }
  }
  throw new Error(`no workerd process with an inspector in process group ${pgid}`);
}

/** CPU milliseconds of one process so far (utime + stime). */
function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** perf report's inclusive ("children") percentage per symbol. */
function inclusiveShares(dataFile: string): Map<string, number> {
  const report = spawnSync(
    "perf",
    ["report", "-i", dataFile, "--children", "--sort", "sym", "-g", "none", "--stdio", "--percent-limit", "0.3"],
    { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 },
  );
  if (report.status !== 0) {
    throw new Error(`perf report failed: ${report.stderr}`);
  }
  const shares = new Map<string, number>();
  for (const line of report.stdout.split("\n")) {
    const match = /^\s+([\d.]+)%\s+[\d.]+%\s+\[[.k]\]\s+(.+?)\s*$/.exec(line);
    if (match !== null && !shares.has(match[2] as string)) {
      shares.set(match[2] as string, Number(match[1]));
    }
  }
  return shares;
}

function keepDirOf(argv: readonly string[]): string | null {
  const at = argv.indexOf("--keep");
  if (at < 0) {
    return null;
  }
  const dir = argv[at + 1];
  if (dir === undefined || dir.startsWith("--")) {
    throw new Error("--keep needs a directory");
  }
  return dir;
}

/** Copies the recording and the perf map its JavaScript symbols need: `perf report -i DIR/perf.data` then works. */
function keepData(keepDir: string, dataFile: string, pid: number): void {
  mkdirSync(keepDir, { recursive: true });
  copyFileSync(dataFile, join(keepDir, "perf.data"));
  copyFileSync(`/tmp/perf-${pid}.map`, join(keepDir, `perf-${pid}.map`));
  console.log(`kept ${join(keepDir, "perf.data")}; perf reads /tmp/perf-${pid}.map: copy it back there to report`);
}

function requirePerf(): void {
  const version = spawnSync("perf", ["--version"], { encoding: "utf8" });
  if (version.status !== 0) {
    throw new Error("perf is not installed (Debian: apt-get install linux-perf)");
  }
}

async function main(options: Options): Promise<void> {
  requirePerf();
  process.env["MINIFLARE_WORKERD_V8_FLAGS"] = "--perf-basic-prof";
  const server = await WranglerServer.start(options.kind === "cluster" ? "cluster" : "baseline");
  // The replication floor is the baseline's worker on another path (see run.ts), its table made on all three copies.
  const shape = options.kind === "floor" ? { ...WRITE_SHAPE, path: "/fanout/execute" } : WRITE_SHAPE;
  const dir = mkdtempSync(join(tmpdir(), "durable-ha-perf-"));
  let pid: number | null = null;
  try {
    if (options.kind === "cluster") {
      await settleWithSchema(server.baseUrl);
    } else {
      await prepareTable(server.baseUrl, shape.path);
    }
    const load = { connections: options.clients, warmupS: 1, timeoutS: 10 };
    await measurePoint(server.baseUrl, shape, { ...load, durationS: 3 });
    pid = workerProcessId(server.processGroupId ?? -1);
    const dataFile = join(dir, "perf.data");
    const recorder = spawn("perf", ["record", "-F", "999", "-g", "-p", String(pid), "-o", dataFile], {
      stdio: "ignore",
    });
    const cpuBeforeMs = processCpuMs(pid);
    const point = await measurePoint(server.baseUrl, shape, {
      ...load,
      warmupS: 0,
      durationS: options.durationS,
    });
    const cpuMs = processCpuMs(pid) - cpuBeforeMs;
    const stopped = new Promise((resolve) => recorder.once("exit", resolve));
    recorder.kill("SIGINT");
    await stopped;
    const perWriteUs = (share: number): string =>
      `${Math.round(((share / 100) * cpuMs * 1_000) / point.ok)
        .toString()
        .padStart(6)} µs  ${share.toFixed(1).padStart(5)} %`;
    console.log(
      `${options.kind}: ${point.ok} writes in ${point.durationS.toFixed(1)} s at ${options.clients} clients ` +
        `(${point.ratePerS.toFixed(0)}/s, p50 ${point.latencyMs.p50} ms, errors ${point.errors.total}); ` +
        `the worker process used ${(cpuMs / point.ok).toFixed(2)} ms of CPU per write`,
    );
    if (options.keepDir !== null) {
      keepData(options.keepDir, dataFile, pid);
    }
    const shares = inclusiveShares(dataFile);
    console.log("parts of the runtime, inclusive, per write:");
    for (const [prefix, what] of RUNTIME_PARTS) {
      // A symbol may have several entries (its overloads, templates): the largest inclusive one covers the others.
      const share = Math.max(0, ...[...shares].filter(([symbol]) => symbol.startsWith(prefix)).map(([, pct]) => pct));
      console.log(`  ${perWriteUs(share)}  ${what}`);
    }
    console.log(`JavaScript frames, inclusive, per write (the ${options.top} largest):`);
    const frames = [...shares].filter(([symbol]) => symbol.startsWith("JS:"));
    for (const [symbol, share] of frames.slice(0, options.top)) {
      console.log(`  ${perWriteUs(share)}  ${symbol.slice(3)}`);
    }
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
    if (pid !== null) {
      rmSync(`/tmp/perf-${pid}.map`, { force: true });
    }
  }
}

await main(parseOptions(process.argv.slice(2)));
