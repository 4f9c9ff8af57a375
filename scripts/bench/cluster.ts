// What the benchmark asks of the running cluster besides load: its metrics (billed work, indexes), its leader, the
// test-only fault hook (cut a node off, crash it), and the measurements built on them: failover and catch-up.
import { parseMetrics, type Sample } from "../lib/metrics-text";
import { pollUntil } from "../lib/processes";

export const TOKEN = "dev-admin-token";
export const NODES = ["n1", "n2", "n3"] as const;
/** The log compacts every this many applied entries (src/objects/config.ts, DEFAULT_SNAPSHOT_THRESHOLD_ENTRIES). */
export const SNAPSHOT_THRESHOLD_ENTRIES = 1000;
const CALL_TIMEOUT_MS = 15_000;
const SETTLE_TIMEOUT_MS = 60_000;
/** A failover not over by then is reported as this long (and flagged), rather than hanging the benchmark. */
const FAILOVER_GIVE_UP_MS = 60_000;
/** The server's deadline for each write the failover probe sends; the client waits a little longer. */
const PROBE_SERVER_TIMEOUT = "5s";
const PROBE_CLIENT_TIMEOUT_MS = 7_000;

export const AUTH_HEADERS: Record<string, string> = {
  Authorization: `Bearer ${TOKEN}`,
  "Content-Type": "application/json",
};

export async function call(
  baseUrl: string,
  path: string,
  init: { method?: string; body?: unknown; timeoutMs?: number } = {},
): Promise<{ status: number; text: string; headers: Headers }> {
  const response = await fetch(`${baseUrl}${path}`, {
    method: init.method ?? "GET",
    headers: AUTH_HEADERS,
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    signal: AbortSignal.timeout(init.timeoutMs ?? CALL_TIMEOUT_MS),
  });
  return { status: response.status, text: await response.text(), headers: response.headers };
}

// ---------------------------------------------------------------------------------------------------------------
// Metrics

export async function scrape(baseUrl: string): Promise<Sample[]> {
  const answer = await call(baseUrl, "/metrics");
  if (answer.status !== 200) {
    throw new Error(`GET /metrics answered ${answer.status}: ${answer.text.slice(0, 200)}`);
  }
  return parseMetrics(answer.text);
}

/** The value of `name` on `node` (labels must match too), or undefined. */
export function nodeValue(
  samples: readonly Sample[],
  name: string,
  node: string,
  labels: Record<string, string> = {},
): number | undefined {
  return samples.find(
    (s) => s.name === name && s.labels["node"] === node && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )?.value;
}

/** Billed work so far, summed over the nodes, and when each node's counters started (to spot a reset). */
export interface BilledCounters {
  readonly peerRpcs: number;
  readonly workerRpcs: number;
  readonly alarmWakeups: number;
  /** Calls to peers that failed or were refused (timeouts under load show here). */
  readonly peerCallFailures: number;
  readonly startTimes: Record<string, number>;
}

export function billedCounters(samples: readonly Sample[]): BilledCounters {
  const sum = (name: string, labels: Record<string, string> = {}) =>
    NODES.reduce((total, node) => total + (nodeValue(samples, name, node, labels) ?? 0), 0);
  return {
    peerRpcs: sum("durable_ha_rpcs_received_total", { kind: "peer" }),
    workerRpcs: sum("durable_ha_rpcs_received_total", { kind: "worker" }),
    alarmWakeups: sum("durable_ha_alarm_wakeups_total"),
    peerCallFailures: samples
      .filter((s) => s.name === "durable_ha_rpc_failures_total")
      .reduce((total, s) => total + s.value, 0),
    startTimes: Object.fromEntries(
      NODES.map((node) => [node, nodeValue(samples, "durable_ha_node_start_time_seconds", node) ?? Number.NaN]),
    ),
  };
}

export interface BilledDelta {
  readonly peerRpcs: number;
  /** Worker-to-node calls, less the ones the scrapes themselves made (one per node per scrape). */
  readonly workerRpcs: number;
  readonly alarmWakeups: number;
  readonly peerCallFailures: number;
  /** False when a node's counters were reset in between (it restarted): the delta is then not trustworthy. */
  readonly valid: boolean;
}

