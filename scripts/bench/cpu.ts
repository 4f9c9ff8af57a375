// CPU time per write, which a shared machine does not distort the way it distorts throughput and latency: the
// baseline, the replication floor (bench/baseline's /fanout/execute: three copies, no log) and the cluster each take
// writes at a number of clients while the CPU time (user + system, from /proc) of every process of their wrangler dev
// (wrangler and workerd) is read before and after. Under wrangler dev the worker and all three nodes share one
// isolate, so on a quiet machine the cluster's throughput at many clients is about the baseline's times the inverse
// of this ratio. Each is a fresh wrangler dev. --majority: also the floor answering after one copy. Linux only.
//
//   npx tsx scripts/bench/cpu.ts [--clients 32] [--duration-s 8] [--rounds 2] [--majority]
import { AUTH_HEADERS, INSERT_BODY, settle } from "./cluster";
import { measurePoint, type RequestShape } from "./load";
import { prepareTable } from "./run";
import { WranglerServer } from "./servers";
import { pollUntil } from "../lib/processes";
import { groupCpuMsByCommand } from "./proc-cpu";

type Kind = "baseline" | "floor" | "floor-majority" | "cluster";

/** Where each kind takes its writes: byte for byte the same request, on another path for the floor. */
const WRITE_PATHS: Record<Kind, string> = {
  baseline: "/db/execute",
  floor: "/fanout/execute",
  "floor-majority": "/fanout/execute?ack=majority",
  cluster: "/db/execute",
};

function writeShape(kind: Kind): RequestShape {
  return {
    method: "POST",
    path: WRITE_PATHS[kind],
    headers: AUTH_HEADERS,
    body: INSERT_BODY,
    accepts: (text) => text.includes('"results"') && !text.includes('"error"'),
  };
}

interface CpuPoint {
  readonly writes: number;
  readonly cpuMsPerWrite: number;
  readonly ratePerS: number;
  /**
   * CPU used over wall time of the measured run: about one core (workerd's one thread, plus wrangler's proxy) when
   * the point was bound by CPU; well below when other work on the machine took the CPU or the system waited.
   */
  readonly coresBusy: number;
  /** CPU ms per write by process command. */
  readonly byCommand: string;
}

async function measure(kind: Kind, clients: number, durationS: number): Promise<CpuPoint> {
  const server = await WranglerServer.start(kind === "cluster" ? "cluster" : "baseline");
  // The floor's table is created through its own path, on all three copies.
  const tablePath = WRITE_PATHS[kind].split("?")[0];
  try {
    const pgid = server.processGroupId;
    if (pgid === undefined) {
      throw new Error(`${kind}: no process group`);
    }
    await pollUntil(
      `${kind} to take the table`,
      { timeoutMs: 60_000 },
      async () =>
        await prepareTable(server.baseUrl, tablePath).then(
          () => true,
          () => undefined,
        ),
    );
    if (kind === "cluster") {
      await settle(server.baseUrl);
    }
    let before = new Map<string, number>();
    let startMs = 0;
    const point = await measurePoint(server.baseUrl, writeShape(kind), {
      connections: clients,
      durationS,
      warmupS: 2,
      timeoutS: 20,
      beforeMeasured: () => {
        before = groupCpuMsByCommand(pgid);
        startMs = performance.now();
        return Promise.resolve();
      },
    });
    const after = groupCpuMsByCommand(pgid);
    const wallMs = performance.now() - startMs;
    const byCommand = new Map([...after].map(([command, ms]) => [command, ms - (before.get(command) ?? 0)]));
    const used = [...byCommand.values()].reduce((a, b) => a + b, 0);
    const perWrite = (ms: number) => ms / Math.max(1, point.ok);
    return {
      writes: point.ok,
      cpuMsPerWrite: perWrite(used),
      ratePerS: point.ratePerS,
      coresBusy: used / wallMs,
      byCommand: [...byCommand].map(([command, ms]) => `${command} ${perWrite(ms).toFixed(2)}`).join(", "),
    };
  } finally {
    await server.stop();
  }
}

async function main(argv: readonly string[]): Promise<void> {
  const valueOf = (flag: string, fallback: number) =>
    argv.includes(flag) ? Number(argv[argv.indexOf(flag) + 1]) : fallback;
  const clients = valueOf("--clients", 32);
  const durationS = valueOf("--duration-s", 8);
  const rounds = valueOf("--rounds", 2);
  const kinds: readonly Kind[] = argv.includes("--majority")
    ? ["baseline", "floor", "floor-majority", "cluster"]
    : ["baseline", "floor", "cluster"];
  for (let round = 1; round <= rounds; round++) {
    const points = new Map<Kind, CpuPoint>();
    for (const kind of kinds) {
      points.set(kind, await measure(kind, clients, durationS));
    }
    const show = ([kind, p]: [Kind, CpuPoint]) =>
      `${kind} ${p.cpuMsPerWrite.toFixed(2)} ms CPU/write [${p.byCommand}] (${p.writes} writes, ${p.ratePerS.toFixed(0)}/s, ${p.coresBusy.toFixed(2)} cores busy)`;
    const cpuRatio = (of: Kind, to: Kind) => {
      const [a, b] = [points.get(of), points.get(to)];
      return a === undefined || b === undefined ? "" : `${of}/${to} ${(a.cpuMsPerWrite / b.cpuMsPerWrite).toFixed(2)}x`;
    };
    const ratios = [
      cpuRatio("floor", "baseline"),
      cpuRatio("floor-majority", "baseline"),
      cpuRatio("cluster", "baseline"),
      cpuRatio("cluster", "floor"),
      cpuRatio("cluster", "floor-majority"),
    ].filter((text) => text !== "");
    console.log(`round ${round}, ${clients} clients: ${[...points].map(show).join("; ")}; ${ratios.join(", ")}`);
  }
}

await main(process.argv.slice(2));
