// `npm run bench:profile`: where the CPU goes per write. Starts the cluster (as the benchmark does), drives writes
// with the benchmark's client, and records a V8 CPU profile of the cluster's isolate through wrangler's inspector
// (Profiler domain) while it does. Prints self time per write by source file of the project (and for the runtime
// and libraries as one line each), and writes the profile (bench/results/profile.cpuprofile) for a flame chart in
// any DevTools. Under wrangler dev the worker and the three nodes share the isolate: the profile is all of them.
//
//   npm run bench:profile -- [--duration-s 10] [--clients 32] [--out bench/results]
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { AUTH_HEADERS, INSERT_BODY, settle } from "./cluster";
import { measurePoint } from "./load";
import { REPO_ROOT, WranglerServer, sleep } from "./servers";

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
      if (waiter === undefined) return;
      this.waiting.delete(message.id!);
      if (message.error !== undefined) waiter.reject(new Error(message.error.message));
      else waiter.resolve(message.result);
    };
  }

  static open(port: number): Promise<InspectorSession> {
    return new Promise((resolveOpen, reject) => {
      const socket = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { Origin: "http://127.0.0.1" } } as unknown as string[]);
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

/** Self time (µs) per bucket: a project source file, or the runtime / libraries / garbage collector / idle. */
function selfTimeByBucket(profile: CpuProfile): Map<string, number> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const totals = new Map<string, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) {
    const node = byId.get(samples[i]!);
    const micros = deltas[i + 1] ?? 0;
    if (node === undefined) continue;
    const bucket = bucketOf(node.callFrame);
    totals.set(bucket, (totals.get(bucket) ?? 0) + micros);
  }
  return totals;
}

function bucketOf(frame: ProfileNode["callFrame"]): string {
  if (frame.functionName === "(idle)") return "(idle)";
  if (frame.functionName === "(garbage collector)") return "(garbage collector)";
  if (frame.functionName === "(program)" || frame.functionName === "(root)") return "(runtime: program)";
  const src = /(?:^|\/)(src\/.*)$/.exec(frame.url);
  if (src !== null) return src[1]!;
  if (/node_modules\/(hono|zod|@hono)/.test(frame.url)) return `library: ${/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(frame.url)![1]}`;
  if (frame.url.includes("node_modules")) return "library: other";
  return frame.url === "" ? "(runtime: native)" : "(runtime: other)";
}

async function main(argv: readonly string[]): Promise<void> {
  const valueOf = (flag: string, fallback: number) => (argv.includes(flag) ? Number(argv[argv.indexOf(flag) + 1]) : fallback);
  const durationS = valueOf("--duration-s", 10);
  const clients = valueOf("--clients", 32);
  const outDir = argv.includes("--out") ? resolve(argv[argv.indexOf("--out") + 1]!) : join(REPO_ROOT, "bench", "results");
  const cluster = await WranglerServer.start("cluster");
  try {
    const body = JSON.stringify(["CREATE TABLE IF NOT EXISTS bench (id INTEGER PRIMARY KEY, v TEXT)"]);
    for (let attempt = 0; ; attempt++) {
      const answer = await fetch(`${cluster.baseUrl}/db/execute`, { method: "POST", headers: AUTH_HEADERS, body, signal: AbortSignal.timeout(20_000) }).catch(() => null);
      if (answer?.status === 200) break;
      if (attempt > 120) throw new Error("the cluster did not take the table");
      await sleep(250);
    }
    await settle(cluster.baseUrl);
    const session = await InspectorSession.open(cluster.inspectorPort);
    await session.call("Profiler.enable");
    await session.call("Profiler.setSamplingInterval", { interval: 200 });
    let profile: CpuProfile | null = null;
    const point = await measurePoint(
      cluster.baseUrl,
      { method: "POST", path: "/db/execute", headers: AUTH_HEADERS, body: INSERT_BODY, accepts: (text) => text.includes('"results"') && !text.includes('"error"') },
      {
        connections: clients,
        durationS,
        warmupS: 2,
        timeoutS: 20,
        beforeMeasured: async () => void (await session.call("Profiler.start")),
      },
    );
    profile = (await session.call<{ profile: CpuProfile }>("Profiler.stop", {}, 120_000)).profile;
    session.close();
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, "profile.cpuprofile"), JSON.stringify(profile));
    const totals = [...selfTimeByBucket(profile)].sort((a, b) => b[1] - a[1]);
    const busy = totals.filter(([bucket]) => bucket !== "(idle)").reduce((sum, [, micros]) => sum + micros, 0);
    const wallMs = (profile.endTime - profile.startTime) / 1_000;
    console.log(`${point.ok} writes in ${point.durationS.toFixed(1)} s at ${clients} clients (${point.ratePerS.toFixed(0)}/s, p50 ${point.latencyMs.p50} ms, errors ${point.errors.total})`);
    console.log(`isolate busy ${(busy / 1_000).toFixed(0)} ms of ${wallMs.toFixed(0)} ms profiled: ${(busy / Math.max(1, point.ok)).toFixed(0)} µs of CPU per write`);
    console.log("self time per write, by source:");
    for (const [bucket, micros] of totals.slice(0, 40)) {
      if (bucket === "(idle)") continue;
      console.log(`  ${(micros / Math.max(1, point.ok)).toFixed(1).padStart(8)} µs  ${((100 * micros) / busy).toFixed(1).padStart(5)} %  ${bucket}`);
    }
    console.log(`profile: ${join(outDir, "profile.cpuprofile")}`);
  } finally {
    await cluster.stop();
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