export function billedDelta(before: BilledCounters, after: BilledCounters): BilledDelta {
  const valid = NODES.every(
    (node) => before.startTimes[node] === after.startTimes[node] && Number.isFinite(after.startTimes[node]),
  );
  return {
    peerRpcs: after.peerRpcs - before.peerRpcs,
    workerRpcs: after.workerRpcs - before.workerRpcs - NODES.length,
    alarmWakeups: after.alarmWakeups - before.alarmWakeups,
    peerCallFailures: after.peerCallFailures - before.peerCallFailures,
    valid,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Leadership and faults

export async function currentLeader(baseUrl: string): Promise<string | undefined> {
  const answer = await call(baseUrl, "/leader", { timeoutMs: 5_000 }).catch(() => null);
  if (answer?.status !== 200) {
    return undefined;
  }
  return answer.headers.get("X-DHA-Node") ?? undefined;
}

async function setFaults(baseUrl: string, node: string, rules: unknown): Promise<void> {
  const answer = await call(baseUrl, `/_test/nodes/${node}/faults`, { method: "POST", body: rules });
  if (answer.status !== 200) {
    throw new Error(`setting faults on ${node} answered ${answer.status}: ${answer.text.slice(0, 200)}`);
  }
}

/** Cuts `victim` off from every other node, both ways; the worker still reaches it. */
export async function isolate(baseUrl: string, victim: string): Promise<void> {
  await Promise.all(
    NODES.map((node) =>
      setFaults(baseUrl, node, {
        partitions: NODES.filter((o) => o !== node && (o === victim || node === victim)).map((o) => ({
          from: node,
          to: o,
          bothWays: true,
        })),
      }),
    ),
  );
}

export async function healAll(baseUrl: string): Promise<void> {
  await Promise.all(NODES.map((node) => setFaults(baseUrl, node, {})));
}

export async function crash(baseUrl: string, node: string): Promise<void> {
  const answer = await call(baseUrl, `/_test/nodes/${node}/crash`, { method: "POST", body: {} });
  if (answer.status !== 200) {
    throw new Error(`crashing ${node} answered ${answer.status}: ${answer.text.slice(0, 200)}`);
  }
}

export const INSERT_BODY = JSON.stringify([["INSERT INTO bench(v) VALUES(?)", "value-of-a-benchmark-write"]]);

/** One write of the failover probe: when it was sent (epoch ms), how long it took, and how it was answered. */
export interface ProbeWrite {
  readonly sentAtMs: number;
  readonly ms: number;
  /** The node that acknowledged it (X-DHA-Node), or null when it failed. */
  readonly node: string | null;
  /** The HTTP status, or null when no answer came (the client's deadline, a refused connection). */
  readonly status: number | null;
  /** X-DHA-Error-Code of a failure. */
  readonly code: string | null;
}

/** One write with the failover probe's deadline, and how it was answered. */
export async function writeAttempt(baseUrl: string, timeoutMs = PROBE_CLIENT_TIMEOUT_MS): Promise<ProbeWrite> {
  const sentAtMs = Date.now();
  const started = performance.now();
  const answer = await fetch(`${baseUrl}/db/execute?timeout=${PROBE_SERVER_TIMEOUT}`, {
    method: "POST",
    headers: AUTH_HEADERS,
    body: INSERT_BODY,
    signal: AbortSignal.timeout(timeoutMs),
  }).catch(() => null);
  const text = answer === null ? "" : await answer.text().catch(() => "");
  const ok = answer !== null && answer.status === 200 && !text.includes('"error"');
  return {
    sentAtMs,
    ms: performance.now() - started,
    node: ok ? (answer.headers.get("X-DHA-Node") ?? "?") : null,
    status: answer?.status ?? null,
    code: ok ? null : (answer?.headers.get("X-DHA-Error-Code") ?? (answer === null ? "NO_ANSWER" : "?")),
  };
}

/** One write with the failover probe's deadline: the node that acknowledged it, or null when it failed. */
export async function writeOnce(baseUrl: string, timeoutMs = PROBE_CLIENT_TIMEOUT_MS): Promise<string | null> {
  return (await writeAttempt(baseUrl, timeoutMs)).node;
}

/** A leader answers, a write goes through, and every node has applied everything the leader has. */
export async function settle(baseUrl: string): Promise<string> {
  return pollUntil(
    "the cluster to settle (a leader, a write, every node applied)",
    { timeoutMs: SETTLE_TIMEOUT_MS },
    async () => {
      const leader = await currentLeader(baseUrl);
      if (leader === undefined || (await writeOnce(baseUrl)) === null) {
        return undefined;
      }
      const samples = await scrape(baseUrl).catch(() => null);
      if (samples === null) {
        return undefined;
      }
      const applied = NODES.map((node) => nodeValue(samples, "durable_ha_applied_index", node));
      const leaderApplied = nodeValue(samples, "durable_ha_applied_index", leader);
      return applied.every((a) => a !== undefined && a === leaderApplied) ? leader : undefined;
    },
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Failover

export interface FailoverRun {
  readonly kind: "crash" | "cut-off";
  readonly oldLeader: string;
  /** The node that acknowledged the first write (X-DHA-Node). */
  readonly newLeader: string | null;
  /** From the fault to the first acknowledged write sent after it. */
  readonly ms: number;
  /** Writes the probe sent that failed before the first one went through. */
  readonly failedWrites: number;
  readonly gaveUp: boolean;
  /** When the fault was injected (epoch ms), and every write the probe sent after it. */
  readonly faultAtMs: number;
  readonly writes: readonly ProbeWrite[];
}

/**
 * One failover: with the cluster settled, crash the leader (or cut it off from its peers, the worker still reaching
 * it), then one client writes in a closed loop; the time is from the fault to the first write acknowledged.
 */
export async function measureFailover(baseUrl: string, kind: "crash" | "cut-off"): Promise<FailoverRun> {
  const oldLeader = await settle(baseUrl);
  const faultAtMs = Date.now();
  const faultAt = performance.now();
  if (kind === "crash") {
    await crash(baseUrl, oldLeader);
  } else {
    await isolate(baseUrl, oldLeader);
  }
  let failedWrites = 0;
  let ackedAt: number | null = null;
  let newLeader: string | null = null;
  const writes: ProbeWrite[] = [];
  while (performance.now() - faultAt < FAILOVER_GIVE_UP_MS) {
    const write = await writeAttempt(baseUrl);
    writes.push(write);
    newLeader = write.node;
    if (newLeader !== null) {
      ackedAt = performance.now();
      break;
    }
    failedWrites += 1;
  }
  if (kind === "cut-off") {
    await healAll(baseUrl);
  }
  return {
    kind,
    oldLeader,
    newLeader,
    ms: (ackedAt ?? performance.now()) - faultAt,
    failedWrites,
    gaveUp: ackedAt === null,
    faultAtMs,
    writes,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Catch-up

export interface CatchUpRun {
  readonly via: "log" | "snapshot";
  readonly follower: string;
  /** Entries the follower was missing when it was let back in. */
  readonly entriesBehind: number;
  /** From healing the partition to the follower's first progress (reconnection, probing). */
  readonly firstProgressMs: number;
  /** From healing to the follower having applied all it missed. */
  readonly totalMs: number;
  /** entriesBehind / totalMs, per second. */
  readonly entriesPerS: number;
  readonly snapshotsInstalled: number;
  readonly snapshotBytes: number;
  /** When healed: the follower's applied index and the leader's first log index (log catch-up needs first ≤ applied + 1). */
  readonly followerAppliedAtHeal: number;
  readonly leaderFirstLogIndexAtHeal: number;
  /**
   * When each step of a catch-up by snapshot first happened after the heal, in ms (from the nodes' event feed, whose
   * times are the nodes' clocks: good to a few ms on one machine); absent when it did not happen or was not seen.
   */
  readonly phasesMs?: Partial<Record<CatchUpPhase, number>>;
}

/** The steps of a catch-up by snapshot, in the order they happen, each named by the feed event that marks it. */
export const CATCH_UP_PHASES = [
  "imageCheckpointProposed",
  "snapshotImageVerified",
  "snapshotSending",
  "snapshotInstalled",
  "snapshotSent",
] as const;
export type CatchUpPhase = (typeof CATCH_UP_PHASES)[number];

interface FeedEvent {
  readonly timeMs: number;
  readonly node: string;
  readonly event: string;
  readonly details: Record<string, unknown>;
}

/** The first time each catch-up phase happened for `follower` since `sinceMs` (wall clock), relative to it. */
async function catchUpPhases(
  baseUrl: string,
  options: { readonly sinceMs: number; readonly leader: string; readonly follower: string },
): Promise<Partial<Record<CatchUpPhase, number>>> {
  const answer = await call(baseUrl, `/api/v1/cluster/events?limit=1000&since=${options.sinceMs}`);
  if (answer.status !== 200) {
    return {};
  }
  const { events } = JSON.parse(answer.text) as { events: FeedEvent[] };
  const concerns = (e: FeedEvent): boolean =>
    e.event.startsWith("imageCheckpoint") || e.event.startsWith("snapshotImage")
      ? e.node === options.leader
      : e.event === "snapshotInstalled"
        ? e.node === options.follower
        : e.node === options.leader && e.details.peer === options.follower;
  const phases: Partial<Record<CatchUpPhase, number>> = {};
  for (const event of events) {
    const phase = CATCH_UP_PHASES.find((name) => name === event.event);
    if (phase !== undefined && phases[phase] === undefined && concerns(event)) {
      phases[phase] = event.timeMs - options.sinceMs;
    }
  }
  return phases;
}

const CATCH_UP_TIMEOUT_MS = 120_000;
const CATCH_UP_POLL_MS = 50;

/**
 * Cuts a follower off, lets `fill` write while it is away, heals, and times the follower's catch-up by polling
 * its applied index in GET /metrics (every 50 ms, so times are good to about that).
 */
export async function measureCatchUp(
  baseUrl: string,
  options: {
    readonly via: "log" | "snapshot";
    /** Writes `count` entries (the benchmark uses its load client with 32 connections). */
    readonly write: (count: number) => Promise<void>;
    /** Entries to miss, for catch-up by log (kept below the compaction threshold). */
    readonly logEntries: number;
    /** Runs just before the heal (the profiler starts there). */
    readonly beforeHeal?: () => Promise<void>;
  },
): Promise<CatchUpRun> {
  let leader = await settle(baseUrl);
  let samples = await scrape(baseUrl);
  // Catch-up by log: the leader must not compact past the follower while it is away. Let it compact first when the
  // entries to miss would cross its next compaction (and look again: leadership may have moved meanwhile).
  for (let round = 0; options.via === "log" && round < 3; round++) {
    const leaderApplied = nodeValue(samples, "durable_ha_applied_index", leader) ?? 0;
    const snapshotIndex = (nodeValue(samples, "durable_ha_first_log_index", leader) ?? 1) - 1;
    const room = snapshotIndex + SNAPSHOT_THRESHOLD_ENTRIES - leaderApplied;
    if (room > options.logEntries + 20) {
      break;
    }
    await options.write(room + 5);
    leader = await settle(baseUrl);
    samples = await scrape(baseUrl);
  }
  const follower = NODES.find((n) => n !== leader)!;
  const followerStart = nodeValue(samples, "durable_ha_applied_index", follower) ?? 0;
  const installedBefore = nodeValue(samples, "durable_ha_snapshots_installed_total", follower) ?? 0;
  const installedBytesBefore = nodeValue(samples, "durable_ha_snapshot_installed_bytes_total", follower) ?? 0;
  await isolate(baseUrl, follower);
  if (options.via === "log") {
    await options.write(options.logEntries);
  } else {
    // Enough that the leader compacts its log past everything the follower has.
    await options.write(SNAPSHOT_THRESHOLD_ENTRIES + 20);
    const first = nodeValue(await scrape(baseUrl), "durable_ha_first_log_index", leader) ?? 0;
    if (first <= followerStart + 1) {
      await options.write(SNAPSHOT_THRESHOLD_ENTRIES);
    }
  }
  samples = await scrape(baseUrl);
  const target = nodeValue(samples, "durable_ha_commit_index", leader) ?? 0;
  const behindFrom = nodeValue(samples, "durable_ha_applied_index", follower) ?? followerStart;
  const leaderFirst = nodeValue(samples, "durable_ha_first_log_index", leader) ?? 0;
  await options.beforeHeal?.();
  const healedAt = performance.now();
  const healedAtWallMs = Date.now();
  await healAll(baseUrl);
  let firstProgressAt: number | null = null;
  const doneAt = await pollUntil(
    `${follower} to catch up to ${target}`,
    { timeoutMs: CATCH_UP_TIMEOUT_MS, intervalMs: CATCH_UP_POLL_MS },
    async () => {
      const now = await scrape(baseUrl).catch(() => null);
      if (now === null) {
        return undefined;
      }
      const applied = nodeValue(now, "durable_ha_applied_index", follower) ?? 0;
      if (applied > behindFrom && firstProgressAt === null) {
        firstProgressAt = performance.now();
      }
      if (applied < target) {
        return undefined;
      }
      samples = now;
      return performance.now();
    },
  );
  const entriesBehind = target - behindFrom;
  const totalMs = doneAt - healedAt;
  const phasesMs =
    options.via === "snapshot"
      ? await catchUpPhases(baseUrl, { sinceMs: healedAtWallMs, leader, follower }).catch(() => ({}))
      : undefined;
  return {
    ...(phasesMs === undefined ? {} : { phasesMs }),
    via: options.via,
    follower,
    entriesBehind,
    firstProgressMs: (firstProgressAt ?? doneAt) - healedAt,
    totalMs,
    entriesPerS: totalMs > 0 ? (entriesBehind * 1_000) / totalMs : 0,
    snapshotsInstalled: (nodeValue(samples, "durable_ha_snapshots_installed_total", follower) ?? 0) - installedBefore,
    snapshotBytes:
      (nodeValue(samples, "durable_ha_snapshot_installed_bytes_total", follower) ?? 0) - installedBytesBefore,
    followerAppliedAtHeal: behindFrom,
    leaderFirstLogIndexAtHeal: leaderFirst,
  };
}
