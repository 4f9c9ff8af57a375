// Clients and their history. Each client runs one operation at a time through the worker's own data service and
// router (src/worker/data/service.ts, src/worker/routing): writes and compare-and-set as SQL writes to a `kv`
// table, reads as SQL queries at every consistency level, backups. The router picks the node, follows leader hints,
// retries with backoff inside the deadline under one request id, and classifies the outcome. A client believes the
// router: a failure it does not mark "outcome unknown" definitely failed; an unknown outcome is resent under the same
// request id, and if it stays unknown the write is indeterminate. So a node or router that reports a write failed
// while it was (or will be) applied produces a history that is not linearizable.

import type { RegisterInput, RegisterOutput } from "../lincheck/index.js";
import type { ExecuteValue, QueryValue } from "../../src/objects/api.js";
import type { NodeId } from "../../src/replication/types.js";
import type { Statement, StatementResult } from "../../src/shared/sql.js";
import type { RouteOutcome } from "../../src/worker/routing/router.js";
import type { Prng } from "./prng.js";

export type ReadLevel = "linearizable" | "strong" | "weak" | "none";

export interface WorkloadOptions {
  readonly clients: number;
  readonly keys: number;
  /** One call's deadline (the router's share of it per attempt); an operation gives up after four. */
  readonly timeoutMs: number;
  readonly maxThinkMs: number;
  /** Relative weights of the kinds of operation. */
  readonly mix: {
    readonly write: number;
    readonly cas: number;
    readonly linearizableRead: number;
    readonly strongRead: number;
    readonly weakRead: number;
    readonly noneRead: number;
    /** A read at level none with the raft index of the client's last write (X-DHA-Raft-Index): it must see that write. */
    readonly readYourWrites: number;
    /** A backup (dumpSql): it must contain every write acknowledged before it started, like a read of every key. */
    readonly backup: number;
  };
  /** Calls per operation through the router (the first included); each call retries inside its own deadline. */
  readonly maxAttempts: number;
  /** Back-off before the n-th resend: up to n times this. */
  readonly retryBackoffMs: number;
  /** Chance that a client forgets which node led (the worker's leader cache) before an operation. */
  readonly roamProbability: number;
}

/** What a client asks the worker's data service for. */
export type ClientRequest =
  | { readonly kind: "execute"; readonly requestId: string; readonly statements: readonly Statement[] }
  | {
      readonly kind: "query";
      readonly statements: readonly Statement[];
      readonly level: ReadLevel;
      readonly minRaftIndex?: number;
    }
  | { readonly kind: "backup" };

export type BackupValue = { readonly sql: string; readonly raftIndex: number };
/** The router's outcome, and (for a weak read) whether the node that served it led the highest term then. */
export interface ClientOutcome {
  readonly outcome: RouteOutcome<ExecuteValue | QueryValue | BackupValue>;
  readonly servedByLeader: boolean;
}

type OpState = "pending" | "ok" | "failed" | "indeterminate";

export interface HistoryOp {
  readonly opId: number;
  readonly clientId: number;
  readonly input: RegisterInput;
  readonly level: ReadLevel | null;
  readonly requestId: string | null;
  output: RegisterOutput | undefined;
  call: number;
  ret: number;
  state: OpState;
  attempts: number;
  /** The first attempt's start: the operation gives up this long after it. */
  readonly startedAtMs: number;
  /** A read-your-writes read: the client's own write it must see (or something written after it). */
  readonly after: { readonly requestId: string; readonly value: string; readonly raftIndex: number } | null;
  /** A backup: the input is a read of its first key; `values` holds every key's value once it answered. */
  readonly backup: boolean;
  /** A weak read answered by the node that led the highest term at that moment: checked like a linearizable one. */
  servedByLeader: boolean;
  values: ReadonlyMap<string, string | null> | null;
}

/** A read-your-writes read that was answered, checked at the end against the committed log. */
export interface ReadYourWrites {
  readonly opId: number;
  readonly key: string;
  readonly value: string | null;
  readonly own: { readonly requestId: string; readonly value: string; readonly raftIndex: number };
}

