// `npm run bench`: the cluster beside an unreplicated SQLite Durable Object (the baseline) on the same runtime, and
// etcd when it is installed, driven by the same client with the same requests. Writes are also measured on the
// replication floor (bench/baseline's /fanout/execute: three copies with no log, the least any replicator does
// here). Prints a table of every figure with its ratio to the baseline and writes bench/results/latest.json,
// latest.md and latest.svg.
//
//   npm run bench -- [--duration-s 8] [--warmup-s 2] [--quick] [--smoke] [--no-etcd] [--failover-runs 5]
//                    [--soak-s 0] [--only catch-up|writes] [--catch-up-runs 1] [--catch-up-rows 0] [--out bench/results]
//                    [--update-readme]
// --quick: 3 s points, 3 failover runs of each kind, fewer entries to catch up. --smoke: the smallest run that still
// goes through every kind of measurement once, 3 s points (for the smoke test; its figures mean nothing).
// --only catch-up: the writes at 32 clients (the catch-up ratio's denominator) and catch-up by log and by snapshot,
// nothing else (no etcd). --only writes: writes at 1 and 32 clients on the cluster, the baseline, the floor and
// etcd, nothing else (the write targets alone, for comparing two versions of the code). --catch-up-runs N: each kind of catch-up N times in a row on the same cluster.
// --catch-up-rows N: before the catch-ups, the benchmark's table is grown to at least N rows (copies of its own rows,
// a few large writes), so that the snapshot installed is as large as a longer run's: with --only catch-up the table
// holds only the writes of one point, and the full run's (about 50,000 rows, 2.4 MiB) costs more to install.
// --soak-s N: then N more seconds of writes at 32 clients, sampling the cluster's heap every tenth of it.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem, type as osType } from "node:os";
import { join, resolve } from "node:path";
import {
  AUTH_HEADERS,
  CATCH_UP_PHASES,
  call,
  billedCounters,
  billedDelta,
  INSERT_BODY,
  measureCatchUp,
  measureFailover,
  scrape,
  settle,
  type BilledCounters,
  type BilledDelta,
  type CatchUpRun,
  type FailoverRun,
} from "./cluster";
import { collectGarbage, tryHeapUsage } from "./heap";
import {
  measureInterleaved,
  measurePoint,
  sendAmount,
  type Contender,
  type InterleavedOptions,
  type LoadOptions,
  type PointResult,
  type RequestShape,
} from "./load";
import { markdownReport, replaceReadmeTable, svgChart, targetChecks } from "./report";
import {
  READ_LEVELS,
  RESULTS_FORMAT,
  type BenchResults,
  type Heap,
  type ReadPoint,
  type Summary,
  type WritePoint,
} from "./results";
import { localObservability, REPO_ROOT, sleep } from "../lib/processes";
import { EtcdCluster, WranglerServer } from "./servers";

export interface BenchOptions {
  readonly durationS: number;
  readonly warmupS: number;
  /** Writes and reads: each point's durationS is split over this many rounds of the systems in turn. */
  readonly rounds: number;
  readonly writeClients: readonly number[];
  readonly readClients: readonly number[];
  readonly readLevels: readonly (typeof READ_LEVELS)[number][];
  readonly floorClients: readonly number[];
  readonly failoverRuns: number;
  readonly catchUp: readonly ("log" | "snapshot")[];
  /** How many times each kind of catch-up is measured, in turn. */
  readonly catchUpRuns: number;
  /** Rows the benchmark's table is grown to before the catch-ups (0: as it is). */
  readonly catchUpRows: number;
  readonly logCatchUpEntries: number;
  readonly idleS: number;
  readonly soakS: number;
  readonly etcd: boolean;
  readonly outDir: string;
  readonly updateReadme: boolean;
  readonly log: (line: string) => void;
}

const REQUEST_TIMEOUT_S = 20;
const FILL_CONNECTIONS = 32;
const READ_SQL = "SELECT v FROM bench WHERE id = 1";

