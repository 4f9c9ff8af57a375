// Clients and their history. Each client runs one operation at a time against the node it believes leads:
// writes and compare-and-set through the log, reads at four consistency levels. Only what a client could know
// counts: an operation is acknowledged when its node applies (index, term); it definitely failed only when a
// different entry was applied at that index; anything else (a crash, a timeout) leaves it indeterminate.

import type { Operation, RegisterInput, RegisterOutput } from "../lincheck/index.js";
import type { LogEntry, Membership, NodeId, ProposalError } from "../../src/replication/types.js";
import type { Cluster, SimNode } from "./cluster.js";
import type { Prng } from "./prng.js";

/** What a normal log entry carries (JSON in LogEntry.data). */
export type Command =
  | { readonly op: "write"; readonly key: string; readonly value: string; readonly clientId: number; readonly opId: number }
  | { readonly op: "cas"; readonly key: string; readonly from: string | null; readonly to: string; readonly clientId: number; readonly opId: number }
  | { readonly op: "read"; readonly key: string; readonly clientId: number; readonly opId: number };

export type ApplyResult =
  | { readonly kind: "noop" }
  | { readonly kind: "config"; readonly membership: Membership }
  | { readonly kind: "write"; readonly opId: number }
  | { readonly kind: "cas"; readonly opId: number; readonly ok: boolean }
  | { readonly kind: "read"; readonly opId: number; readonly value: string | null }
  | { readonly kind: "invalid"; readonly reason: string };

/** The state machine: deterministic, so every replica reaches the same map from the same log. */
export function applyEntry(kv: Map<string, string>, entry: LogEntry): ApplyResult {
  if (entry.kind === "noop") return { kind: "noop" };
  if (entry.kind === "config") {
    try {
      return { kind: "config", membership: JSON.parse(entry.data) as Membership };
    } catch {
      return { kind: "invalid", reason: `config entry ${entry.index} is not JSON` };
    }
  }
  let command: Command;
  try {
    command = JSON.parse(entry.data) as Command;
  } catch {
    return { kind: "invalid", reason: `entry ${entry.index} is not JSON: ${entry.data.slice(0, 80)}` };
  }
  switch (command.op) {
    case "write":
      kv.set(command.key, command.value);
      return { kind: "write", opId: command.opId };
    case "cas": {
      const ok = (kv.get(command.key) ?? null) === command.from;
      if (ok) kv.set(command.key, command.to);
      return { kind: "cas", opId: command.opId, ok };
    }
    case "read":
      return { kind: "read", opId: command.opId, value: kv.get(command.key) ?? null };
    default:
      return { kind: "invalid", reason: `entry ${entry.index} has an unknown op` };
  }
}

export type ReadLevel = "linearizable" | "strong" | "weak" | "none";

export interface WorkloadOptions {
  readonly clients: number;
  readonly keys: number;
  readonly timeoutMs: number;
  readonly maxThinkMs: number;
  /** Relative weights of the kinds of operation. */
  readonly mix: { readonly write: number; readonly cas: number; readonly linearizableRead: number; readonly strongRead: number; readonly weakRead: number; readonly noneRead: number };
  /** Attempts at other nodes after a refusal, before the client gives the operation up. */
  readonly maxAttempts: number;
  /** Chance that a client starts an operation at a random node rather than the leader it knows (reads near it). */
  readonly roamProbability: number;
  readonly localReadsOnBelievedLeader: boolean;
}

type OpState = "pending" | "ok" | "failed" | "indeterminate";

/** One client operation and everything known about it. */
export interface HistoryOp {
  readonly opId: number;
  readonly clientId: number;
  readonly input: RegisterInput;
  readonly level: ReadLevel | null;
  output: RegisterOutput | undefined;
  call: number;
  ret: number;
  state: OpState;
  node: NodeId;
  index: number | null;
  term: number | null;
  /** Sim time after which the client gives up waiting. */
  deadlineMs: number;
  context: string | null;
}

interface Client {
  readonly id: number;
  target: NodeId | null;
  current: HistoryOp | null;
  pendingInput: { input: RegisterInput; level: ReadLevel | null; attempts: number } | null;
  nextActionAtMs: number;
}