interface Client {
  readonly id: number;
  current: HistoryOp | null;
  /** A call through the router is in flight. */
  calling: boolean;
  nextActionAtMs: number;
  /** The client's last acknowledged write that took effect, per key. */
  lastWrite: {
    readonly key: string;
    readonly requestId: string;
    readonly value: string;
    readonly raftIndex: number;
  } | null;
}

export interface WorkloadEnvironment {
  readonly random: Prng;
  nowMs(): number;
  trace(text: string): void;
  mixIntoTrace(text: string): void;
  wakeClient(clientId: number, atMs: number): void;
  /** Sends one request through the worker's router; settles once the router has an outcome (bounded by deadlineAt). */
  route(clientId: number, request: ClientRequest, deadlineAt: number): Promise<ClientOutcome>;
  /** The worker forgets which node leads (a new isolate, or the cached leader was evicted). */
  forgetLeader(): void;
}

export const KV_TABLE_DDL = "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)";

export class Workload {
  readonly history: HistoryOp[] = [];
  readonly uncheckedReads: { level: ReadLevel; key: string; value: string | null; node: NodeId }[] = [];
  readonly acknowledged: { requestId: string; what: string }[] = [];
  readonly readsByLevel = {
    linearizable: 0,
    strong: 0,
    weak: 0,
    weakFromLeader: 0,
    none: 0,
    readYourWrites: 0,
    backup: 0,
  };
  readonly readYourWrites: ReadYourWrites[] = [];
  /** Which request wrote each value (values are unique per operation). */
  readonly writerOf = new Map<string, string>();
  private readonly clients: Client[] = [];
  private readonly writtenValues = new Set<string>();
  private clock = 0;
  private nextOpId = 1;
  private acceptingNewOps = true;
  refusals = 0;
  retriesSameId = 0;
  violations: { kind: string; detail: string }[] = [];

  constructor(
    private readonly options: WorkloadOptions,
    private readonly env: WorkloadEnvironment,
  ) {
    if (options.clients < 1 || options.keys < 1) {
      throw new RangeError("a workload needs at least one client and one key");
    }
    for (let id = 1; id <= options.clients; id += 1) {
      this.clients.push({ id, current: null, calling: false, nextActionAtMs: 0, lastWrite: null });
    }
  }

  get clientIds(): number[] {
    return this.clients.map((client) => client.id);
  }

  stopNewOperations(): void {
    this.acceptingNewOps = false;
  }

  get inFlight(): number {
    return this.clients.filter((client) => client.current !== null).length;
  }

  private tick(): number {
    this.clock += 1;
    return this.clock;
  }

  /** A client's scheduled moment: start the next operation. */
  runClient(clientId: number): void {
    const client = this.clientById(clientId);
    const now = this.env.nowMs();
    if (client.current !== null) {
      return;
    }
    if (now < client.nextActionAtMs || !this.acceptingNewOps) {
      return;
    }
    const { input, level, after, backup } = this.generateInput(client);
    const opId = this.nextOpId;
    this.nextOpId += 1;
    const op: HistoryOp = {
      opId,
      clientId: client.id,
      input,
      level,
      requestId: input.kind === "read" ? null : `c${client.id}-op${opId}`,
      output: undefined,
      call: this.tick(),
      ret: Number.POSITIVE_INFINITY,
      state: "pending",
      attempts: 0,
      startedAtMs: now,
      after,
      backup,
      values: null,
      servedByLeader: false,
    };
    if (input.kind === "write") {
      this.writtenValues.add(input.value);
    }
    if (input.kind === "cas") {
      this.writtenValues.add(input.to);
    }
    if (op.requestId !== null && input.kind === "write") {
      this.writerOf.set(input.value, op.requestId);
    }
    if (op.requestId !== null && input.kind === "cas") {
      this.writerOf.set(input.to, op.requestId);
    }
    this.history.push(op);
    client.current = op;
    if (this.env.random.chance(this.options.roamProbability)) {
      this.env.forgetLeader();
    }
    this.attempt(client, op);
  }

  private clientById(clientId: number): Client {
    const client = this.clients[clientId - 1];
    if (client === undefined) {
      throw new Error(`unknown client ${clientId}`);
    }
    return client;
  }