export function parseOptions(argv: readonly string[]): BenchOptions {
  const has = (flag: string) => argv.includes(flag);
  const numberOf = (flag: string, fallback: number): number => {
    const at = argv.indexOf(flag);
    if (at < 0) {
      return fallback;
    }
    const value = Number(argv[at + 1]);
    if (!Number.isFinite(value) || value < 0) {
      throw new Error(`${flag} needs a non-negative number`);
    }
    return value;
  };
  const outAt = argv.indexOf("--out");
  const outDir = outAt < 0 ? join(REPO_ROOT, "bench", "results") : resolve(argv[outAt + 1] ?? "");
  const known = new Set([
    "--duration-s",
    "--warmup-s",
    "--rounds",
    "--quick",
    "--smoke",
    "--no-etcd",
    "--failover-runs",
    "--soak-s",
    "--only",
    "--catch-up-runs",
    "--catch-up-rows",
    "--out",
    "--update-readme",
  ]);
  const takesValue = [
    "--duration-s",
    "--warmup-s",
    "--rounds",
    "--failover-runs",
    "--soak-s",
    "--only",
    "--catch-up-runs",
    "--catch-up-rows",
    "--out",
  ];
  const unknown = argv.filter(
    (arg, i) => arg.startsWith("--") && !known.has(arg) && !(i > 0 && takesValue.includes(argv[i - 1]!)),
  );
  if (unknown.length > 0) {
    throw new Error(`unknown option ${unknown.join(", ")}`);
  }
  const onlyAt = argv.indexOf("--only");
  const only = onlyAt < 0 ? null : argv[onlyAt + 1];
  if (only !== null && only !== "catch-up" && only !== "writes") {
    throw new Error(`--only takes "catch-up" or "writes", got ${only ?? "nothing"}`);
  }
  const catchUpRuns = numberOf("--catch-up-runs", 1);
  if (!Number.isInteger(catchUpRuns) || catchUpRuns < 1) {
    throw new Error("--catch-up-runs needs a whole number of at least 1");
  }
  const catchUpRows = numberOf("--catch-up-rows", 0);
  if (!Number.isInteger(catchUpRows)) {
    throw new Error("--catch-up-rows needs a whole number");
  }
  const rounds = (fallback: number): number => {
    const value = numberOf("--rounds", fallback);
    if (!Number.isInteger(value) || value < 1) {
      throw new Error("--rounds needs a whole number of at least 1");
    }
    return value;
  };
  const common = {
    etcd: !has("--no-etcd"),
    outDir,
    updateReadme: has("--update-readme"),
    catchUpRuns,
    catchUpRows,
    log: (line: string) => console.log(line),
  };
  if (only === "writes") {
    // The write targets alone (an A/B of a change in a few minutes): writes at 1 and 32 clients beside the
    // baseline, the floor and etcd, and nothing else.
    return {
      ...common,
      durationS: numberOf("--duration-s", 8),
      warmupS: numberOf("--warmup-s", 2),
      rounds: rounds(4),
      writeClients: [1, 32],
      readClients: [],
      readLevels: [],
      floorClients: [1, 32],
      failoverRuns: 0,
      catchUp: [],
      logCatchUpEntries: 0,
      idleS: 1,
      soakS: 0,
    };
  }
  if (only === "catch-up") {
    return {
      ...common,
      etcd: false,
      durationS: numberOf("--duration-s", 8),
      warmupS: numberOf("--warmup-s", 2),
      rounds: rounds(4),
      writeClients: [32],
      readClients: [],
      readLevels: [],
      floorClients: [],
      failoverRuns: 0,
      catchUp: ["log", "snapshot"],
      logCatchUpEntries: 800,
      idleS: 1,
      soakS: 0,
    };
  }
  if (has("--smoke")) {
    return {
      ...common,
      // 3 s points: under the whole test suite on two cores an election (a heartbeat starved past the election
      // timeout) took a 1 s point's every write once, and the smoke test then saw a cluster that took none.
      durationS: numberOf("--duration-s", 3),
      warmupS: numberOf("--warmup-s", 0.5),
      rounds: rounds(1),
      writeClients: [1],
      readClients: [1],
      readLevels: ["linearizable"],
      floorClients: [],
      failoverRuns: numberOf("--failover-runs", 1),
      catchUp: ["log"],
      logCatchUpEntries: 20,
      idleS: 1,
      soakS: 0,
    };
  }
  const quick = has("--quick");
  return {
    ...common,
    durationS: numberOf("--duration-s", quick ? 3 : 8),
    warmupS: numberOf("--warmup-s", quick ? 1 : 2),
    rounds: rounds(quick ? 3 : 4),
    writeClients: [1, 8, 32, 128],
    readClients: [1, 8, 32, 128],
    readLevels: READ_LEVELS,
    floorClients: [1, 32],
    failoverRuns: numberOf("--failover-runs", quick ? 3 : 5),
    catchUp: ["log", "snapshot"],
    logCatchUpEntries: quick ? 300 : 800,
    idleS: quick ? 3 : 10,
    soakS: numberOf("--soak-s", 0),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Request shapes: byte for byte the same for the cluster and the baseline.

const accepted = (body: string) => body.includes('"results"') && !body.includes('"error"');

export const WRITE_SHAPE: RequestShape = {
  method: "POST",
  path: "/db/execute",
  headers: AUTH_HEADERS,
  body: INSERT_BODY,
  accepts: accepted,
};

/** The replication floor's write: the same request on another path of the baseline's worker. */
const FLOOR_SHAPES = {
  all: { ...WRITE_SHAPE, path: "/fanout/execute" },
  majority: { ...WRITE_SHAPE, path: "/fanout/execute?ack=majority" },
} as const satisfies Record<string, RequestShape>;

function readShape(level: string): RequestShape {
  return {
    method: "GET",
    path: `/db/query?level=${level}&q=${encodeURIComponent(READ_SQL)}`,
    headers: AUTH_HEADERS,
    accepts: accepted,
  };
}

const LIVEZ_SHAPE: RequestShape = { method: "GET", path: "/livez", headers: {}, accepts: (body) => body === "ok\n" };

const ETCD_KEY = Buffer.from("bench").toString("base64");
const etcdAccepted = (body: string) => body.includes('"header"') && !body.includes('"error"');
const ETCD_PUT: RequestShape = {
  method: "POST",
  path: "/v3/kv/put",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ key: ETCD_KEY, value: Buffer.from("value-of-a-benchmark-write").toString("base64") }),
  accepts: etcdAccepted,
};
const etcdRange = (serializable: boolean): RequestShape => ({
  method: "POST",
  path: "/v3/kv/range",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify(serializable ? { key: ETCD_KEY, serializable: true } : { key: ETCD_KEY }),
  accepts: etcdAccepted,
});