/** A proposal the core accepted: it must end committed or refused (another term at its index) by the end. */
export interface AcceptedProposal {
  readonly index: number;
  readonly term: number;
  readonly node: NodeId;
  readonly what: string;
  readonly acceptedAtMs: number;
}

interface FirstApply {
  readonly term: number;
  readonly result: ApplyResult;
  readonly clock: number;
}

export interface WorkloadEnvironment {
  readonly cluster: Cluster;
  readonly random: Prng;
  nowMs(): number;
  trace(text: string): void;
  mixIntoTrace(text: string): void;
  wakeClient(clientId: number, atMs: number): void;
  /** Nodes that are up, for clients that need somewhere to go. */
  liveMembers(): SimNode[];
  afterInput(node: SimNode): void;
}

export class Workload {
  readonly history: HistoryOp[] = [];
  readonly uncheckedReads: { level: ReadLevel; key: string; value: string | null; node: NodeId }[] = [];
  readonly proposals: AcceptedProposal[] = [];
  readonly acknowledged: { index: number; term: number; what: string }[] = [];
  private readonly clients: Client[] = [];
  private readonly byNodeIndex = new Map<string, HistoryOp[]>();
  private readonly readsByContext = new Map<string, HistoryOp>();
  private readonly firstApplies = new Map<number, FirstApply>();
  private readonly writtenValues = new Set<string>();
  private clock = 0;
  private nextOpId = 1;
  private acceptingNewOps = true;
  refusals = 0;
  timeouts = 0;

  constructor(
    private readonly options: WorkloadOptions,
    private readonly env: WorkloadEnvironment,
  ) {
    if (options.clients < 1 || options.keys < 1) throw new RangeError("a workload needs at least one client and one key");
    for (let id = 1; id <= options.clients; id += 1) {
      this.clients.push({ id, target: null, current: null, pendingInput: null, nextActionAtMs: 0 });
    }
  }

  get clientIds(): number[] {
    return this.clients.map((client) => client.id);
  }

  /** Liveness mode: clients finish what they started and start nothing new. */
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

  // -------------------------------------------------------------------------------------------------------------
  // Clients.

  /** A client's scheduled moment: give up on a late operation, or start (or retry) the next one. */
  runClient(clientId: number): void {
    const client = this.clients[clientId - 1];
    if (client === undefined) throw new Error(`unknown client ${clientId}`);
    const now = this.env.nowMs();
    if (client.current !== null) {
      if (now >= client.current.deadlineMs) this.giveUp(client, "timed out");
      return;
    }
    if (now < client.nextActionAtMs) return;
    if (client.pendingInput === null) {
      if (!this.acceptingNewOps) return;
      client.pendingInput = { ...this.generateInput(client), attempts: 0 };
      if (this.env.random.chance(this.options.roamProbability)) client.target = null;
    }
    this.attempt(client);
  }

  private generateInput(client: Client): { input: RegisterInput; level: ReadLevel | null } {
    const random = this.env.random;
    const key = `k${random.nextInt(this.options.keys)}`;
    const mix = this.options.mix;
    const weights = [mix.write, mix.cas, mix.linearizableRead, mix.strongRead, mix.weakRead, mix.noneRead];
    let roll = random.nextInt(weights.reduce((sum, weight) => sum + weight, 0));
    let choice = 0;
    while (roll >= (weights[choice] ?? 0)) {
      roll -= weights[choice] ?? 0;
      choice += 1;
    }
    const value = `c${client.id}v${this.nextOpId}`;
    switch (choice) {
      case 0:
        return { input: { kind: "write", key, value }, level: null };
      case 1: {
        const known = [...this.writtenValues];
        const from = known.length === 0 || random.chance(0.2) ? null : random.pick(known.slice(-8));
        return { input: { kind: "cas", key, from, to: value }, level: null };
      }
      case 2:
        return { input: { kind: "read", key }, level: "linearizable" };
      case 3:
        return { input: { kind: "read", key }, level: "strong" };
      case 4:
        return { input: { kind: "read", key }, level: "weak" };
      default:
        return { input: { kind: "read", key }, level: "none" };
    }
  }