  private generateInput(client: Client): {
    input: RegisterInput;
    level: ReadLevel | null;
    after: HistoryOp["after"];
    backup: boolean;
  } {
    const random = this.env.random;
    const key = `k${random.nextInt(this.options.keys)}`;
    const mix = this.options.mix;
    const weights = [
      mix.write,
      mix.cas,
      mix.linearizableRead,
      mix.strongRead,
      mix.weakRead,
      mix.noneRead,
      mix.readYourWrites,
      mix.backup,
    ];
    let roll = random.nextInt(weights.reduce((sum, weight) => sum + weight, 0));
    let choice = 0;
    while (roll >= (weights[choice] ?? 0)) {
      roll -= weights[choice] ?? 0;
      choice += 1;
    }
    const value = `c${client.id}v${this.nextOpId}`;
    const plain = (
      input: RegisterInput,
      level: ReadLevel | null,
    ): { input: RegisterInput; level: ReadLevel | null; after: null; backup: false } => ({
      input,
      level,
      after: null,
      backup: false,
    });
    switch (choice) {
      case 0:
        return plain({ kind: "write", key, value }, null);
      case 1: {
        const known = [...this.writtenValues];
        const from = known.length === 0 || random.chance(0.2) ? null : random.pick(known.slice(-8));
        return plain({ kind: "cas", key, from, to: value }, null);
      }
      case 2:
        return plain({ kind: "read", key }, "linearizable");
      case 3:
        return plain({ kind: "read", key }, "strong");
      case 4:
        return plain({ kind: "read", key }, "weak");
      case 5:
        return plain({ kind: "read", key }, "none");
      case 6: {
        const last = client.lastWrite;
        if (last === null) {
          return plain({ kind: "read", key }, "linearizable");
        }
        return {
          input: { kind: "read", key: last.key },
          level: "none",
          after: { requestId: last.requestId, value: last.value, raftIndex: last.raftIndex },
          backup: false,
        };
      }
      default:
        return { input: { kind: "read", key: "k0" }, level: null, after: null, backup: true };
    }
  }

  /** One call through the router, under the operation's request id; it settles within the deadline. */
  private attempt(client: Client, op: HistoryOp): void {
    op.attempts += 1;
    if (op.attempts > 1 && op.requestId !== null) {
      this.retriesSameId += 1;
    }
    this.env.trace(
      `client ${client.id} op ${op.opId} ${describeInput(op.input, op.level)}${op.attempts > 1 ? ` (call ${op.attempts})` : ""}`,
    );
    client.calling = true;
    const deadlineAt = this.env.nowMs() + this.options.timeoutMs;
    void this.env.route(client.id, requestFor(op), deadlineAt).then((answer) => {
      client.calling = false;
      this.onOutcome(client, op, answer);
    });
  }

  private onOutcome(client: Client, op: HistoryOp, answer: ClientOutcome): void {
    const outcome = answer.outcome;
    if (outcome.ok) {
      if (outcome.attempts > 1 && op.requestId !== null) {
        // The router resent it, under the same request id.
        this.retriesSameId += outcome.attempts - 1;
      }
      op.servedByLeader = answer.servedByLeader;
      this.succeed(client, op, outcome.node, outcome.value);
      return;
    }
    this.refusals += 1;
    this.env.mixIntoTrace(
      `client ${client.id} <- op ${op.opId} ${outcome.status} ${outcome.code}${outcome.outcomeUnknown ? " (outcome unknown)" : ""}`,
    );
    const unknown = op.input.kind !== "read" && outcome.outcomeUnknown;
    this.retryOrGiveUp(client, op, { unknown, why: `${outcome.status} ${outcome.code}: ${outcome.message}` });
  }