// ---------------------------------------------------------------------------------------------------------------

export function electionTimeoutMs(): number {
  const toml = readFileSync(join(REPO_ROOT, "wrangler.toml"), "utf8");
  const match = /^ELECTION_TIMEOUT_MS\s*=\s*"(\d+)"/m.exec(toml);
  if (match === null) {
    throw new Error("wrangler.toml sets no ELECTION_TIMEOUT_MS");
  }
  return Number(match[1]);
}

export function summarize(runs: readonly FailoverRun[]): Summary | null {
  if (runs.length === 0) {
    return null;
  }
  const sorted = runs.map((r) => r.ms).sort((a, b) => a - b);
  const mid = sorted.length / 2;
  const medianMs = sorted.length % 2 === 1 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { medianMs, worstMs: sorted[sorted.length - 1]!, runs: runs.length };
}

async function expectOk(what: string, response: Promise<Response>): Promise<void> {
  const answer = await response;
  const text = await answer.text();
  if (answer.status !== 200 || text.includes('"error"')) {
    throw new Error(`${what} answered ${answer.status}: ${text.slice(0, 300)}`);
  }
}

/** Creates the benchmark's table through `path` (the floor's path creates it on all three copies). */
export async function prepareTable(baseUrl: string, path = "/db/execute"): Promise<void> {
  await expectOk(
    `creating the table on ${baseUrl}${path}`,
    fetch(`${baseUrl}${path}`, {
      method: "POST",
      headers: AUTH_HEADERS,
      body: JSON.stringify([
        "CREATE TABLE IF NOT EXISTS bench (id INTEGER PRIMARY KEY, v TEXT)",
        ["INSERT OR REPLACE INTO bench(id, v) VALUES(1, ?)", "the row every read reads"],
      ]),
      signal: AbortSignal.timeout(30_000),
    }),
  );
}

