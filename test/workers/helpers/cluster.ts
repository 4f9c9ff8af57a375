// Test helpers for real clusters of ClusterNode objects in workerd: real alarms, real RPC, real SQLite.
// Every test builds its own cluster name (alarms are not reset between tests) and waits on conditions with
// deadlines, never on fixed sleeps.
import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { afterEach } from "vitest";
import {
  PROTOCOL_VERSION,
  type ClusterConfig,
  type NodeAddress,
  type NodeResult,
  type NodeStatusReport,
} from "../../../src/objects/api";
import type { ClusterNode } from "../../../src/objects/cluster-node";
import { objectName } from "../../../src/objects/config";
import { createStateMachine } from "../../../src/objects/sql/port";
import type { FaultRules } from "../../../src/objects/transport/index";
import type { SqlValue, StatementResult } from "../../../src/shared/sql";

let clusterSeq = 0;

/** How many times evict() asks the runtime to evict a node that is still held by calls in flight. */
const EVICTION_ATTEMPTS = 3;

/** A cluster name no other test uses. */
export function uniqueClusterName(prefix: string): string {
  clusterSeq++;
  return `${prefix}-${Date.now().toString(36)}-${clusterSeq}`;
}

/** Polls `probe` until it returns a value other than undefined, or throws with `what` after the deadline. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const intervalMs = options.intervalMs ?? 20;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) {
        return value;
      }
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError === null ? "" : ` (last error: ${String(lastError)})`}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export interface TestClusterOptions {
  readonly prefix: string;
  readonly nodes: number;
  readonly heartbeatIntervalMs?: number;
  readonly electionTimeoutMs?: number;
  readonly snapshotThresholdEntries?: number;
  readonly consistency?: ClusterConfig["consistency"];
}

export class TestCluster {
  readonly config: ClusterConfig;
  readonly names: readonly string[];

  constructor(options: TestClusterOptions) {
    this.names = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
    this.config = {
      name: uniqueClusterName(options.prefix),
      members: this.names.map((name) => ({ name })),
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 20,
      electionTimeoutMs: options.electionTimeoutMs ?? 200,
      ...(options.snapshotThresholdEntries === undefined
        ? {}
        : { snapshotThresholdEntries: options.snapshotThresholdEntries }),
      ...(options.consistency === undefined ? {} : { consistency: options.consistency }),
    };
  }

  address(node: string): NodeAddress {
    return { protocolVersion: PROTOCOL_VERSION, cluster: this.config, node };
  }

  stub(node: string): DurableObjectStub<ClusterNode> {
    return env.CLUSTER_NODE.getByName(objectName({ cluster: this.config.name, node }));
  }

  async startAll(): Promise<void> {
    await Promise.all(this.names.map(async (name) => unwrap(await this.stub(name).start(this.address(name)))));
  }

  async status(node: string): Promise<NodeStatusReport> {
    return unwrap(await this.stub(node).status(this.address(node)));
  }

  async statuses(nodes: readonly string[] = this.names): Promise<NodeStatusReport[]> {
    return Promise.all(nodes.map((name) => this.status(name)));
  }

  /** Waits until exactly one node of `among` leads and every one of them names it at the same term. */
  async waitForLeader(
    options: { among?: readonly string[]; timeoutMs?: number; notLeader?: string } = {},
  ): Promise<string> {
    const among = options.among ?? this.names;
    return waitFor(
      "a single agreed leader",
      async () => {
        const statuses = await this.statuses(among);
        const leaders = statuses.filter((s) => s.role === "leader");
        if (leaders.length !== 1) {
          return undefined;
        }
        const leader = leaders[0]!;
        if (options.notLeader !== undefined && leader.node === options.notLeader) {
          return undefined;
        }
        const agreed = statuses.every((s) => s.leader === leader.node && s.term === leader.term);
        return agreed ? leader.node : undefined;
      },
      { timeoutMs: options.timeoutMs ?? 20_000 },
    );
  }

  /** Executes on the current leader, following NOT_LEADER hints, until the deadline. Returns results and index. */
  async execute(
    statements: readonly (string | { sql: string; params?: readonly SqlValue[] })[],
    options: { transaction?: boolean; id?: string; timeoutMs?: number; among?: readonly string[] } = {},
  ): Promise<{ results: readonly StatementResult[]; raftIndex: number; node: string }> {
    const id = options.id ?? crypto.randomUUID();
    const request = {
      id,
      transaction: options.transaction ?? false,
      statements: statements.map((s) => (typeof s === "string" ? { sql: s } : s)),
    };
    return waitFor(
      "a write to be applied",
      async () => {
        const leader = await this.waitForLeader({
          ...(options.among === undefined ? {} : { among: options.among }),
          timeoutMs: options.timeoutMs ?? 20_000,
        });
        const answer = await this.stub(leader).execute({ ...this.address(leader), request, timeoutMs: 2_000 });
        if (answer.ok) {
          return { ...answer.value, node: leader };
        }
        if (answer.error.retryable) {
          return undefined;
        }
        throw new Error(`${answer.error.code}: ${answer.error.message}`);
      },
      { timeoutMs: options.timeoutMs ?? 20_000 },
    );
  }

  /** A local read on one node (level none). */
  async queryLocal(node: string, sql: string): Promise<StatementResult> {
    const answer = unwrap(
      await this.stub(node).query({
        ...this.address(node),
        statements: [{ sql }],
        level: "none",
        transaction: false,
        timeoutMs: 2_000,
      }),
    );
    return answer.results[0]!;
  }

  /** Waits until every node in `nodes` has applied at least `index` and they all report the same schema hash. */
  async waitForConvergence(options: {
    index: number;
    nodes?: readonly string[];
    timeoutMs?: number;
  }): Promise<NodeStatusReport[]> {
    const nodes = options.nodes ?? this.names;
    return waitFor(
      `nodes ${nodes.join(",")} to apply index ${options.index} with one schema`,
      async () => {
        const statuses = await this.statuses(nodes);
        const caughtUp = statuses.every((s) => s.appliedIndex >= options.index);
        const oneSchema = new Set(statuses.map((s) => s.schemaHash)).size === 1;
        return caughtUp && oneSchema ? statuses : undefined;
      },
      { timeoutMs: options.timeoutMs ?? 20_000 },
    );
  }

  /** The full SQL dump of a node: equal dumps mean equal schema and data. */
  /** The SQL dump of one node's applied state, read on the node itself (backup over RPC is the leader's only). */
  async dump(node: string): Promise<string> {
    return runInDurableObject(this.stub(node), (_instance, state) => createStateMachine(state.storage).dumpSql());
  }

  async setFaults(node: string, rules: FaultRules): Promise<void> {
    await this.stub(node).setFaults(rules);
  }

  async setFaultsEverywhere(rules: FaultRules): Promise<void> {
    await Promise.all(this.names.map((name) => this.setFaults(name, rules)));
  }

  /** Cuts `node` off from every other node, both ways. */
  async isolate(node: string): Promise<void> {
    const partitions = this.names
      .filter((other) => other !== node)
      .map((other) => ({ from: node, to: other, bothWays: true }));
    await this.setFaultsEverywhere({ partitions });
  }

  async heal(): Promise<void> {
    await this.setFaultsEverywhere({});
  }

  /**
   * Wipes a node's storage (data, log, identity) and its in-memory state. The running instance is halted first:
   * otherwise, between deleteAll() and the eviction, it could still persist its in-memory hard state (a commit
   * index with no log under it), which no real wipe produces.
   */
  async wipe(node: string): Promise<void> {
    await runInDurableObject(this.stub(node), async (instance, state) => {
      await instance.testHalt();
      await state.storage.deleteAlarm();
      await state.storage.deleteAll();
    });
    await evictDurableObject(this.stub(node));
  }

  /** Stops every node for good so the finished test leaves nothing ticking. */
  async halt(): Promise<void> {
    await Promise.all(this.names.map((name) => this.stub(name).testHalt()));
  }

  /**
   * Evicts a node: in-memory state is lost, storage kept; its alarm or the next call brings it back. The eviction waits
   * for the object's pending work to drain, and a running node always has its tick timer pending: it ticks by its
   * alarm alone first.
   */
  async evict(node: string): Promise<void> {
    for (let attempt = 1; ; attempt += 1) {
      await this.stub(node).testBeforeEviction();
      try {
        await evictDurableObject(this.stub(node));
        return;
      } catch (err) {
        // Under load a peer's call or a client's write may still hold the object when the runtime gives up waiting
        // (seen on a busy machine): it would not be evicted then either. Try again a bounded number of times.
        if (attempt >= EVICTION_ATTEMPTS || !String(err).includes("active references")) {
          throw err;
        }
      }
    }
  }

  /** Evicts a node, or aborts it (also a crash: memory lost, storage kept) when it stays busy through every attempt. */
  async evictOrAbort(node: string): Promise<"evict" | "abort"> {
    try {
      await this.evict(node);
      return "evict";
    } catch (err) {
      if (!String(err).includes("active references")) {
        throw err;
      }
      await this.abort(node);
      return "abort";
    }
  }

  /**
   * Aborts a node abruptly (ctx.abort: in-flight calls fail, in-memory state is lost, storage kept), as a crash
   * would; its alarm or the next call brings it back. The abort itself surfaces as a rejected call: expected.
   */
  async abort(node: string): Promise<void> {
    try {
      await runInDurableObject(this.stub(node), (_instance, state) => {
        state.abort("aborted by the test harness");
      });
    } catch {
      // The abort rejects the call that carried it; that is how it is meant to end.
    }
  }

  /**
   * Whether a node has been started (holds its identity), looked up in its storage without calling it: any RPC
   * call would start it, which a test of who starts whom must not do.
   */
  async isStarted(node: string): Promise<boolean> {
    return runInDurableObject(
      this.stub(node),
      (_instance, state) => state.storage.kv.get("node/identity") !== undefined,
    );
  }

  /** Starts one node (any node, configured or not) without touching the others. */
  async startNode(node: string): Promise<NodeStatusReport> {
    return unwrap(await this.stub(node).start(this.address(node)));
  }
}

export function unwrap<T>(result: NodeResult<T>): T {
  if (!result.ok) {
    throw new Error(`${result.node}: ${result.error.code}: ${result.error.message}`);
  }
  return result.value;
}

/** `node`'s recent events (name and fields), oldest first. */
export async function recentEvents(
  cluster: TestCluster,
  node: string,
): Promise<{ event: string; fields: Record<string, unknown> }[]> {
  const answer = (await cluster.stub(node).recentEvents({ ...cluster.address(node), limit: 256 })) as NodeResult<{
    events: { event: string; fields: Record<string, unknown> }[];
  }>;
  return unwrap(answer).events;
}

/**
 * Returns a factory for clusters that are halted after each test of the calling file, so that no cluster of a
 * finished test keeps ticking (alarms are not reset between tests) and eats the CPU of the next one.
 */
export function clusterFactory(): (options: TestClusterOptions) => TestCluster {
  const live: TestCluster[] = [];
  afterEach(async () => {
    const clusters = live.splice(0);
    await Promise.all(clusters.map((cluster) => cluster.halt()));
  });
  return (options) => {
    const cluster = new TestCluster(options);
    live.push(cluster);
    return cluster;
  };
}