  private succeed(client: Client, op: HistoryOp, node: NodeId, value: ExecuteValue | QueryValue | BackupValue): void {
    if (op.backup) {
      if (!("sql" in value)) {
        throw new Error(`op ${op.opId}: a backup answered without a dump`);
      }
      op.values = valuesInDump(value.sql);
      op.ret = this.tick();
      op.state = "ok";
      this.readsByLevel.backup += 1;
      this.env.trace(
        `client ${op.clientId} <- op ${op.opId} backup at index ${value.raftIndex}: ${JSON.stringify([...op.values])}`,
      );
      this.finish(client);
      return;
    }
    if (!("results" in value)) {
      throw new Error(`op ${op.opId}: a ${op.input.kind} answered without results`);
    }
    const results = value.results;
    const output = this.outputOf(op, results);
    if (output === null) {
      this.retryOrGiveUp(client, op, { unknown: op.input.kind !== "read", why: "a statement failed" });
      return;
    }
    op.output = output;
    op.ret = this.tick();
    op.state = "ok";
    if (op.input.kind !== "read" && op.requestId !== null) {
      this.acknowledged.push({ requestId: op.requestId, what: `op ${op.opId} ${describeInput(op.input, op.level)}` });
      const written = op.input.kind === "write" ? op.input.value : output.ok === true ? op.input.to : null;
      if (written !== null) {
        client.lastWrite = { key: op.input.key, requestId: op.requestId, value: written, raftIndex: value.raftIndex };
      }
    }
    if (op.after !== null && op.input.kind === "read") {
      this.readsByLevel.readYourWrites += 1;
      this.readYourWrites.push({ opId: op.opId, key: op.input.key, value: output.value ?? null, own: op.after });
    } else if (op.level !== null) {
      this.readsByLevel[op.level] += 1;
    }
    if (op.level === "weak" && op.servedByLeader) {
      this.readsByLevel.weakFromLeader += 1;
    }
    if (op.input.kind === "read" && op.after === null && (op.level === "weak" || op.level === "none")) {
      const read = output.value ?? null;
      this.uncheckedReads.push({ level: op.level, key: op.input.key, value: read, node });
      if (read !== null && !this.writtenValues.has(read)) {
        this.violations.push({
          kind: "read of a value never written",
          detail: `op ${op.opId} (${op.level}) read ${read} of ${op.input.key}`,
        });
      }
    }
    this.env.trace(`client ${op.clientId} <- op ${op.opId} ok ${JSON.stringify(output)} at index ${value.raftIndex}`);
    this.finish(client);
  }

  /** What the node's results mean for the register; null when a statement failed (nothing definite). */
  private outputOf(op: HistoryOp, results: readonly StatementResult[]): RegisterOutput | null {
    const input = op.input;
    if (input.kind === "read") {
      const result = results[0];
      if (result === undefined) {
        return null;
      }
      if (result.error !== undefined) {
        return /no such table: kv/.test(result.error) ? { value: null } : null;
      }
      const row = result.rows?.[0];
      return { value: row === undefined ? null : String(row[0]) };
    }
    const change = results[1];
    if (change === undefined || change.error !== undefined || results[0]?.error !== undefined) {
      return null;
    }
    if (input.kind === "write") {
      return {};
    }
    return { ok: change.rowsAffected === 1 };
  }

  private retryOrGiveUp(client: Client, op: HistoryOp, outcome: { unknown: boolean; why: string }): void {
    if (outcome.unknown) {
      op.state = "indeterminate";
    }
    const elapsedMs = this.env.nowMs() - op.startedAtMs;
    // A write the router reports definitely refused is believed: the client gives up on it (a resend under the same
    // id would hide a refusal that was false). One whose outcome is unknown is resent to learn the outcome.
    const believedRefused = op.input.kind !== "read" && op.state !== "indeterminate";
    const giveUp =
      believedRefused ||
      op.attempts >= this.options.maxAttempts ||
      elapsedMs > 4 * this.options.timeoutMs ||
      !this.acceptingNewOps;
    if (!giveUp) {
      const delayMs = this.env.random.between(1, this.options.retryBackoffMs * op.attempts);
      client.nextActionAtMs = this.env.nowMs() + delayMs;
      this.env.wakeClient(client.id, client.nextActionAtMs);
      // Resent after the back-off, from the client's next wake-up (see resume()).
      this.pendingRetry.set(client.id, client.nextActionAtMs);
      return;
    }
    // A write whose outcome stayed unknown is indeterminate; one only ever refused definitely failed.
    if (op.state === "indeterminate") {
      this.env.mixIntoTrace(`client ${client.id} gives up on op ${op.opId}, outcome unknown (${outcome.why})`);
    } else {
      op.state = "failed";
      this.env.mixIntoTrace(`client ${client.id} gives up on op ${op.opId} (${outcome.why})`);
    }
    this.finish(client);
  }

  private readonly pendingRetry = new Map<number, number>();

