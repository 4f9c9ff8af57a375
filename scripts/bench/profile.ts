// Where the CPU goes per write. Starts the cluster (as the benchmark does), drives writes
// with the benchmark's client, and records a V8 CPU profile of the cluster's isolate through wrangler's inspector
// (Profiler domain) while it does. Prints self time per write by source file of the project (and for the runtime
// and libraries as one line each), and writes the profile (bench/results/profile-cluster.cpuprofile) for a flame chart in
// any DevTools. Under wrangler dev the worker and the three nodes share the isolate: the profile is all of them.
//
//   npx tsx scripts/bench/profile.ts [--duration-s 10] [--clients 32] [--baseline] [--out bench/results]
//   npx tsx scripts/bench/profile.ts --catch-up [--rows 25000] [--writes 10000]
// --baseline profiles the benchmark's baseline (one unreplicated SQLite Durable Object) instead, for comparison.
// --catch-up profiles one catch-up by snapshot instead: from the heal to the follower having applied all it missed,
// times shown per catch-up rather than per write. First the table is grown to --rows and --writes single writes are
// made, which fill the remembered request ids as a full benchmark run does (images of the same size).
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { AUTH_HEADERS, INSERT_BODY, measureCatchUp, settle, type CatchUpRun } from "./cluster";
import { growTable, WRITE_SHAPE } from "./run";
import { measurePoint, sendAmount, type PointResult } from "./load";
import { REPO_ROOT, sleep } from "../lib/processes";
import { WranglerServer } from "./servers";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount?: number;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

/** A DevTools protocol session over one WebSocket to wrangler's inspector proxy (which wants an Origin header). */
class InspectorSession {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (result: unknown) => void; reject: (error: Error) => void }>();

  private constructor(private readonly socket: WebSocket) {
    socket.onmessage = (event) => {
      const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: { message: string } };
      const waiter = message.id === undefined ? undefined : this.waiting.get(message.id);
      if (waiter === undefined) {
        return;
      }
      this.waiting.delete(message.id!);
      if (message.error !== undefined) {
        waiter.reject(new Error(message.error.message));
      } else {
        waiter.resolve(message.result);
      }
    };
  }

  static open(port: number): Promise<InspectorSession> {
    return new Promise((resolveOpen, reject) => {
      const socket = new WebSocket(`ws://127.0.0.1:${port}/ws`, {
        headers: { Origin: "http://127.0.0.1" },
      } as unknown as string[]);
      socket.onopen = () => resolveOpen(new InspectorSession(socket));
      socket.onerror = () => reject(new Error(`the inspector on port ${port} refused the connection`));
    });
  }

  call<T>(method: string, params: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> {
    const id = this.nextId++;
    // Ids far above the proxy's own, which it sends on connect.
    const wireId = 1_000_000_000 + id;
    return new Promise<T>((resolveCall, reject) => {
      const timer = setTimeout(() => reject(new Error(`${method}: no answer within ${timeoutMs} ms`)), timeoutMs);
      this.waiting.set(wireId, {
        resolve: (result) => {
          clearTimeout(timer);
          resolveCall(result as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.socket.send(JSON.stringify({ id: wireId, method, params }));
    });
  }

  close(): void {
    this.socket.close();
  }
}

/** Self and inclusive time (µs) per function name (wrangler bundles the sources into one file: names, not files). */
function timeByFunction(profile: CpuProfile): {
  readonly self: Map<string, number>;
  readonly inclusive: Map<string, number>;
  readonly busy: number;
} {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) {
      parentOf.set(child, node.id);
    }
  }
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let busy = 0;
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const node = byId.get(samples[i]!);
    const micros = deltas[i + 1] ?? 0;
    if (node === undefined || node.callFrame.functionName === "(idle)") {
      continue;
    }
    busy += micros;
    const own = nameOf(node);
    self.set(own, (self.get(own) ?? 0) + micros);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parentOf.get(id)) {
      const name = nameOf(byId.get(id)!);
      if (seen.has(name)) {
        continue;
      }
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + micros);
    }
  }
  return { self, inclusive, busy };
}

function nameOf(node: ProfileNode): string {
  const name = node.callFrame.functionName === "" ? "(anonymous)" : node.callFrame.functionName;
  return node.callFrame.url === "" ? `${name} [native]` : name;
}

