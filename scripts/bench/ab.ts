// Two versions of the cluster side by side: an earlier commit's (A) and the working tree's (B), with the baseline
// beside them, measured in turn within each point (measureInterleaved), so that the machine's drift falls on all
// three alike. Separate runs of `npm run bench` cannot tell a change of a few percent: the baseline alone moved by
// 14% between two runs ten minutes apart, and the cluster with it.
//
//   npx tsx scripts/bench/ab.ts [--against HEAD] [--clients 1,32] [--duration-s 16] [--rounds 8] [--warmup-s 2]
//
// Prints each point's writes per second, p50 and CPU time per write (every process of each system's wrangler dev,
// from /proc, Linux only) for A, B and the baseline, and B's ratios to A. A's sources come
// from `git archive` of the commit (node_modules are the working tree's: the commits must share their
// dependencies).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { measureInterleaved, type PointResult } from "./load";
import { prepareTable, settleWithSchema, WRITE_SHAPE } from "./run";
import { groupCpuMs } from "./proc-cpu";
import { CLUSTER_SOURCES, WranglerServer } from "./servers";
import { REPO_ROOT } from "../lib/processes";

const REQUEST_TIMEOUT_S = 30;

interface AbOptions {
  readonly against: string;
  readonly clients: readonly number[];
  readonly durationS: number;
  readonly rounds: number;
  readonly warmupS: number;
}

function parseAbOptions(argv: readonly string[]): AbOptions {
  const valueOf = (flag: string): string | undefined => {
    const at = argv.indexOf(flag);
    return at < 0 ? undefined : argv[at + 1];
  };
  const positive = (flag: string, fallback: number): number => {
    const value = Number(valueOf(flag) ?? fallback);
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`${flag} needs a whole number of at least 1`);
    }
    return value;
  };
  const clients = (valueOf("--clients") ?? "1,32").split(",").map(Number);
  if (clients.some((count) => !Number.isInteger(count) || count < 1)) {
    throw new Error("--clients needs whole numbers of at least 1, separated by commas");
  }
  const options = {
    against: valueOf("--against") ?? "HEAD",
    clients,
    durationS: positive("--duration-s", 16),
    rounds: positive("--rounds", 8),
    warmupS: positive("--warmup-s", 2),
  };
  if (!Number.isInteger(options.durationS / options.rounds)) {
    throw new Error("--duration-s must be a whole multiple of --rounds (autocannon stops on whole seconds)");
  }
  return options;
}

/** The commit's cluster sources, extracted into a new directory. */
function sourcesOf(commit: string): string {
  const dir = mkdtempSync(join(tmpdir(), "durable-ha-bench-ab-"));
  const archive = execFileSync("git", ["archive", "--format=tar", commit, ...CLUSTER_SOURCES], {
    cwd: REPO_ROOT,
    maxBuffer: 256 * 1024 * 1024,
  });
  execFileSync("tar", ["-x", "-C", dir], { input: archive });
  return dir;
}

function line(name: string, point: PointResult): string {
  const errors = point.errors.total === 0 ? "" : `, ${point.errors.total} errors`;
  return `${name.padEnd(9)} ${point.ratePerS.toFixed(0).padStart(5)}/s  p50 ${point.latencyMs.p50.toFixed(2)} ms${errors}`;
}

async function main(): Promise<void> {
  const options = parseAbOptions(process.argv.slice(2));
  const commit = execFileSync("git", ["rev-parse", "--short", options.against], { cwd: REPO_ROOT, encoding: "utf8" });
  const sourcesA = sourcesOf(options.against);
  console.log(`A: ${options.against} (${commit.trim()}); B: the working tree; starting both and the baseline`);
  const servers: WranglerServer[] = [];
  try {
    const a = await WranglerServer.start("cluster", sourcesA);
    servers.push(a);
    const b = await WranglerServer.start("cluster");
    servers.push(b);
    const baseline = await WranglerServer.start("baseline");
    servers.push(baseline);
    await settleWithSchema(a.baseUrl);
    await settleWithSchema(b.baseUrl);
    await prepareTable(baseline.baseUrl);
    for (const connections of options.clients) {
      const cpuMs = [0, 0, 0];
      const contenders = [a, b, baseline].map((server, i) => {
        const pgid = server.processGroupId;
        let before = 0;
        return {
          baseUrl: server.baseUrl,
          shape: WRITE_SHAPE,
          ...(pgid === undefined
            ? {}
            : {
                beforeSlice: () => Promise.resolve(void (before = groupCpuMs(pgid))),
                afterSlice: () => Promise.resolve(void (cpuMs[i]! += groupCpuMs(pgid) - before)),
              }),
        };
      });
      const [pointA, pointB, pointBase] = await measureInterleaved(contenders, {
        connections,
        durationS: options.durationS,
        warmupS: options.warmupS,
        rounds: options.rounds,
        timeoutS: REQUEST_TIMEOUT_S,
      });
      console.log(
        `writes at ${connections} clients (${options.rounds} rounds of ${options.durationS / options.rounds} s each):`,
      );
      // The drain write after each slice is handled in the slice's CPU time too (measureInterleaved).
      const cpuPerWrite = (i: number, point: PointResult) => cpuMs[i]! / (point.ok + options.rounds);
      const [cpuA, cpuB, cpuBase] = [cpuPerWrite(0, pointA!), cpuPerWrite(1, pointB!), cpuPerWrite(2, pointBase!)];
      const cpu = (ms: number) => `CPU ${ms.toFixed(2)} ms/write`;
      console.log(
        `  ${line("A", pointA!)}  ${cpu(cpuA)}  ${(pointA!.ratePerS / pointBase!.ratePerS).toFixed(2)}× the baseline`,
      );
      console.log(
        `  ${line("B", pointB!)}  ${cpu(cpuB)}  ${(pointB!.ratePerS / pointBase!.ratePerS).toFixed(2)}× the baseline`,
      );
      console.log(`  ${line("baseline", pointBase!)}  ${cpu(cpuBase)}`);
      console.log(
        `  B / A: throughput ${(pointB!.ratePerS / pointA!.ratePerS).toFixed(3)}×, p50 ${(pointB!.latencyMs.p50 / pointA!.latencyMs.p50).toFixed(3)}×, CPU per write ${(cpuB / cpuA).toFixed(3)}×`,
      );
    }
  } finally {
    for (const server of servers.reverse()) {
      await server.stop();
    }
    rmSync(sourcesA, { recursive: true, force: true });
  }
}

await main();