/** Copies the benchmark table's rows into it until it holds at least `rows`; returns how many it holds. */
export async function growTable(baseUrl: string, rows: number): Promise<number> {
  const countOf = async (): Promise<number> => {
    const answer = await call(baseUrl, `/db/query?q=${encodeURIComponent("SELECT count(*) FROM bench")}`);
    const parsed = JSON.parse(answer.text) as { results?: { values?: number[][] }[] };
    const count = parsed.results?.[0]?.values?.[0]?.[0];
    if (answer.status !== 200 || typeof count !== "number") {
      throw new Error(`counting the table's rows answered ${answer.status}: ${answer.text.slice(0, 300)}`);
    }
    return count;
  };
  // Each copy at most 10,000 rows: one entry stays well within the log's and the statement checker's bounds.
  for (let count = await countOf(), round = 0; count < rows; count = await countOf(), round++) {
    if (round >= 100) {
      throw new Error(`the table holds ${count} rows after 100 copies, short of ${rows}`);
    }
    const copy = Math.min(count, rows - count, 10_000);
    await expectOk(
      "growing the table",
      fetch(`${baseUrl}/db/execute`, {
        method: "POST",
        headers: AUTH_HEADERS,
        body: JSON.stringify([[`INSERT INTO bench(v) SELECT v FROM bench LIMIT ${copy}`]]),
        signal: AbortSignal.timeout(30_000),
      }),
    );
  }
  return countOf();
}

async function baselineRpcs(baseUrl: string, statsPath = "/bench/stats"): Promise<number> {
  const answer = await fetch(`${baseUrl}${statsPath}`, { signal: AbortSignal.timeout(10_000) });
  return ((await answer.json()) as { rpcsReceived: number }).rpcsReceived;
}

/**
 * Counts the RPCs an object (or the floor's three) received during each measured slice of a contender, through its
 * stats route (which counts no call to itself), for the RPCs per acknowledged write.
 */
function rpcsCounter(
  read: () => Promise<number>,
  slices: number,
): {
  readonly hooks: Pick<Contender, "beforeSlice" | "afterSlice">;
  readonly perWrite: (point: PointResult) => number | null;
} {
  let before = 0;
  let received = 0;
  return {
    hooks: {
      beforeSlice: async () => void (before = await read()),
      afterSlice: async () => void (received += (await read()) - before),
    },
    perWrite: (point) => perWriteTaken(received, point, slices),
  };
}

/**
 * `count` per write taken: answered, cut off in flight when a slice ended (a closed loop leaves up to one per
 * connection, and the system still handles it), and the drain request after each slice (measureInterleaved): the
 * counters are read after the drain, so all of those are in `count`.
 */
function perWriteTaken(count: number, point: PointResult, slices: number): number | null {
  const taken = point.ok + point.unansweredAtEnd + slices;
  return point.ok > 0 ? count / taken : null;
}

function addBilled(sum: BilledDelta | null, delta: BilledDelta): BilledDelta {
  if (sum === null) {
    return delta;
  }
  return {
    peerRpcs: sum.peerRpcs + delta.peerRpcs,
    workerRpcs: sum.workerRpcs + delta.workerRpcs,
    alarmWakeups: sum.alarmWakeups + delta.alarmWakeups,
    peerCallFailures: sum.peerCallFailures + delta.peerCallFailures,
    valid: sum.valid && delta.valid,
  };
}

const times = (value: number, base: number) => (base > 0 ? `${(value / base).toFixed(2)}×` : "n/a");

function describe(point: PointResult): string {
  return `${point.ratePerS.toFixed(0)}/s, p50 ${point.latencyMs.p50} ms, p99 ${point.latencyMs.p99} ms, errors ${point.errors.total}`;
}