  private chooseNode(client: Client): SimNode | null {
    const cluster = this.env.cluster;
    const target = client.target === null ? undefined : cluster.nodes.get(client.target);
    if (target !== undefined && target.up) return target;
    const live = this.env.liveMembers();
    if (live.length === 0) return null;
    const chosen = this.env.random.pick(live);
    client.target = chosen.id;
    return chosen;
  }

  private attempt(client: Client): void {
    const pending = client.pendingInput;
    if (pending === null) return;
    pending.attempts += 1;
    const node = this.chooseNode(client);
    const core = node?.core ?? null;
    if (node === null || core === null) {
      this.retryLater(client, null, "no live node");
      return;
    }
    const opId = this.nextOpId;
    const { input, level } = pending;
    if (input.kind === "read" && level !== "strong") {
      this.attemptRead(client, node, opId, input, level ?? "linearizable");
      return;
    }
    const command = commandFor(input, client.id, opId);
    const result = this.env.cluster.guard(node, "propose", () => core.propose(JSON.stringify(command)));
    if (result === null) return this.retryLater(client, null, "core threw");
    if (!result.ok) {
      this.env.afterInput(node);
      return this.retryLater(client, result.error, `${node.id} refused ${describeInput(input)}`);
    }
    // Registered before the node handles its Ready: a single-node cluster commits and applies right away.
    const op = this.startOp(client, node, opId, input, level);
    op.index = result.index;
    op.term = result.term;
    const key = `${node.id}@${result.index}`;
    const waiting = this.byNodeIndex.get(key);
    if (waiting === undefined) this.byNodeIndex.set(key, [op]);
    else waiting.push(op);
    this.proposals.push({ index: result.index, term: result.term, node: node.id, what: `op ${opId}`, acceptedAtMs: this.env.nowMs() });
    this.env.trace(`client ${client.id} -> ${node.id} propose op ${opId} ${describeInput(input)} at ${result.index}:${result.term}`);
    this.env.afterInput(node);
  }

  private attemptRead(client: Client, node: SimNode, opId: number, input: RegisterInput & { kind: "read" }, level: ReadLevel): void {
    const core = node.core;
    if (core === null) return;
    if (level === "none" || level === "weak") {
      const status = this.env.cluster.guard(node, "status", () => core.status());
      if (status === null) return;
      if (level === "weak" && status.role !== "leader") {
        this.retryLater(client, { code: "NOT_LEADER", leader: status.leader, message: "weak read off the leader" }, `${node.id} refused a weak read`);
        return;
      }
      const value = node.store.kv.get(input.key) ?? null;
      this.nextOpId += 1;
      this.uncheckedReads.push({ level, key: input.key, value, node: node.id });
      this.finishClient(client);
      return;
    }
    if (this.options.localReadsOnBelievedLeader && node.lastStatus?.role === "leader") {
      // Bug 3: answer from the local state machine, trusting a belief of leadership without a ReadIndex round.
      const op = this.startOp(client, node, opId, input, level);
      this.complete(client, op, { value: node.store.kv.get(input.key) ?? null });
      return;
    }
    const context = `${opId}.${client.pendingInput?.attempts ?? 0}:${input.key}`;
    const result = this.env.cluster.guard(node, "requestRead", () => core.requestRead(context));
    if (result === null) return this.retryLater(client, null, "core threw");
    if (!result.ok) {
      this.env.afterInput(node);
      return this.retryLater(client, result.error, `${node.id} refused a read`);
    }
    const op = this.startOp(client, node, opId, input, level);
    op.context = context;
    this.readsByContext.set(`${node.id}|${context}`, op);
    this.env.trace(`client ${client.id} -> ${node.id} read op ${opId} ${input.key} (${context})`);
    this.env.afterInput(node);
  }

  private startOp(client: Client, node: SimNode, opId: number, input: RegisterInput, level: ReadLevel | null): HistoryOp {
    this.nextOpId += 1;
    const op: HistoryOp = {
      opId,
      clientId: client.id,
      input,
      level,
      output: undefined,
      call: this.tick(),
      ret: Number.POSITIVE_INFINITY,
      state: "pending",
      node: node.id,
      index: null,
      term: null,
      deadlineMs: this.env.nowMs() + this.options.timeoutMs,
      context: null,
    };
    if (input.kind === "write") this.writtenValues.add(input.value);
    if (input.kind === "cas") this.writtenValues.add(input.to);
    this.history.push(op);
    client.current = op;
    client.pendingInput = null;
    this.env.wakeClient(client.id, op.deadlineMs);
    return op;
  }

