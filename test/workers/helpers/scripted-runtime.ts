// A real NodeRuntime (real raft storage, real SQL state machine on the object's SQLite) whose peers are scripted by
// the test: every message it sends is recorded, and the test answers in the peers' name. Time is a manual clock, so
// ticks, elections and read contexts are deterministic. Run it inside runInDurableObject on an object that was never
// started as a ClusterNode (its own runtime stays null), so the scripted runtime is the only one on that storage.
import { env } from "cloudflare:test";
import { PROTOCOL_VERSION, type ClusterConfig } from "../../../src/objects/api";
import { objectName } from "../../../src/objects/config";
import { NodeRuntime } from "../../../src/objects/node-runtime";
import type { SyncKv } from "../../../src/objects/raft-storage";
import type { ShellBugs } from "../../../src/objects/shell-bugs";
import { encodeSqlRequest } from "../../../src/objects/sql/codec";
import { createStateMachine } from "../../../src/objects/sql/port";
import type { StateMachinePort } from "../../../src/objects/state-machine-port";
import type { RaftEnvelope, TransportClock } from "../../../src/objects/transport/index";
import type { LogEntry, Message } from "../../../src/replication/types";
import type { Statement } from "../../../src/shared/sql";
import { uniqueClusterName, waitFor } from "./cluster";

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export interface ScriptedNodeOptions {
  readonly prefix: string;
  readonly nodes: readonly string[];
  readonly self: string;
  readonly bugs?: ShellBugs;
  readonly heartbeatIntervalMs?: number;
  readonly electionTimeoutMs?: number;
  readonly snapshotThresholdEntries?: number;
  /** Wraps the real state machine (e.g. to count or fail calls). */
  readonly wrapStateMachine?: (port: StateMachinePort) => StateMachinePort;
  /** Wraps the KV store the runtime and its Raft storage use (the state machine keeps the object's own). */
  readonly wrapKv?: (kv: SyncKv) => SyncKv;
  /** What a peer's receive() answers (default { ok: true }); called after the envelope is recorded. */
  readonly answer?: (envelope: RaftEnvelope, node: ScriptedNode) => unknown;
}

/** What a scripted peer reports about its storage when asked: nothing persisted yet, as new as the scripted node. */
const SCRIPTED_PEER_REPORT = {
  appliedIndex: 0,
  schemaHash: "scripted-peer",
  lastLogIndex: 0,
  incarnation: "scripted-peer",
  term: 0,
} as const;

/** A stub of a ClusterNode object that was never started: the scripted runtime runs on its storage. */
export function scriptedObject(prefix: string): { stub: DurableObjectStub; cluster: string } {
  const cluster = uniqueClusterName(prefix);
  return { cluster, stub: env.CLUSTER_NODE.getByName(objectName({ cluster, node: "scripted" })) };
}

export class ScriptedNode {
  readonly config: ClusterConfig;
  readonly sent: Message[] = [];
  readonly envelopes: RaftEnvelope[] = [];
  nowMs = 1_000_000;
  runtime: NodeRuntime;
  private readonly clock: TransportClock;

  constructor(
    private readonly state: DurableObjectState,
    cluster: string,
    private readonly options: ScriptedNodeOptions,
  ) {
    this.config = {
      name: cluster,
      members: options.nodes.map((name) => ({ name })),
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 100,
      electionTimeoutMs: options.electionTimeoutMs ?? 1000,
      ...(options.snapshotThresholdEntries === undefined
        ? {}
        : { snapshotThresholdEntries: options.snapshotThresholdEntries }),
      // Scripted peers report no checkpoint digests: with the monitor on, no snapshot image could ever be verified.
      consistency: { enabled: false },
    };
    this.clock = {
      now: () => this.nowMs,
      schedule: (fn, delayMs) => {
        const handle = setTimeout(fn, Math.max(0, delayMs));
        return () => clearTimeout(handle);
      },
    };
    this.runtime = this.start();
  }

  /** A new runtime on the same storage: what a restart of the object does (volatile state lost). */
  start(): NodeRuntime {
    const port = createStateMachine(this.state.storage);
    this.runtime = new NodeRuntime({
      identity: { cluster: this.config, node: this.options.self },
      kv: this.options.wrapKv === undefined ? this.state.storage.kv : this.options.wrapKv(this.state.storage.kv),
      transaction: (fn) => this.state.storage.transactionSync(fn),
      stateMachine: this.options.wrapStateMachine === undefined ? port : this.options.wrapStateMachine(port),
      peerStub: (member) => ({
        receive: async (envelope: RaftEnvelope) => {
          if (envelope.onlyForAnswer === true) {
            // The voting census of the scripted node's new storage (src/objects/runtime/census.ts): the scripted
            // peers are as new as it is. Not recorded: it carries no message.
            return { ok: true, report: SCRIPTED_PEER_REPORT };
          }
          this.envelopes.push(envelope);
          this.sent.push(...envelope.messages);
          return this.options.answer?.(envelope, this) ?? { ok: true };
        },
        start: async () => ({ ok: true, node: member.name }),
      }),
      faultsEnabled: false,
      clock: this.clock,
      seed: 7,
      incarnation: "scripted",
      ...(this.options.bugs === undefined ? {} : { bugs: this.options.bugs }),
    });
    return this.runtime;
  }