export async function runBench(options: BenchOptions): Promise<BenchResults> {
  const log = options.log;
  const startedAt = new Date().toISOString();
  const loadAverageAtStart = loadavg()[0]!;
  const etcdVersion = options.etcd ? EtcdCluster.version() : null;
  if (options.etcd && etcdVersion === null) {
    log("etcd: no `etcd` on the PATH (Debian: apt-get install etcd-server); running without it");
  }
  const load = (extra: Partial<LoadOptions> = {}): LoadOptions => ({
    connections: 1,
    durationS: options.durationS,
    warmupS: options.warmupS,
    timeoutS: REQUEST_TIMEOUT_S,
    ...extra,
  });
  const interleaved = (connections: number): InterleavedOptions => ({
    connections,
    durationS: options.durationS,
    warmupS: options.warmupS,
    rounds: options.rounds,
    timeoutS: REQUEST_TIMEOUT_S,
  });

  log("starting the cluster, the baseline" + (etcdVersion === null ? "" : " and etcd"));
  const cluster = await WranglerServer.start("cluster");
  let baseline: WranglerServer | null = null;
  let etcd: EtcdCluster | null = null;
  try {
    baseline = await WranglerServer.start("baseline");
    if (etcdVersion !== null) {
      etcd = await EtcdCluster.start();
    }
    const clusterUrl = cluster.baseUrl;
    const baselineUrl = baseline.baseUrl;
    await settleWithSchema(clusterUrl);
    await prepareTable(baselineUrl);
    await prepareTable(baselineUrl, FLOOR_SHAPES.all.path);

    // Memory and billed work at rest.
    await collectGarbage(cluster.inspectorPort);
    await collectGarbage(baseline.inspectorPort);
    const clusterAtRest = await tryHeapUsage(cluster.inspectorPort);
    const baselineAtRest = await tryHeapUsage(baseline.inspectorPort);
    const idleBefore = billedCounters(await scrape(clusterUrl));
    await sleep(options.idleS * 1_000);
    const idleDelta = billedDelta(idleBefore, billedCounters(await scrape(clusterUrl)));
    const idle = {
      seconds: options.idleS,
      alarmWakeupsPerS: idleDelta.alarmWakeups / options.idleS,
      peerRpcsPerS: idleDelta.peerRpcs / options.idleS,
      valid: idleDelta.valid,
    };
    log(`idle: ${idle.alarmWakeupsPerS.toFixed(1)} alarm wake-ups/s, ${idle.peerRpcsPerS.toFixed(1)} peer RPCs/s`);

    // Writes: at each number of clients, the systems measured in turn, round after round (measureInterleaved).
    const writes: WritePoint[] = [];
    let clusterAt128: Heap | null = null;
    let baselineAt128: Heap | null = null;
    for (const connections of options.writeClients) {
      const baselineRpcsCounter = rpcsCounter(() => baselineRpcs(baselineUrl), options.rounds);
      const floorRpcsCounters = {
        all: rpcsCounter(() => baselineRpcs(baselineUrl, "/bench/fanout-stats"), options.rounds),
        majority: rpcsCounter(() => baselineRpcs(baselineUrl, "/bench/fanout-stats"), options.rounds),
      };
      // Summed over the cluster's slices (a holder: the slices' hooks assign it).
      const billedSlices: { sum: BilledDelta | null } = { sum: null };
      let countersBefore: BilledCounters | null = null;
      let windowStart = 0;
      let windowS = 0;
      const contenders: Contender[] = [
        {
          baseUrl: baselineUrl,
          shape: WRITE_SHAPE,
          ...baselineRpcsCounter.hooks,
          ...(connections === 128
            ? { atHalfway: async () => void (baselineAt128 = await tryHeapUsage(baseline!.inspectorPort)) }
            : {}),
        },
        { baseUrl: baselineUrl, shape: FLOOR_SHAPES.all, ...floorRpcsCounters.all.hooks },
        { baseUrl: baselineUrl, shape: FLOOR_SHAPES.majority, ...floorRpcsCounters.majority.hooks },
        {
          baseUrl: clusterUrl,
          shape: WRITE_SHAPE,
          beforeSlice: async () => {
            countersBefore = billedCounters(await scrape(clusterUrl));
            windowStart = performance.now();
          },
          afterSlice: async () => {
            const after = billedCounters(await scrape(clusterUrl));
            windowS += (performance.now() - windowStart) / 1_000;
            if (countersBefore === null) {
              return;
            }
            const delta = billedDelta(countersBefore, after);
            billedSlices.sum = addBilled(billedSlices.sum, delta);
          },
          ...(connections === 128
            ? { atHalfway: async () => void (clusterAt128 = await tryHeapUsage(cluster.inspectorPort)) }
            : {}),
        },
        ...(etcd === null ? [] : [{ baseUrl: etcd.clientUrls[0]!, shape: ETCD_PUT }]),
      ];
      const [basePoint, floorAll, floorMajority, clusterPoint, etcdPoint] = await measureInterleaved(
        contenders,
        interleaved(connections),
      );
      const rpcsPerWrite = baselineRpcsCounter.perWrite(basePoint!);
      log(`writes, ${connections} clients: baseline ${describe(basePoint!)}`);
      const replicationFloor = {
        all: { ...floorAll!, rpcsPerWrite: floorRpcsCounters.all.perWrite(floorAll!) },
        majority: {
          ...floorMajority!,
          rpcsPerWrite: floorRpcsCounters.majority.perWrite(floorMajority!),
        },
      };
      for (const ack of ["all", "majority"] as const) {
        const point = replicationFloor[ack];
        log(
          `writes, ${connections} clients: replication floor (${ack}) ${describe(point)}, ${times(point.ratePerS, basePoint!.ratePerS)} the baseline, ${point.rpcsPerWrite?.toFixed(2) ?? "n/a"} RPCs/write`,
        );
      }
      const delta = billedSlices.sum;
      // NaN when nothing was acknowledged, as the report expects.
      const perWrite = (count: number) => perWriteTaken(count, clusterPoint!, options.rounds) ?? Number.NaN;
      const total = delta === null ? 0 : delta.peerRpcs + delta.workerRpcs + delta.alarmWakeups;
      const billed =
        delta === null
          ? null
          : {
              peerRpcs: perWrite(delta.peerRpcs),
              workerRpcs: perWrite(delta.workerRpcs),
              alarmWakeups: perWrite(delta.alarmWakeups),
              total: perWrite(total),
              aboveIdle: perWrite(total - (idle.alarmWakeupsPerS + idle.peerRpcsPerS) * windowS),
              peerCallFailures: delta.peerCallFailures,
              windowS,
              valid: delta.valid,
            };
      log(
        `writes, ${connections} clients: durable-ha ${describe(clusterPoint!)}${billed === null ? "" : `, ${billed.total.toFixed(2)} billed requests/write`}; ${times(clusterPoint!.ratePerS, basePoint!.ratePerS)} the baseline, ${times(clusterPoint!.ratePerS, replicationFloor.all.ratePerS)} the floor (${times(clusterPoint!.ratePerS, replicationFloor.majority.ratePerS)} at majority)`,
      );
      if (etcdPoint !== undefined) {
        log(`writes, ${connections} clients: etcd ${describe(etcdPoint)}`);
      }
      writes.push({
        connections,
        baseline: { ...basePoint!, rpcsPerWrite },
        replicationFloor,
        cluster: { ...clusterPoint!, billed },
        ...(etcdPoint === undefined ? {} : { etcd: etcdPoint }),
      });
    }

    // Reads.
    const reads: ReadPoint[] = [];
    for (const connections of options.readClients) {
      const contenders: Contender[] = [
        { baseUrl: baselineUrl, shape: readShape("weak") },
        ...options.readLevels.map((level) => ({ baseUrl: clusterUrl, shape: readShape(level) })),
        ...(etcd === null
          ? []
          : [
              { baseUrl: etcd.clientUrls[0]!, shape: etcdRange(true) },
              { baseUrl: etcd.clientUrls[0]!, shape: etcdRange(false) },
            ]),
      ];
      const [basePoint, ...rest] = await measureInterleaved(contenders, interleaved(connections));
      log(`reads, ${connections} clients: baseline ${describe(basePoint!)}`);
      const clusterPoints: ReadPoint["cluster"] = {};
      options.readLevels.forEach((level, i) => {
        const point = rest[i]!;
        clusterPoints[level] = point;
        log(`reads, ${connections} clients: durable-ha ${level} ${describe(point)}`);
      });
      let etcdPoints: ReadPoint["etcd"];
      if (etcd !== null) {
        const [serializable, linearizable] = rest.slice(options.readLevels.length) as [PointResult, PointResult];
        etcdPoints = { serializable, linearizable };
        log(
          `reads, ${connections} clients: etcd serializable ${describe(serializable)}; linearizable ${describe(linearizable)}`,
        );
      }
      reads.push({
        connections,
        baseline: basePoint!,
        cluster: clusterPoints,
        ...(etcdPoints === undefined ? {} : { etcd: etcdPoints }),
      });
    }

    const floor: PointResult[] = [];
    for (const connections of options.floorClients) {
      const point = await measurePoint(clusterUrl, LIVEZ_SHAPE, load({ connections }));
      floor.push(point);
      log(`livez, ${connections} clients: ${describe(point)}`);
    }

    // Failover, crash and cut-off in turn.
    const failoverRuns: FailoverRun[] = [];
    for (let i = 0; i < options.failoverRuns; i++) {
      for (const kind of ["crash", "cut-off"] as const) {
        const run = await measureFailover(clusterUrl, kind);
        failoverRuns.push(run);
        log(
          `failover (${kind}) ${i + 1}/${options.failoverRuns}: ${run.ms.toFixed(0)} ms, ${run.oldLeader} -> ${run.newLeader ?? "none"}, ${run.failedWrites} failed writes${run.gaveUp ? ", GAVE UP" : ""}`,
        );
      }
    }

    // Catch-up of a follower that missed many writes.
    const fill = async (count: number) => {
      if (count <= 0) {
        return;
      }
      const result = await sendAmount(clusterUrl, WRITE_SHAPE, {
        connections: Math.min(FILL_CONNECTIONS, count),
        amount: count,
        timeoutS: REQUEST_TIMEOUT_S,
      });
      if (result.errors.total > 0) {
        log(`  (filling: ${result.errors.total} of ${count} writes failed)`);
      }
    };
    const catchUp: CatchUpRun[] = [];
    if (options.catchUpRows > 0) {
      const rows = await growTable(clusterUrl, options.catchUpRows);
      log(`catch-up: the table grown to ${rows} rows`);
    }
    const writeRateAt32 = writes.find((point) => point.connections === 32)?.cluster.ratePerS;
    const ratioText = (run: CatchUpRun) =>
      writeRateAt32 === undefined || writeRateAt32 <= 0
        ? ""
        : ` (${(run.entriesPerS / writeRateAt32).toFixed(2)}× the write rate at 32 clients)`;
    for (let i = 0; i < options.catchUpRuns; i++) {
      for (const via of options.catchUp) {
        const run = await measureCatchUp(clusterUrl, { via, write: fill, logEntries: options.logCatchUpEntries });
        catchUp.push(run);
        log(
          `catch-up by ${via}: ${run.entriesBehind} entries in ${run.totalMs.toFixed(0)} ms (first progress after ${run.firstProgressMs.toFixed(0)} ms): ${run.entriesPerS.toFixed(0)} entries/s${run.snapshotsInstalled > 0 ? `, ${run.snapshotsInstalled} snapshot(s)` : ""}${ratioText(run)}`,
        );
        if (run.phasesMs !== undefined) {
          const steps = CATCH_UP_PHASES.map((phase) => `${phase} ${run.phasesMs?.[phase]?.toFixed(0) ?? "-"}`);
          log(`  after the heal, in ms (first time each was seen): ${steps.join(", ")}`);
        }
      }
    }

    // Optional soak: writes at 32 clients, the heap sampled every tenth of the time.
    const soak: { atS: number; heap: Heap }[] = [];
    if (options.soakS > 0) {
      const stepS = options.soakS / 10;
      for (let step = 1; step <= 10; step++) {
        await measurePoint(clusterUrl, WRITE_SHAPE, load({ connections: 32, durationS: stepS, warmupS: 0 }));
        const heap = await tryHeapUsage(cluster.inspectorPort);
        soak.push({ atS: Math.round(step * stepS), heap });
        log(
          `soak ${Math.round(step * stepS)} s: heap ${"usedBytes" in heap ? `${(heap.usedBytes / 1024 / 1024).toFixed(1)} MB` : heap.unavailable}`,
        );
      }
    }

    await collectGarbage(cluster.inspectorPort);
    const clusterAfterRun = await tryHeapUsage(cluster.inspectorPort);
    const partial: Omit<BenchResults, "targets"> = {
      format: RESULTS_FORMAT,
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: {
        cpuModel: cpus()[0]?.model.trim() ?? "unknown",
        cpus: cpus().length,
        memoryGiB: totalmem() / 1024 ** 3,
        os: `${osType()} ${release()}`,
        node: process.versions.node,
        loadAverageAtStart,
        loadAverageAtEnd: loadavg()[0]!,
      },
      options: {
        durationS: options.durationS,
        warmupS: options.warmupS,
        rounds: options.rounds,
        failoverRuns: options.failoverRuns,
        logCatchUpEntries: options.logCatchUpEntries,
        soakS: options.soakS,
        requestTimeoutS: REQUEST_TIMEOUT_S,
        localObservability: localObservability(),
      },
      etcdVersion,
      electionTimeoutMs: electionTimeoutMs(),
      writes,
      reads,
      floor,
      failover: {
        runs: failoverRuns,
        crash: summarize(failoverRuns.filter((r) => r.kind === "crash")),
        cutOff: summarize(failoverRuns.filter((r) => r.kind === "cut-off")),
      },
      catchUp,
      idle,
      memory: {
        note: "under wrangler dev the worker and all three nodes share one isolate, so a single node's heap cannot be told apart; the cluster's figure is all of them together",
        cluster: { atRest: clusterAtRest, at128Clients: clusterAt128, afterRun: clusterAfterRun },
        baseline: { atRest: baselineAtRest, at128Clients: baselineAt128 },
        soak,
      },
    };
    return { ...partial, targets: targetChecks(partial) };
  } finally {
    await Promise.all([cluster.stop(), baseline?.stop(), etcd?.stop()]);
  }
}