  private retryLater(client: Client, error: ProposalError | null, why: string): void {
    this.refusals += 1;
    const pending = client.pendingInput;
    if (error?.code === "NOT_LEADER" && error.leader !== null) client.target = error.leader;
    else client.target = null;
    if (pending !== null && pending.attempts >= this.options.maxAttempts) {
      // Frequent while no leader is known: folded into the trace hash rather than crowding the readable tail.
      this.env.mixIntoTrace(`client ${client.id} gives up on ${describeInput(pending.input)} after ${pending.attempts} attempts (${why})`);
      client.pendingInput = null;
    }
    client.nextActionAtMs = this.env.nowMs() + this.env.random.between(1, 10 + 5 * (pending?.attempts ?? 1));
    this.env.wakeClient(client.id, client.nextActionAtMs);
  }

  private finishClient(client: Client): void {
    client.current = null;
    client.pendingInput = null;
    client.nextActionAtMs = this.env.nowMs() + this.env.random.between(0, this.options.maxThinkMs);
    this.env.wakeClient(client.id, client.nextActionAtMs);
  }

  private complete(client: Client | null, op: HistoryOp, output: RegisterOutput): void {
    op.output = output;
    op.ret = this.tick();
    op.state = "ok";
    if (op.index !== null && op.term !== null && op.input.kind !== "read") {
      this.acknowledged.push({ index: op.index, term: op.term, what: `op ${op.opId} ${describeInput(op.input)}` });
    }
    this.env.trace(`client ${op.clientId} <- ${op.node} op ${op.opId} ok ${JSON.stringify(output)}`);
    if (client !== null && client.current === op) this.finishClient(client);
  }

  private fail(op: HistoryOp, why: string): void {
    op.state = "failed";
    this.env.trace(`client ${op.clientId} <- ${op.node} op ${op.opId} failed: ${why}`);
    const client = this.clients[op.clientId - 1];
    if (client !== undefined && client.current === op) this.finishClient(client);
  }

  private giveUp(client: Client, why: string): void {
    const op = client.current;
    if (op === null) return;
    this.timeouts += 1;
    // A client that heard nothing back tries another node next, as real clients fail over.
    client.target = null;
    op.state = op.input.kind === "read" ? "failed" : "indeterminate";
    this.env.trace(`client ${client.id} op ${op.opId} ${why}: ${op.state}`);
    this.finishClient(client);
  }

  // -------------------------------------------------------------------------------------------------------------
  // What the shell reports.

  onApplied(node: SimNode, entry: LogEntry, result: ApplyResult): void {
    if (!this.firstApplies.has(entry.index)) this.firstApplies.set(entry.index, { term: entry.term, result, clock: this.tick() });
    const key = `${node.id}@${entry.index}`;
    const waiting = this.byNodeIndex.get(key);
    if (waiting === undefined) return;
    this.byNodeIndex.delete(key);
    for (const op of waiting) {
      if (op.state !== "pending") continue;
      if (entry.term !== op.term) {
        this.fail(op, `${entry.index} was committed with term ${entry.term}, not ${op.term}`);
        continue;
      }
      const output = outputFor(op, result);
      if (output === null) {
        this.env.cluster.guard(node, "apply", () => {
          throw new Error(`op ${op.opId} at ${entry.index}:${entry.term} applied as ${JSON.stringify(result)}`);
        });
        continue;
      }
      this.complete(this.clients[op.clientId - 1] ?? null, op, output);
    }
  }

  onReadServed(node: SimNode, context: string, value: string | null): void {
    const key = `${node.id}|${context}`;
    const op = this.readsByContext.get(key);
    if (op === undefined) return;
    this.readsByContext.delete(key);
    if (op.state !== "pending") return;
    this.complete(this.clients[op.clientId - 1] ?? null, op, { value });
  }