async function main(argv: readonly string[]): Promise<void> {
  const valueOf = (flag: string, fallback: number) =>
    argv.includes(flag) ? Number(argv[argv.indexOf(flag) + 1]) : fallback;
  const durationS = valueOf("--duration-s", 10);
  const clients = valueOf("--clients", 32);
  const outDir = argv.includes("--out")
    ? resolve(argv[argv.indexOf("--out") + 1]!)
    : join(REPO_ROOT, "bench", "results");
  const kind = argv.includes("--baseline") ? "baseline" : "cluster";
  const cluster = await WranglerServer.start(kind);
  try {
    const body = JSON.stringify(["CREATE TABLE IF NOT EXISTS bench (id INTEGER PRIMARY KEY, v TEXT)"]);
    for (let attempt = 0; ; attempt++) {
      const answer = await fetch(`${cluster.baseUrl}/db/execute`, {
        method: "POST",
        headers: AUTH_HEADERS,
        body,
        signal: AbortSignal.timeout(20_000),
      }).catch(() => null);
      if (answer?.status === 200) {
        break;
      }
      if (attempt > 120) {
        throw new Error("the cluster did not take the table");
      }
      await sleep(250);
    }
    if (kind === "cluster") {
      await settle(cluster.baseUrl);
    }
    const session = await InspectorSession.open(cluster.inspectorPort);
    await session.call("Profiler.enable");
    await session.call("Profiler.setSamplingInterval", { interval: 200 });
    let profile: CpuProfile | null = null;
    const measured = argv.includes("--catch-up")
      ? await profileCatchUp(cluster.baseUrl, session, {
          rows: valueOf("--rows", 25_000),
          writes: valueOf("--writes", 10_000),
        })
      : await profileWrites(cluster.baseUrl, session, { clients, durationS });
    profile = (await session.call<{ profile: CpuProfile }>("Profiler.stop", {}, 120_000)).profile;
    session.close();
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, `profile-${kind}.cpuprofile`), JSON.stringify(profile));
    const { self, inclusive, busy } = timeByFunction(profile);
    const wallMs = (profile.endTime - profile.startTime) / 1_000;
    const perWrite = (micros: number) =>
      `${(micros / measured.units).toFixed(0).padStart(7)} µs ${((100 * micros) / Math.max(1, busy)).toFixed(1).padStart(5)} %`;
    console.log(measured.summary);
    console.log(
      `isolate busy ${(busy / 1_000).toFixed(0)} ms of ${wallMs.toFixed(0)} ms profiled: ${(busy / measured.units).toFixed(0)} µs of CPU per ${measured.unitName}`,
    );
    console.log(
      `inclusive time per ${measured.unitName} (the 30 largest, the root and the sampler's own frames left out):`,
    );
    for (const [name, micros] of [...inclusive]
      .filter(([name]) => !name.startsWith("(root)") && !name.startsWith("(program)"))
      .sort((a, b) => b[1] - a[1])
      .slice(0, 30)) {
      console.log(`  ${perWrite(micros)}  ${name}`);
    }
    console.log(`self time per ${measured.unitName} (the 20 largest):`);
    for (const [name, micros] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 20)) {
      console.log(`  ${perWrite(micros)}  ${name}`);
    }
    console.log(`profile: ${join(outDir, `profile-${kind}.cpuprofile`)}`);
  } finally {
    await cluster.stop();
  }
}

interface Measured {
  readonly summary: string;
  /** What the times are divided by, and its name. */
  readonly units: number;
  readonly unitName: string;
}

async function profileWrites(
  baseUrl: string,
  session: InspectorSession,
  options: { readonly clients: number; readonly durationS: number },
): Promise<Measured> {
  const point: PointResult = await measurePoint(
    baseUrl,
    {
      method: "POST",
      path: "/db/execute",
      headers: AUTH_HEADERS,
      body: INSERT_BODY,
      accepts: (text) => text.includes('"results"') && !text.includes('"error"'),
    },
    {
      connections: options.clients,
      durationS: options.durationS,
      warmupS: 2,
      timeoutS: 20,
      beforeMeasured: async () => void (await session.call("Profiler.start")),
    },
  );
  return {
    summary: `${point.ok} writes in ${point.durationS.toFixed(1)} s at ${options.clients} clients (${point.ratePerS.toFixed(0)}/s, p50 ${point.latencyMs.p50} ms, errors ${point.errors.total})`,
    units: Math.max(1, point.ok),
    unitName: "write",
  };
}

/** One catch-up by snapshot, profiled from before the follower is cut off to its having caught up. */
async function profileCatchUp(
  baseUrl: string,
  session: InspectorSession,
  options: { readonly rows: number; readonly writes: number },
): Promise<Measured> {
  const fill = async (count: number): Promise<void> => {
    if (count > 0) {
      await sendAmount(baseUrl, WRITE_SHAPE, { connections: Math.min(32, count), amount: count, timeoutS: 20 });
    }
  };
  await fill(options.writes);
  const held = await growTable(baseUrl, options.rows);
  const run: CatchUpRun = await measureCatchUp(baseUrl, {
    via: "snapshot",
    write: fill,
    logEntries: 0,
    beforeHeal: async () => void (await session.call("Profiler.start")),
  });
  return {
    summary: `catch-up by snapshot of ${run.entriesBehind} entries (table of ${held} rows, image ${(run.snapshotBytes / 1024).toFixed(0)} KiB) in ${run.totalMs.toFixed(0)} ms; after the heal: ${JSON.stringify(run.phasesMs)}`,
    units: 1,
    unitName: "catch-up",
  };
}

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