/** The cluster elects a leader and takes the benchmark's table (an election may still be under way at first). */
export async function settleWithSchema(baseUrl: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await prepareTable(baseUrl);
      break;
    } catch (error) {
      if (Date.now() > deadline) {
        throw error;
      }
      await sleep(250);
    }
  }
  await settle(baseUrl);
}

export function writeResults(
  results: BenchResults,
  options: Pick<BenchOptions, "outDir" | "updateReadme" | "log">,
): string {
  const table = markdownReport(results);
  mkdirSync(options.outDir, { recursive: true });
  writeFileSync(join(options.outDir, "latest.json"), JSON.stringify(results, null, 2) + "\n");
  writeFileSync(join(options.outDir, "latest.md"), table);
  writeFileSync(join(options.outDir, "latest.svg"), svgChart(results));
  if (options.updateReadme) {
    const readmePath = join(REPO_ROOT, "README.md");
    const updated = replaceReadmeTable(readFileSync(readmePath, "utf8"), table);
    if (updated === null) {
      options.log("README.md has no <!-- bench:start --> / <!-- bench:end --> markers: not updated");
    } else {
      writeFileSync(readmePath, updated);
    }
  }
  return table;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const options = parseOptions(process.argv.slice(2));
  runBench(options)
    .then((results) => {
      const table = writeResults(results, options);
      console.log(`\n${table}`);
      console.log(`results: ${join(options.outDir, "latest.json")}, latest.md, latest.svg`);
    })
    .catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
}