  /** A client's wake-up: a retry whose back-off ended goes out now. */
  resume(clientId: number): void {
    const client = this.clientById(clientId);
    const retryAt = this.pendingRetry.get(clientId);
    if (retryAt !== undefined && client.current !== null && !client.calling && this.env.nowMs() >= retryAt) {
      this.pendingRetry.delete(clientId);
      this.attempt(client, client.current);
      return;
    }
    this.runClient(clientId);
  }

  private finish(client: Client): void {
    client.current = null;
    this.pendingRetry.delete(client.id);
    client.nextActionAtMs = this.env.nowMs() + this.env.random.between(0, this.options.maxThinkMs);
    this.env.wakeClient(client.id, client.nextActionAtMs);
  }

  /** Operations for the linearizability check: writes, cas, and reads at the linearizable levels. */
  linearizableHistory(): {
    clientId: number;
    input: RegisterInput;
    output: RegisterOutput | undefined;
    call: number;
    ret: number;
  }[] {
    const out = [];
    for (const op of this.history) {
      if (op.backup) {
        // Every key a backup holds (and every key it lacks: absent) is a read at the backup's moment.
        if (op.state !== "ok" || op.values === null) {
          continue;
        }
        for (let key = 0; key < this.options.keys; key += 1) {
          out.push({
            clientId: op.clientId,
            input: { kind: "read" as const, key: `k${key}` },
            output: { value: op.values.get(`k${key}`) ?? null },
            call: op.call,
            ret: op.ret,
          });
        }
        continue;
      }
      if (op.state === "failed" || op.state === "pending") {
        // A pending write may still have been applied: it constrains nothing once indeterminate.
        if (op.state === "pending" && op.input.kind !== "read") {
          out.push({
            clientId: op.clientId,
            input: op.input,
            output: undefined,
            call: op.call,
            ret: Number.POSITIVE_INFINITY,
          });
        }
        continue;
      }
      // A weak read promises the leader's applied state: checked when the leader of the highest term answered it.
      if (op.input.kind === "read" && (op.level === "none" || (op.level === "weak" && !op.servedByLeader))) {
        continue;
      }
      if (op.input.kind === "read" && op.state !== "ok") {
        continue;
      }
      out.push({
        clientId: op.clientId,
        input: op.input,
        output: op.state === "ok" ? op.output : undefined,
        call: op.call,
        ret: op.state === "ok" ? op.ret : Number.POSITIVE_INFINITY,
      });
    }
    return out;
  }
}

function requestFor(op: HistoryOp): ClientRequest {
  if (op.backup) {
    return { kind: "backup" };
  }
  const input = op.input;
  if (input.kind === "read") {
    const statements = [{ sql: "SELECT v FROM kv WHERE k = ?", params: [input.key] }];
    if (op.after !== null) {
      return { kind: "query", statements, level: "none", minRaftIndex: op.after.raftIndex };
    }
    return { kind: "query", statements, level: op.level ?? "linearizable" };
  }
  const change: Statement =
    input.kind === "write"
      ? {
          sql: "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
          params: [input.key, input.value],
        }
      : input.from === null
        ? { sql: "INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO NOTHING", params: [input.key, input.to] }
        : { sql: "UPDATE kv SET v = ? WHERE k = ? AND v = ?", params: [input.to, input.key, input.from] };
  return {
    kind: "execute",
    requestId: op.requestId ?? `op${op.opId}`,
    statements: [{ sql: KV_TABLE_DDL }, change],
  };
}

/** The kv table's rows in a dump (INSERT INTO "kv" VALUES('k0','c1v2');). */
export function valuesInDump(sql: string): Map<string, string | null> {
  const values = new Map<string, string | null>();
  const row = /^INSERT INTO "kv" VALUES\('((?:[^']|'')*)','((?:[^']|'')*)'\);$/gm;
  for (const match of sql.matchAll(row)) {
    values.set((match[1] ?? "").replaceAll("''", "'"), (match[2] ?? "").replaceAll("''", "'"));
  }
  return values;
}

export function describeInput(input: RegisterInput, level: ReadLevel | null): string {
  switch (input.kind) {
    case "write":
      return `write ${input.key}=${input.value}`;
    case "cas":
      return `cas ${input.key} ${input.from ?? "null"}->${input.to}`;
    case "read":
      return `read ${input.key} (${level ?? "linearizable"})`;
  }
}