  /** Steps `messages` from `from` into the runtime, as the transport would. */
  deliver(from: string, messages: readonly DistributiveOmit<Message, "from" | "to">[]): void {
    const full = messages.map((message) => ({ ...message, from, to: this.options.self }) as Message);
    this.runtime.receiveEnvelope({
      protocolVersion: PROTOCOL_VERSION,
      cluster: this.config.name,
      from,
      to: this.options.self,
      messages: full,
    });
  }

  /** Moves the manual clock and lets the runtime tick. */
  advance(ms: number): void {
    this.nowMs += ms;
    this.runtime.advanceClock();
  }

  /** The first message sent after `afterCount` messages that matches; waits (bounded) for the transport. */
  async nextSent<T extends Message["type"]>(
    type: T,
    options: { to?: string; after?: number; timeoutMs?: number } = {},
  ): Promise<Extract<Message, { type: T }>> {
    const after = options.after ?? 0;
    return waitFor(
      `a ${type} message${options.to === undefined ? "" : ` to ${options.to}`}`,
      () =>
        this.sent
          .slice(after)
          .find(
            (m): m is Extract<Message, { type: T }> =>
              m.type === type && (options.to === undefined || m.to === options.to),
          ),
      { timeoutMs: options.timeoutMs ?? 5_000, intervalMs: 5 },
    );
  }

  /**
   * New storage starts on voting probation until its census heard every member (src/objects/runtime/census.ts): one
   * tick asks the scripted peers, who answer that they hold nothing, and the probation ends (bounded wait).
   */
  async endVotingProbation(): Promise<void> {
    if (!this.runtime.status().votingProbation) {
      return;
    }
    this.advance(this.config.heartbeatIntervalMs);
    await waitFor("the voting census to conclude", () => (this.runtime.status().votingProbation ? undefined : true), {
      timeoutMs: 5_000,
      intervalMs: 5,
    });
  }

  /** Times out the election timer and grants the campaign with `voters`' (pre)votes: this node leads. */
  async electSelf(voters: readonly string[]): Promise<number> {
    await this.endVotingProbation();
    const after = this.sent.length;
    this.advance(this.config.electionTimeoutMs * 2 + this.config.heartbeatIntervalMs);
    // One jump of the clock is a stall to the node: it stops one tick short of its election timeout (what waited
    // behind the stall goes first), so one more tick times it out.
    this.advance(this.config.heartbeatIntervalMs);
    if (voters.length === 0 && this.runtime.status().role === "leader") {
      return this.runtime.status().term;
    }
    const preVote = await this.nextSent("preVote", { after });
    for (const voter of voters) {
      this.deliver(voter, [{ type: "preVoteResponse", term: preVote.term, granted: true }]);
    }
    const vote = await this.nextSent("vote", { after });
    for (const voter of voters) {
      this.deliver(voter, [{ type: "voteResponse", term: vote.term, granted: true }]);
    }
    const status = this.runtime.status();
    if (status.role !== "leader") {
      throw new Error(`${this.options.self} did not become leader (role ${status.role}, term ${status.term})`);
    }
    return status.term;
  }
}

/**
 * Plays `peers` acknowledging every append this leader sends them, until the leader's commit index reaches `index`
 * (bounded by a deadline).
 */
export async function replicateTo(node: ScriptedNode, peers: readonly string[], index: number): Promise<void> {
  const acked = new Map<string, number>();
  await waitFor(
    `commit index ${index}`,
    () => {
      if (node.runtime.status().commit >= index) {
        return true;
      }
      for (const peer of peers) {
        const appends = node.sent.filter(
          (m): m is Extract<Message, { type: "append" }> => m.type === "append" && m.to === peer,
        );
        const newest = appends[appends.length - 1];
        if (newest === undefined) {
          continue;
        }
        const last = newest.prevLogIndex + newest.entries.length;
        if ((acked.get(peer) ?? -1) >= last) {
          continue;
        }
        acked.set(peer, last);
        node.deliver(peer, [
          { type: "appendResponse", term: newest.term, success: true, index: last, rejectHint: null },
        ]);
      }
      return undefined;
    },
    { timeoutMs: 5_000, intervalMs: 5 },
  );
}

/** The log entry of a write request, as a leader would have logged it. */
export function writeEntry(options: {
  index: number;
  term: number;
  id: string;
  statements: readonly Statement[];
}): LogEntry {
  return {
    index: options.index,
    term: options.term,
    kind: "normal",
    data: encodeSqlRequest({ id: options.id, statements: options.statements, transaction: false }),
  };
}

export function noopEntry(index: number, term: number): LogEntry {
  return { index, term, kind: "noop", data: "" };
}

/** Settles `promise` into a value or an error, without throwing. */
export async function settle<T>(promise: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await promise };
  } catch (error) {
    return { ok: false, error };
  }
}

/** The NodeError code of a failure thrown by the runtime, or a description of what else it was. */
export function codeOf(error: unknown): string {
  if (typeof error === "object" && error !== null && "error" in error) {
    const inner = (error as { error?: { code?: unknown } }).error;
    if (typeof inner?.code === "string") {
      return inner.code;
    }
  }
  return `not a NodeFailure: ${String(error)}`;
}

/** Lets pending microtasks and timers of 0 ms run (the runtime's continuations after a resolved waiter). */
export function yieldToEvents(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 5));
}
