// Helpers for the HA scenario suite (issue #6): a ledger of every write a client sent and what became of it, a
// client that writes with retries the way an rqlite client would (same request id on every retry, following
// NOT_LEADER), a load of several such clients, the final check every scenario ends with (one schema and one data set
// on every node, every acknowledged write present exactly once), and an HTTP harness on the real nodes.
import { env } from "cloudflare:test";
import { expect, onTestFinished } from "vitest";
import type { ClusterNodeRpc, NodeErrorCode, NodeResult } from "../../../src/objects/api";
import { SeededRandom } from "../../../src/replication/random";
import type { SqlRequest, Statement, StatementResult } from "../../../src/shared/sql";
import { createApp, type AppOptions } from "../../../src/worker/app";
import type { AppEnv } from "../../../src/worker/config";
import { durableObjectDirectory, type NodeDirectory } from "../../../src/worker/directory";
import { LeaderCache } from "../../../src/worker/routing/leader-cache";
import { type TestCluster, type TestClusterOptions, waitFor } from "./cluster";

// ---------------------------------------------------------------------------------------------------------------
// Seeds

/**
 * To replay a failing run's choices, put its printed seed here. The real runtime's timing is not deterministic, so a
 * seed replays the scenario's choices (which node, which fault, when), not the interleaving.
 */
const REPLAY_SEED: number | null = null;

/** A seed for a scenario's random choices, printed so that a failing run's choices can be replayed. */
export function scenarioSeed(scenario: string): number {
  const seed = REPLAY_SEED ?? Date.now() % 2_147_483_647;
  console.log(`[ha] ${scenario}: seed ${seed}`);
  return seed;
}

/**
 * A promise that settles after `ms`: client think time and backoff, and the seeded jitter or stagger a scenario is
 * made of. Never used to wait for a state: those waits poll a condition with a deadline (waitFor).
 */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** Rejects after `ms` if `promise` has not settled: every RPC a scenario makes is bounded. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new GuardTimeout(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, guard]);
  } finally {
    if (timer !== undefined) {
      clearTimeout(timer);
    }
  }
}

export class GuardTimeout extends Error {
  override readonly name = "GuardTimeout";
}

// ---------------------------------------------------------------------------------------------------------------
// The ledger of writes

/** The table every scenario writes to. `k` is deliberately not unique: a write applied twice shows up as two rows. */
export const LEDGER_TABLE = "ledger";
export const CREATE_LEDGER_TABLE = `CREATE TABLE ${LEDGER_TABLE} (id INTEGER PRIMARY KEY, k TEXT NOT NULL, v TEXT NOT NULL)`;

/** acked: the client got a success. unknown: it may or may not have been applied. refused: it surely was not. */
export type WriteFate = "acked" | "unknown" | "refused";

interface LedgerEntry {
  readonly value: string;
  fate: WriteFate;
  detail: string;
}

/** Every write sent to the ledger table, with its fate as the client saw it. Keys are unique. */
export class Ledger {
  private readonly entries = new Map<string, LedgerEntry>();

  /** The statement that writes `key`; use it for every write the ledger tracks. */
  static insert(key: string, value: string): { sql: string; params: string[] } {
    return { sql: `INSERT INTO ${LEDGER_TABLE} (k, v) VALUES (?, ?)`, params: [key, value] };
  }

  record(key: string, value: string, fate: WriteFate, detail = ""): void {
    const existing = this.entries.get(key);
    if (existing !== undefined && existing.value !== value) {
      throw new Error(`ledger: key ${key} was written with two values`);
    }
    // An acknowledgement wins over an earlier unknown outcome of the same request id.
    if (existing !== undefined && existing.fate === "acked") {
      return;
    }
    this.entries.set(key, { value, fate, detail });
  }

  keys(fate: WriteFate): string[] {
    return [...this.entries].filter(([, entry]) => entry.fate === fate).map(([key]) => key);
  }

  count(fate: WriteFate): number {
    let n = 0;
    for (const entry of this.entries.values()) {
      if (entry.fate === fate) {
        n++;
      }
    }
    return n;
  }

  summary(): string {
    return `acked ${this.count("acked")}, unknown ${this.count("unknown")}, refused ${this.count("refused")}`;
  }