  onReadFailed(node: SimNode, context: string, reason: string): void {
    const key = `${node.id}|${context}`;
    const op = this.readsByContext.get(key);
    if (op === undefined) return;
    this.readsByContext.delete(key);
    if (op.state === "pending") this.fail(op, `read refused: ${reason}`);
  }

  /** The node's client connections break: whatever it had not answered is now unknown. */
  onCrashed(node: SimNode): void {
    for (const client of this.clients) {
      const op = client.current;
      if (op === null || op.node !== node.id || op.state !== "pending") continue;
      this.giveUp(client, `lost its connection to ${node.id}`);
    }
    for (const [key, op] of this.readsByContext) if (op.node === node.id) this.readsByContext.delete(key);
    for (const [key, ops] of this.byNodeIndex) {
      if (ops.every((op) => op.state !== "pending")) this.byNodeIndex.delete(key);
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // The end.

  /**
   * Settles operations whose client stopped waiting, from what the cluster as a whole applied: committed with
   * its term means it happened (it took effect no later than its first application anywhere); another term at
   * its index means it never happened.
   */
  settleIndeterminate(): void {
    for (const op of this.history) {
      if (op.state !== "indeterminate" && op.state !== "pending") continue;
      if (op.input.kind === "read" || op.index === null || op.term === null) continue;
      const applied = this.firstApplies.get(op.index);
      if (applied === undefined) continue;
      if (applied.term !== op.term) {
        op.state = "failed";
        continue;
      }
      const output = outputFor(op, applied.result);
      if (output === null) continue;
      op.output = output;
      op.ret = Math.max(applied.clock, op.call + 0.5);
      op.state = "ok";
      this.acknowledged.push({ index: op.index, term: op.term, what: `op ${op.opId} ${describeInput(op.input)} (settled)` });
    }
  }

  /** Proposals not yet known committed or refused. */
  unresolvedProposals(): AcceptedProposal[] {
    return this.proposals.filter((proposal) => !this.firstApplies.has(proposal.index));
  }

  /** The operations the linearizability checker sees: writes, CAS, and linearizable and strong reads. */
  linearizableHistory(): Operation<RegisterInput, RegisterOutput>[] {
    const operations: Operation<RegisterInput, RegisterOutput>[] = [];
    for (const op of this.history) {
      if (op.state === "failed") continue;
      if (op.input.kind === "read" && op.state !== "ok") continue;
      const known = op.state === "ok";
      operations.push({ clientId: op.clientId, input: op.input, output: known ? op.output : undefined, call: op.call, ret: known ? op.ret : Number.POSITIVE_INFINITY });
    }
    return operations;
  }

  /** Reads at levels "none" and "weak" are not linearizable, but never invent a value. */
  checkUncheckedReads(fail: (kind: string, detail: string) => void): void {
    for (const read of this.uncheckedReads) {
      if (read.value !== null && !this.writtenValues.has(read.value)) {
        fail("phantom read", `a ${read.level} read of ${read.key} at ${read.node} returned ${read.value}, which no client ever wrote`);
      }
    }
  }

  /** Registers a proposal made outside the clients (membership changes), so that liveness waits for it too. */
  noteProposal(proposal: AcceptedProposal): void {
    this.proposals.push(proposal);
  }
}

function commandFor(input: RegisterInput, clientId: number, opId: number): Command {
  switch (input.kind) {
    case "write":
      return { op: "write", key: input.key, value: input.value, clientId, opId };
    case "cas":
      return { op: "cas", key: input.key, from: input.from, to: input.to, clientId, opId };
    default:
      return { op: "read", key: input.key, clientId, opId };
  }
}

function outputFor(op: HistoryOp, result: ApplyResult): RegisterOutput | null {
  if (result.kind === "write" && result.opId === op.opId && op.input.kind === "write") return {};
  if (result.kind === "cas" && result.opId === op.opId && op.input.kind === "cas") return { ok: result.ok };
  if (result.kind === "read" && result.opId === op.opId && op.input.kind === "read") return { value: result.value };
  return null;
}

export function describeInput(input: RegisterInput): string {
  switch (input.kind) {
    case "write":
      return `write(${input.key}=${input.value})`;
    case "cas":
      return `cas(${input.key}: ${input.from ?? "null"} -> ${input.to})`;
    default:
      return `read(${input.key})`;
  }
}