  /**
   * Checks one node's ledger table: every acknowledged write present exactly once with its value, every unknown one
   * at most once, every refused one absent, nothing that was never sent. Returns the problems found.
   */
  async problemsOn(cluster: TestCluster, node: string): Promise<string[]> {
    const result = await cluster.queryLocal(node, `SELECT k, count(*), min(v), max(v) FROM ${LEDGER_TABLE} GROUP BY k`);
    if (result.error !== undefined) {
      return [`${node}: reading the ledger failed: ${result.error}`];
    }
    const seen = new Map<string, { count: number; values: [unknown, unknown] }>();
    for (const row of result.rows ?? []) {
      seen.set(String(row[0]), { count: Number(row[1]), values: [row[2], row[3]] });
    }
    const problems: string[] = [];
    for (const [key, entry] of this.entries) {
      const found = seen.get(key);
      if (entry.fate === "acked" && found === undefined) {
        problems.push(`${node}: acknowledged write ${key} is missing`);
      }
      if (entry.fate === "refused" && found !== undefined) {
        problems.push(`${node}: refused write ${key} was applied (${entry.detail})`);
      }
      if (found !== undefined && found.count !== 1) {
        problems.push(`${node}: write ${key} (${entry.fate}) was applied ${found.count} times`);
      }
      if (found !== undefined && (found.values[0] !== entry.value || found.values[1] !== entry.value)) {
        problems.push(
          `${node}: write ${key} holds ${String(found.values[0])}/${String(found.values[1])}, not ${entry.value}`,
        );
      }
    }
    for (const key of seen.keys()) {
      if (!this.entries.has(key)) {
        problems.push(`${node}: row ${key} was never written by any client`);
      }
    }
    return problems;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// A client writing through the node RPC

export type WriteOutcome =
  | {
      readonly ok: true;
      readonly node: string;
      readonly raftIndex: number;
      readonly results: readonly StatementResult[];
      readonly attempts: number;
      readonly elapsedMs: number;
    }
  | {
      readonly ok: false;
      readonly code: string;
      readonly message: string;
      /** True once any attempt may have reached a leader that proposed it (TIMEOUT, a lost RPC). */
      readonly maybeApplied: boolean;
      readonly attempts: number;
      readonly elapsedMs: number;
    };

export interface WriterOptions {
  /** The node the client talks to first. */
  readonly startAt: string;
  /** The nodes the client may try (defaults to the cluster's configured nodes); read at every rotation. */
  readonly members?: () => readonly string[];
  /** The node's own wait for commit, per attempt. */
  readonly attemptTimeoutMs?: number;
  readonly random: SeededRandom;
  /** Every error code a node answered, counted (the scenarios assert which ones may appear). */
  readonly errors?: Map<string, number>;
}

const WRITER_LIMITS = {
  maxAttempts: 200,
  baseBackoffMs: 10,
  maxBackoffMs: 200,
  /** Beyond the node's own timeout, how long an RPC may take before the client stops waiting for it. */
  rpcGuardMarginMs: 3_000,
  leaderWaitMs: 1_000,
} as const;

/** An rqlite-style client on the node RPC: same request id on every retry, follows NOT_LEADER, bounded by a deadline. */
export class RpcWriter {
  private target: string;
  private readonly attemptTimeoutMs: number;

  constructor(
    private readonly cluster: TestCluster,
    private readonly options: WriterOptions,
  ) {
    this.target = options.startAt;
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? 1_000;
  }

  async write(request: SqlRequest, options: { deadlineMs: number }): Promise<WriteOutcome> {
    const startedAt = Date.now();
    const deadlineAt = startedAt + options.deadlineMs;
    let attempts = 0;
    let failures = 0;
    let hops = 0;
    let maybeApplied = false;
    let last: { code: string; message: string } = { code: "NONE", message: "no attempt was made before the deadline" };
    while (Date.now() < deadlineAt && attempts < WRITER_LIMITS.maxAttempts) {
      attempts++;
      const target = this.target;
      const timeoutMs = Math.max(1, Math.min(this.attemptTimeoutMs, deadlineAt - Date.now()));
      let answer: NodeResult<{ results: readonly StatementResult[]; raftIndex: number }>;
      try {
        answer = await within(
          this.rpc(target).execute({ ...this.cluster.address(target), request, timeoutMs }),
          timeoutMs + WRITER_LIMITS.rpcGuardMarginMs,
          `execute on ${target}`,
        );
      } catch (err) {
        // The call may have reached the leader before it failed: from here on the outcome is unknown.
        maybeApplied = true;
        last = { code: "TRANSPORT", message: err instanceof Error ? err.message : String(err) };
        this.count("TRANSPORT");
        this.target = this.nextAfter(target);
        await this.backoff(++failures, deadlineAt);
        continue;
      }
      if (answer.ok) {
        return {
          ok: true,
          node: target,
          raftIndex: answer.value.raftIndex,
          results: answer.value.results,
          attempts,
          elapsedMs: Date.now() - startedAt,
        };
      }
      const error = answer.error;
      last = { code: error.code, message: error.message };
      this.count(error.code);
      switch (error.code as NodeErrorCode) {
        case "NOT_LEADER":
          if (error.leader !== undefined && error.leader !== null && error.leader !== target) {
            this.target = error.leader;
            // Hints can chase each other while leadership moves: after a round of hops, slow down.
            if (++hops % Math.max(1, this.members().length) === 0) {
              await this.backoff(++failures, deadlineAt);
            }
          } else {
            await this.followElection(target, deadlineAt);
          }
          continue;
        case "NO_LEADER":
          await this.followElection(target, deadlineAt);
          continue;
        case "TIMEOUT":
        case "OUTCOME_UNKNOWN":
          // Proposed but not applied in time (or the node lost track of it): retry the same id (applied at most once).
          maybeApplied = true;
          await this.backoff(++failures, deadlineAt);
          continue;
        case "QUEUE_FULL":
        case "TRANSFER_IN_PROGRESS":
        case "CONFIG_CHANGE_IN_PROGRESS":
        case "STALE":
          await this.backoff(++failures, deadlineAt);
          continue;
        case "NOT_MEMBER":
          this.target = this.nextAfter(target);
          await this.backoff(++failures, deadlineAt);
          continue;
        case "INTERNAL":
          // A server error: like an HTTP 500, worth one more try elsewhere; the scenarios assert none happen.
          maybeApplied = true;
          this.target = this.nextAfter(target);
          await this.backoff(++failures, deadlineAt);
          continue;
        case "INVALID_REQUEST":
        case "PROTOCOL":
          return {
            ok: false,
            code: error.code,
            message: error.message,
            maybeApplied,
            attempts,
            elapsedMs: Date.now() - startedAt,
          };
      }
    }
    return {
      ok: false,
      code: last.code,
      message: last.message,
      maybeApplied,
      attempts,
      elapsedMs: Date.now() - startedAt,
    };
  }

  /** Asks `node` (bounded) who leads; goes there, or to the next node if it cannot tell. */
  private async followElection(node: string, deadlineAt: number): Promise<void> {
    const waitMs = Math.min(WRITER_LIMITS.leaderWaitMs, deadlineAt - Date.now());
    if (waitMs <= 0) {
      return;
    }
    try {
      const answer = await within(
        this.rpc(node).waitForLeader({ ...this.cluster.address(node), timeoutMs: waitMs }),
        waitMs + WRITER_LIMITS.rpcGuardMarginMs,
        `waitForLeader on ${node}`,
      );
      if (answer.ok && answer.value.leader !== node) {
        this.target = answer.value.leader;
        return;
      }
      if (answer.ok) {
        // The node believes it leads and yet refused: give it a moment.
        await pause(WRITER_LIMITS.baseBackoffMs);
        return;
      }
    } catch {
      // Unreachable: try another node.
    }
    this.target = this.nextAfter(node);
  }

  /** The node's RPC surface, typed as the API declares it (the stub's own type is a union of projections). */
  private rpc(node: string): ClusterNodeRpc {
    return this.cluster.stub(node) as unknown as ClusterNodeRpc;
  }

  private members(): readonly string[] {
    return this.options.members?.() ?? this.cluster.names;
  }

  private nextAfter(node: string): string {
    const members = this.members();
    const at = members.indexOf(node);
    return members[(at + 1) % members.length] ?? node;
  }

  private async backoff(failures: number, deadlineAt: number): Promise<void> {
    const ceilingMs = Math.min(
      WRITER_LIMITS.maxBackoffMs,
      WRITER_LIMITS.baseBackoffMs * 2 ** Math.min(failures - 1, 20),
    );
    await pause(Math.min(this.options.random.nextFloat() * ceilingMs, deadlineAt - Date.now()));
  }

  private count(code: string): void {
    const errors = this.options.errors;
    if (errors !== undefined) {
      errors.set(code, (errors.get(code) ?? 0) + 1);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Load: several clients writing ledger rows until stopped

/** Anything that writes one request with retries until its deadline: the RPC client or the HTTP client. */
export interface Writer {
  write(request: SqlRequest, options: { deadlineMs: number }): Promise<WriteOutcome>;
}

export interface LoadOptions {
  readonly cluster: TestCluster;
  readonly ledger: Ledger;
  readonly random: SeededRandom;
  /** Keys are `${prefix}-c${client}-${seq}`: unique per scenario. */
  readonly prefix: string;
  readonly clients: number;
  /** Where client i starts (default: round robin over the configured nodes). */
  readonly startAt?: (client: number) => string;
  readonly members?: () => readonly string[];
  /** Per write, retries included. */
  readonly writeDeadlineMs?: number;
  readonly attemptTimeoutMs?: number;
  /** Pause before each write (default 2 ms). */
  readonly thinkMs?: number;
  /** Upper bound on the writes of all clients together (the load also stops when asked). */
  readonly totalWrites?: number;
  /** The client of client i (default: an RpcWriter starting at startAt(i)). */
  readonly writerFor?: (
    client: number,
    options: { startAt: string; random: SeededRandom; errors: Map<string, number> },
  ) => Writer;
  /** The request for one key (default: the ledger insert alone). It must contain Ledger.insert(key, value). */
  readonly request?: (key: string, value: string) => { statements: readonly Statement[]; transaction: boolean };
}

/** Error codes a write may see while the cluster fails over; anything else is a finding. */
export const EXPECTED_WRITE_ERRORS = new Set([
  "NOT_LEADER",
  "NO_LEADER",
  "TIMEOUT",
  "QUEUE_FULL",
  "TRANSFER_IN_PROGRESS",
  "CONFIG_CHANGE_IN_PROGRESS",
  "TRANSPORT",
  "NOT_MEMBER",
  "OUTCOME_UNKNOWN",
  "UNREACHABLE",
  "DEADLINE",
]);

export class Load {
  readonly errors = new Map<string, number>();
  private stopped = false;
  private running: Promise<void>[] = [];
  private acked = 0;
  private started = 0;
  private readonly failures: string[] = [];

  constructor(private readonly options: LoadOptions) {}

  start(): this {
    const { cluster, clients } = this.options;
    for (let client = 0; client < clients; client++) {
      const startAt = this.options.startAt?.(client) ?? cluster.names[client % cluster.names.length]!;
      const random = new SeededRandom(this.options.random.nextUint32());
      const writer =
        this.options.writerFor?.(client, { startAt, random, errors: this.errors }) ??
        new RpcWriter(cluster, {
          startAt,
          random,
          errors: this.errors,
          ...(this.options.members === undefined ? {} : { members: this.options.members }),
          ...(this.options.attemptTimeoutMs === undefined ? {} : { attemptTimeoutMs: this.options.attemptTimeoutMs }),
        });
      this.running.push(this.runClient(client, writer));
    }
    return this;
  }

  get ackedCount(): number {
    return this.acked;
  }

  /** Waits until at least `more` further writes were acknowledged: progress, proven. */
  async waitForProgress(options: { more: number; timeoutMs: number; what: string }): Promise<void> {
    const target = this.acked + options.more;
    await waitFor(
      `${options.what}: ${options.more} more acknowledged writes (at ${this.acked})`,
      () => (this.acked >= target ? true : undefined),
      {
        timeoutMs: options.timeoutMs,
        intervalMs: 10,
      },
    );
  }

  /** Resolves once every client has finished (totalWrites reached, or stopped). */
  async finished(): Promise<void> {
    await Promise.all(this.running);
  }

  /** Stops every client after its current write (each bounded by its deadline) and returns what happened. */
  async stop(): Promise<{ acked: number; failures: readonly string[]; errors: ReadonlyMap<string, number> }> {
    this.stopped = true;
    await Promise.all(this.running);
    this.running = [];
    return { acked: this.acked, failures: this.failures, errors: this.errors };
  }

  private async runClient(client: number, writer: Writer): Promise<void> {
    const { ledger, prefix } = this.options;
    const total = this.options.totalWrites ?? Number.MAX_SAFE_INTEGER;
    for (let seq = 0; !this.stopped && this.started < total; seq++) {
      this.started++;
      const key = `${prefix}-c${client}-${seq}`;
      const value = `v${seq}`;
      const shape = this.options.request?.(key, value) ?? {
        statements: [Ledger.insert(key, value)],
        transaction: false,
      };
      const ledgerAt = shape.statements.findIndex(
        (statement) =>
          Array.isArray(statement.params) &&
          statement.params[0] === key &&
          statement.sql.startsWith(`INSERT INTO ${LEDGER_TABLE} `),
      );
      if (ledgerAt === -1) {
        throw new Error(`load ${prefix}: the request for ${key} does not write its ledger row`);
      }
      // Think time between writes. Not optional: in workerd the tests and the node objects share one event loop, and
      // clients that never wait on a timer starve every timer in it (the test's own deadlines included).
      await pause(this.options.thinkMs ?? 2);
      const outcome = await writer.write({ id: key, ...shape }, { deadlineMs: this.options.writeDeadlineMs ?? 15_000 });
      if (outcome.ok) {
        const failed = outcome.results.map((result) => result.error).filter((error) => error !== undefined);
        const ledgerRowFailed = shape.transaction ? failed.length > 0 : outcome.results[ledgerAt]?.error !== undefined;
        if (failed.length > 0) {
          this.failures.push(`${key}: applied with statement errors: ${failed.join("; ")}`);
        }
        if (ledgerRowFailed) {
          // Applied as a failure: its ledger row was never written (and never will be: the id is remembered).
          ledger.record(key, value, "refused", `applied with an error: ${failed.join("; ")}`);
        } else {
          ledger.record(key, value, "acked");
          this.acked++;
        }
      } else {
        ledger.record(key, value, outcome.maybeApplied ? "unknown" : "refused", `${outcome.code}: ${outcome.message}`);
        this.failures.push(
          `${key}: ${outcome.code}: ${outcome.message} (${outcome.attempts} attempts, ${outcome.elapsedMs} ms)`,
        );
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Opening a scenario

/** What a scenario has once it is open: its printed seed, the generator of its choices, a started cluster whose
 * ledger table exists, and the (empty) ledger. */
export interface OpenScenario {
  readonly seed: number;
  readonly random: SeededRandom;
  readonly cluster: TestCluster;
  readonly ledger: Ledger;
}

export interface OpenScenarioOptions {
  /** The name printed with the seed ("scenario 10 (log)"). */
  readonly scenario: string;
  /** The cluster, from the test file's clusterFactory (every scenario has its own cluster name). */
  readonly cluster: TestClusterOptions;
  /** Statements run after the ledger table is created (other tables the scenario writes to). */
  readonly schema?: readonly string[];
}

/**
 * Every scenario runs the consistency monitor often, so that the whole suite (crashes, partitions, snapshots,
 * compaction, membership and schema changes) is also a search for its false positives: expectConvergedAndComplete
 * requires that no node saw a mismatch.
 */
const SCENARIO_CHECKPOINTS = { everyEntries: 20, everyMs: 1_000 } as const;

/** Seed, cluster, start, ledger table, ledger: how every HA scenario opens. */
export async function openScenario(
  newCluster: (options: TestClusterOptions) => TestCluster,
  options: OpenScenarioOptions,
): Promise<OpenScenario> {
  const seed = scenarioSeed(options.scenario);
  const random = new SeededRandom(seed);
  const cluster = newCluster({ consistency: SCENARIO_CHECKPOINTS, ...options.cluster });
  await cluster.startAll();
  await cluster.execute([CREATE_LEDGER_TABLE, ...(options.schema ?? [])]);
  return { seed, random, cluster, ledger: new Ledger() };
}

/** Starts clients writing to the ledger and waits until they have made `progress` (the scenario then does its part). */
export async function startLoad(
  opened: OpenScenario,
  options: {
    readonly load: Omit<LoadOptions, "cluster" | "ledger" | "random">;
    readonly progress: { readonly more: number; readonly timeoutMs?: number; readonly what: string };
  },
): Promise<Load> {
  const { cluster, ledger, random } = opened;
  const load = new Load({ cluster, ledger, random, ...options.load }).start();
  await load.waitForProgress({ timeoutMs: 10_000, ...options.progress });
  return load;
}

/** openScenario, then startLoad: the whole opening of a scenario under client load. */
export async function openScenarioUnderLoad(
  newCluster: (options: TestClusterOptions) => TestCluster,
  options: OpenScenarioOptions & Parameters<typeof startLoad>[1],
): Promise<OpenScenario & { readonly load: Load }> {
  const opened = await openScenario(newCluster, options);
  return { ...opened, load: await startLoad(opened, options) };
}

/** Asserts that a load saw only the error codes a failover explains, and returns a one-line summary to print. */
export function expectOnlyFailoverErrors(errors: ReadonlyMap<string, number>): string {
  const unexpected = [...errors.keys()].filter((code) => !EXPECTED_WRITE_ERRORS.has(code));
  expect(unexpected, `error codes no failover explains: ${JSON.stringify(Object.fromEntries(errors))}`).toEqual([]);
  return JSON.stringify(Object.fromEntries(errors));
}

// ---------------------------------------------------------------------------------------------------------------
// The end of every scenario

/**
 * Waits (bounded) until `nodes` agree on a leader, have applied its commit index and hold identical dumps (same
 * schema, same rows), then checks the ledger on every one of them. Returns the common dump.
 */
export async function expectConvergedAndComplete(
  cluster: TestCluster,
  ledger: Ledger,
  options: { nodes?: readonly string[]; timeoutMs?: number } = {},
): Promise<string> {
  const nodes = options.nodes ?? cluster.names;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const leader = await cluster.waitForLeader({ among: nodes, timeoutMs });
  const { commitIndex } = await cluster.status(leader);
  await cluster.waitForConvergence({ index: commitIndex, nodes, timeoutMs });
  let lastDiff = "";
  const dump = await waitFor(
    `identical dumps on ${nodes.join(", ")}`,
    async () => {
      const dumps = await Promise.all(nodes.map((node) => cluster.dump(node)));
      const first = dumps[0]!;
      const differing = nodes.filter((_, i) => dumps[i] !== first);
      lastDiff =
        differing.length === 0
          ? ""
          : `${differing.join(", ")} differ from ${nodes[0]}: ${describeDifference(first, dumps[nodes.indexOf(differing[0]!)]!)}`;
      return differing.length === 0 ? first : undefined;
    },
    { timeoutMs, intervalMs: 50 },
  ).catch((err: unknown) => {
    throw new Error(`${String(err)}; ${lastDiff}`);
  });
  const problems = (await Promise.all(nodes.map((node) => ledger.problemsOn(cluster, node)))).flat();
  expect(problems, `ledger check (${ledger.summary()})`).toEqual([]);
  expect(ledger.count("acked"), "a scenario must acknowledge writes to prove anything").toBeGreaterThan(0);
  await expectNoConsistencyMismatch(cluster, nodes);
  return dump;
}

/**
 * Replicas that converged to identical dumps must never have been judged different by the consistency monitor: a
 * mismatch here is a false positive (or a divergence repaired behind the scenario's back). Prints how many
 * checkpoints the nodes applied, so that a run shows the monitor was at work.
 */
async function expectNoConsistencyMismatch(cluster: TestCluster, nodes: readonly string[]): Promise<void> {
  const reports = await cluster.statuses(nodes);
  const views = reports.map((report, i) => ({ node: nodes[i]!, consistency: report.consistency }));
  const flagged = views.filter(
    ({ consistency }) =>
      consistency !== undefined && (consistency.status !== "OK" || consistency.mismatchesDetected > 0),
  );
  expect(flagged, "consistency monitor false positives").toEqual([]);
  const checkpoints = views.map(({ node, consistency }) => `${node}@${consistency?.lastCheckpoint?.index ?? "-"}`);
  console.log(`consistency monitor: no mismatch; last checkpoint per node ${checkpoints.join(" ")}`);
}

function describeDifference(a: string, b: string): string {
  const left = a.split("\n");
  const right = b.split("\n");
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    if (left[i] !== right[i]) {
      return `line ${i + 1}: ${JSON.stringify(left[i] ?? "<end>")} vs ${JSON.stringify(right[i] ?? "<end>")}`;
    }
  }
  return "no line differs";
}

// ---------------------------------------------------------------------------------------------------------------
// Network faults

/**
 * Splits the cluster into groups that cannot talk to each other (both ways); nodes in no group keep every link.
 * The same rules go to every node, since a node applies them to what it sends.
 */
export async function splitInto(
  cluster: TestCluster,
  groups: readonly (readonly string[])[],
  nodes: readonly string[] = cluster.names,
): Promise<void> {
  const partitions: { from: string; to: string; bothWays: boolean }[] = [];
  for (let i = 0; i < groups.length; i++) {
    for (let j = i + 1; j < groups.length; j++) {
      for (const from of groups[i]!) {
        for (const to of groups[j]!) {
          partitions.push({ from, to, bothWays: true });
        }
      }
    }
  }
  await Promise.all(nodes.map((node) => cluster.setFaults(node, { partitions })));
}

/** Cuts each of `isolated` off from every other node of `nodes`, both ways. */
export async function isolateAll(
  cluster: TestCluster,
  isolated: readonly string[],
  nodes: readonly string[] = cluster.names,
): Promise<void> {
  const rest = nodes.filter((node) => !isolated.includes(node));
  await splitInto(cluster, [...isolated.map((node) => [node]), rest], nodes);
}

/** Halts nodes the cluster's own list does not know (members added during a test) once the test finishes. */
export function haltWhenFinished(cluster: TestCluster, nodes: readonly string[]): void {
  onTestFinished(async () => {
    await Promise.all(
      nodes.map((node) =>
        cluster
          .stub(node)
          .testHalt()
          .catch(() => undefined),
      ),
    );
  });
}

/** Polls a node's status until `predicate` holds. */
export async function waitForStatus(
  cluster: TestCluster,
  node: string,
  what: string,
  predicate: (status: Awaited<ReturnType<TestCluster["status"]>>) => boolean,
  timeoutMs = 15_000,
): Promise<Awaited<ReturnType<TestCluster["status"]>>> {
  return waitFor(
    what,
    async () => {
      const status = await cluster.status(node);
      return predicate(status) ? status : undefined;
    },
    { timeoutMs },
  );
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP on the real nodes

export const HTTP_TOKEN = "ha-suite-admin-token-0001";

export interface NodeCallRecord {
  readonly node: string;
  readonly method: string;
  readonly requestId?: string;
}

/** Lets a test see (and disturb) every call the worker makes to a node. `run` performs the real call. */
export type NodeCallInterceptor = (call: NodeCallRecord, run: () => Promise<unknown>) => Promise<unknown>;

export interface HttpHarness {
  /** Every node call the worker made, in order. */
  readonly calls: NodeCallRecord[];
  readonly leaders: LeaderCache;
  request(method: string, path: string, init?: { json?: unknown; headers?: Record<string, string> }): Promise<Response>;
}

/**
 * The worker's app (createApp), wired to this cluster's real node objects through the production directory, with a
 * recording wrapper around every node call. The cluster's nodes must have been started through the TestCluster so
 * that they run its exact configuration.
 */
export function httpHarness(
  cluster: TestCluster,
  options: { seed: number; intercept?: NodeCallInterceptor; policy?: AppOptions["policy"] },
): HttpHarness {
  const calls: NodeCallRecord[] = [];
  const leaders = new LeaderCache();
  const random = new SeededRandom(options.seed);
  const appEnv: AppEnv = {
    CLUSTER_NODE: env.CLUSTER_NODE,
    CLUSTER_NAME: cluster.config.name,
    CLUSTER_NODES: cluster.config.members.map((member) => member.name).join(","),
    HEARTBEAT_INTERVAL_MS: String(cluster.config.heartbeatIntervalMs),
    ELECTION_TIMEOUT_MS: String(cluster.config.electionTimeoutMs),
    DHA_TOKENS: JSON.stringify({ [HTTP_TOKEN]: ["read", "write", "admin"] }),
  };
  const directory = (workerEnv: AppEnv): NodeDirectory =>
    recordingDirectory(durableObjectDirectory(workerEnv, cluster.config), calls, options.intercept);
  const app = createApp({
    directory,
    leaders,
    random: () => random.nextFloat(),
    ...(options.policy === undefined ? {} : { policy: options.policy }),
  });
  return {
    calls,
    leaders,
    request: async (method, path, init = {}) => {
      const headers: Record<string, string> = { Authorization: `Bearer ${HTTP_TOKEN}`, ...init.headers };
      let body: string | undefined;
      if (init.json !== undefined) {
        body = JSON.stringify(init.json);
        headers["Content-Type"] = "application/json";
      }
      return app.request(
        new Request(`https://db.example.com${path}`, { method, headers, ...(body === undefined ? {} : { body }) }),
        undefined,
        appEnv,
      );
    },
  };
}

function recordingDirectory(
  inner: NodeDirectory,
  calls: NodeCallRecord[],
  intercept: NodeCallInterceptor | undefined,
): NodeDirectory {
  return {
    config: inner.config,
    node(name: string): ClusterNodeRpc {
      const real = inner.node(name);
      const wrap = <A, R>(method: keyof ClusterNodeRpc, arg: A, run: () => Promise<R>): Promise<R> => {
        const requestId = (arg as { request?: { id?: string } }).request?.id;
        const record: NodeCallRecord = { node: name, method, ...(requestId === undefined ? {} : { requestId }) };
        calls.push(record);
        return (intercept === undefined ? run() : intercept(record, run)) as Promise<R>;
      };
      return {
        start: (a) => wrap("start", a, () => real.start(a)),
        status: (a) => wrap("status", a, () => real.status(a)),
        execute: (a) => wrap("execute", a, () => real.execute(a)),
        query: (a) => wrap("query", a, () => real.query(a)),
        waitForLeader: (a) => wrap("waitForLeader", a, () => real.waitForLeader(a)),
        transferLeadership: (a) => wrap("transferLeadership", a, () => real.transferLeadership(a)),
        addMember: (a) => wrap("addMember", a, () => real.addMember(a)),
        removeMember: (a) => wrap("removeMember", a, () => real.removeMember(a)),
        backup: (a) => wrap("backup", a, () => real.backup(a)),
      };
    },
  };
}

export interface HttpWriteOutcome {
  readonly status: number;
  readonly elapsedMs: number;
  /** X-DHA-Error-Code on failures. */
  readonly code: string | null;
  readonly node: string | null;
  readonly retryAfter: string | null;
  readonly body: { results?: { error?: string; rows_affected?: number; last_insert_id?: number }[]; error?: string };
}

/**
 * One ledger write over HTTP (POST /db/execute) with an Idempotency-Key, recorded in the ledger: 200 acked, anything
 * else unknown.
 */
export async function httpLedgerWrite(
  harness: HttpHarness,
  ledger: Ledger,
  options: { key: string; value: string; timeout?: string; idempotencyKey?: string },
): Promise<HttpWriteOutcome> {
  const startedAt = Date.now();
  const path = `/db/execute${options.timeout === undefined ? "" : `?timeout=${options.timeout}`}`;
  const response = await harness.request("POST", path, {
    json: [[Ledger.insert(options.key, options.value).sql, options.key, options.value]],
    headers: { "Idempotency-Key": options.idempotencyKey ?? options.key },
  });
  const body = (await response.json()) as HttpWriteOutcome["body"];
  const outcome: HttpWriteOutcome = {
    status: response.status,
    elapsedMs: Date.now() - startedAt,
    code: response.headers.get("X-DHA-Error-Code"),
    node: response.headers.get("X-DHA-Node"),
    retryAfter: response.headers.get("Retry-After"),
    body,
  };
  const statementError = body.results?.[0]?.error;
  // A failure's body does not say whether an earlier attempt may have been applied (a 503 NO_LEADER can follow a
  // TIMEOUT), so every failure counts as unknown.
  if (response.status === 200 && statementError === undefined) {
    ledger.record(options.key, options.value, "acked");
  } else {
    ledger.record(
      options.key,
      options.value,
      "unknown",
      `HTTP ${response.status} ${outcome.code ?? ""}: ${body.error ?? statementError ?? ""}`,
    );
  }
  return outcome;
}

// ---------------------------------------------------------------------------------------------------------------
// A client writing over HTTP

const HTTP_WRITER_LIMITS = {
  maxAttempts: 50,
  /** The ?timeout= of one request; the router retries inside it. */
  maxRequestTimeoutMs: 5_000,
  baseBackoffMs: 10,
  maxBackoffMs: 200,
  guardMarginMs: 3_000,
} as const;

interface RqliteResult {
  readonly error?: string;
  readonly rows_affected?: number;
  readonly last_insert_id?: number;
}

/**
 * An rqlite-style HTTP client: POST /db/execute with an Idempotency-Key, retried with the same key on 503 and 504
 * until its deadline (a short backoff rather than the whole Retry-After, to keep the suite fast).
 * `firstNode` makes every request enter the cluster at that node (the worker's leader hint is reset to it).
 */
export class HttpWriter implements Writer {
  constructor(
    private readonly harness: HttpHarness,
    private readonly options: {
      cluster: string;
      random: SeededRandom;
      errors?: Map<string, number>;
      firstNode?: string;
    },
  ) {}

  async write(request: SqlRequest, options: { deadlineMs: number }): Promise<WriteOutcome> {
    const startedAt = Date.now();
    const deadlineAt = startedAt + options.deadlineMs;
    let attempts = 0;
    let failures = 0;
    let maybeApplied = false;
    let last = { code: "NONE", message: "no attempt was made before the deadline" };
    while (Date.now() < deadlineAt && attempts < HTTP_WRITER_LIMITS.maxAttempts) {
      attempts++;
      if (this.options.firstNode !== undefined) {
        this.harness.leaders.set(this.options.cluster, this.options.firstNode);
      }
      const timeoutMs = Math.max(1, Math.min(HTTP_WRITER_LIMITS.maxRequestTimeoutMs, deadlineAt - Date.now()));
      const path = `/db/execute?timeout=${timeoutMs}ms${request.transaction ? "&transaction" : ""}`;
      const response = await within(
        this.harness.request("POST", path, {
          json: request.statements.map((statement) =>
            Array.isArray(statement.params) && statement.params.length > 0
              ? [statement.sql, ...statement.params]
              : statement.sql,
          ),
          headers: { "Idempotency-Key": request.id },
        }),
        timeoutMs + HTTP_WRITER_LIMITS.guardMarginMs,
        `POST /db/execute for ${request.id}`,
      );
      const body = (await response.json()) as { results?: RqliteResult[]; error?: string };
      if (response.status === 200) {
        const results: StatementResult[] = (body.results ?? []).map((result) => ({
          ...(result.error === undefined ? {} : { error: result.error }),
          ...(result.rows_affected === undefined ? {} : { rowsAffected: result.rows_affected }),
          ...(result.last_insert_id === undefined ? {} : { lastInsertId: result.last_insert_id }),
        }));
        return {
          ok: true,
          node: response.headers.get("X-DHA-Node") ?? "?",
          raftIndex: Number(response.headers.get("X-DHA-Raft-Index")),
          results,
          attempts,
          elapsedMs: Date.now() - startedAt,
        };
      }
      const code = response.headers.get("X-DHA-Error-Code") ?? `HTTP_${response.status}`;
      last = { code, message: `HTTP ${response.status}: ${body.error ?? ""}` };
      const errors = this.options.errors;
      if (errors !== undefined) {
        errors.set(code, (errors.get(code) ?? 0) + 1);
      }
      if (response.status !== 503 && response.status !== 504) {
        return {
          ok: false,
          code,
          message: last.message,
          maybeApplied: maybeApplied || response.status >= 500,
          attempts,
          elapsedMs: Date.now() - startedAt,
        };
      }
      // The body cannot say whether an earlier attempt inside the router reached a leader: assume it may have.
      maybeApplied = true;
      const ceilingMs = Math.min(
        HTTP_WRITER_LIMITS.maxBackoffMs,
        HTTP_WRITER_LIMITS.baseBackoffMs * 2 ** Math.min(++failures - 1, 20),
      );
      await pause(Math.min(this.options.random.nextFloat() * ceilingMs, deadlineAt - Date.now()));
    }
    return {
      ok: false,
      code: last.code,
      message: last.message,
      maybeApplied,
      attempts,
      elapsedMs: Date.now() - startedAt,
    };
  }
}
