// A randomized soak of the core inside the tiny test cluster: crashes and restarts, partitions, drops, duplicates,
// reordering, snapshots, membership changes, transfers and reads, with Raft's safety properties checked throughout
// and liveness checked once the faults stop. (The deterministic simulator in test/sim goes much further; this keeps
// the core honest on its own.)
import { describe, expect, it } from "vitest";
import { SeededRandom } from "../../src/replication/index.js";
import type { LogEntry, Message, NodeId, ReadState } from "../../src/replication/types.js";
import { TestCluster, type ConfigOverrides } from "./helpers.js";

interface SafetyState {
  readonly leaderOfTerm: Map<number, NodeId>;
  /** index -> "term/data" of every entry any state machine applied. */
  readonly applied: Map<number, string>;
  /**
   * index -> the lowest current term of a node seen having applied it: the entry was committed in that term or
   * earlier. Leader Completeness binds only leaders of later terms (a removed leader still handing over in an older
   * term may be seen only after a newer leader committed more).
   */
  readonly committedByTerm: Map<number, number>;
  /** Reads: context -> the highest commit index anywhere when the read was requested. */
  readonly commitAtRequest: Map<string, number>;
  readStatesChecked: number;
}

const ALL: NodeId[] = ["a", "b", "c", "d", "e"];
/** STRESS_SEED_SCALE=n runs n times as many seeds (for soaking by hand; the default keeps the suite fast). */
const SEED_SCALE = Math.max(1, Number.parseInt(process.env.STRESS_SEED_SCALE ?? "1", 10) || 1);

function checkSafety(cluster: TestCluster, state: SafetyState, seed: number): void {
  for (const id of cluster.nodes.keys()) {
    const node = cluster.node(id);
    const status = node.core.status();
    // Election safety: one leader per term.
    if (status.role === "leader") {
      const known = state.leaderOfTerm.get(status.term);
      expect(
        known === undefined || known === id,
        `seed ${seed}: two leaders in term ${status.term}: ${String(known)} and ${id}`,
      ).toBe(true);
      if (known === undefined) {
        state.leaderOfTerm.set(status.term, id);
        // Leader completeness: the new leader holds every applied entry (beyond its snapshot).
        const first = status.firstIndex;
        for (const [index, value] of state.applied) {
          if (index < first || (state.committedByTerm.get(index) ?? 0) >= status.term) {
            continue;
          }
          expect(
            index <= status.lastIndex,
            `seed ${seed}: leader ${id} of term ${status.term} lacks applied index ${index}`,
          ).toBe(true);
          const entry = node.store.entries.find((e) => e.index === index);
          if (entry !== undefined) {
            expect(`${entry.term}/${entry.data}`, `seed ${seed}: leader ${id} differs at ${index}`).toBe(value);
          }
        }
      }
    }
    // State machine safety: everyone applies the same entry at each index.
    for (const entry of node.store.appliedEntries) {
      recordApplied(state, entry, seed, id, status.term);
    }
    node.store.appliedEntries.length = 0;
    // Linearizable reads: a read index covers every commit that happened before the read was requested.
    for (const read of node.readStates.splice(0)) {
      checkRead(state, read, seed, id);
    }
    node.failedReads.length = 0;
  }
}

function recordApplied(state: SafetyState, entry: LogEntry, seed: number, id: NodeId, appliedInTerm: number): void {
  const value = `${entry.term}/${entry.data}`;
  const known = state.applied.get(entry.index);
  expect(
    known === undefined || known === value,
    `seed ${seed}: ${id} applied ${value} at ${entry.index}, others ${String(known)}`,
  ).toBe(true);
  state.applied.set(entry.index, value);
  state.committedByTerm.set(
    entry.index,
    Math.min(appliedInTerm, state.committedByTerm.get(entry.index) ?? appliedInTerm),
  );
}

function checkRead(state: SafetyState, read: ReadState, seed: number, id: NodeId): void {
  const floor = state.commitAtRequest.get(read.context);
  expect(floor, `seed ${seed}: unknown read ${read.context}`).toBeDefined();
  expect(
    read.index,
    `seed ${seed}: ${id} read ${read.context} at ${read.index} misses commit ${String(floor)}`,
  ).toBeGreaterThanOrEqual(floor ?? 0);
  state.readStatesChecked++;
}

function maxCommit(cluster: TestCluster): number {
  return Math.max(...[...cluster.nodes.keys()].map((id) => cluster.status(id).commit));
}

function runSeed(seed: number, options: { readonly overrides: ConfigOverrides }): SafetyState {
  const random = new SeededRandom(seed);
  const cluster = new TestCluster(["a", "b", "c"], {
    seed: seed * 7919,
    overrides: {
      snapshotThresholdEntries: 8,
      maxInflightMessages: 3,
      maxMessageBytes: 40,
      laggingThresholdEntries: 4,
      ...options.overrides,
    },
  });
  cluster.addNode("d");
  cluster.addNode("e");
  // Snapshots go out as the shell sends them: at its image's index, mostly the applied index, sometimes an older one
  // (a cached or verified image), between the compaction and the applied index.
  const imageRandom = new SeededRandom(seed * 31 + 7);
  cluster.snapshotSentAt = (sender, message) => {
    const applied = sender.store.applied;
    const compacted = message.snapshot.index;
    if (applied <= compacted || imageRandom.nextInt(3) !== 0) {
      return applied;
    }
    return compacted + imageRandom.nextInt(applied - compacted + 1);
  };
  const state: SafetyState = {
    leaderOfTerm: new Map(),
    applied: new Map(),
    committedByTerm: new Map(),
    commitAtRequest: new Map(),
    readStatesChecked: 0,
  };
  let counter = 0;
  const pick = <T>(items: readonly T[]): T => items[random.nextInt(items.length)] as T;

  for (let step = 0; step < 4000; step++) {
    const roll = random.nextInt(100);
    const id = pick(ALL);
    const leader = cluster.leader();
    if (roll < 35) {
      cluster.tickQuietly(id);
    } else if (roll < 70) {
      // Deliver a random message; sometimes twice.
      if (cluster.queue.length > 0) {
        const [message] = cluster.queue.splice(random.nextInt(cluster.queue.length), 1) as [Message];
        if (!cluster.isDropped(message)) {
          cluster.core(message.to).step(message);
          cluster.processReadies(message.to);
          if (random.nextInt(8) === 0) {
            cluster.core(message.to).step(message);
            cluster.processReadies(message.to);
          }
        }
      }
    } else if (roll < 72) {
      const [lost] = cluster.queue.splice(random.nextInt(Math.max(1, cluster.queue.length)), 1);
      // The shell reports failed snapshot transfers.
      if (lost?.type === "snapshot") {
        cluster.core(lost.from).reportSnapshotResult(lost.to, false);
      }
    } else if (roll < 74) {
      cluster.restart(id);
    } else if (roll < 76) {
      if (random.nextInt(2) === 0) {
        cluster.heal();
      } else {
        cluster.isolate(id);
      }
    } else if (roll < 86) {
      if (leader !== null) {
        cluster.core(leader).propose(`w${counter++}`);
        cluster.processReadies(leader);
      }
    } else if (roll < 93) {
      const context = `r${counter++}`;
      state.commitAtRequest.set(context, maxCommit(cluster));
      cluster.core(id).requestRead(context);
      cluster.processReadies(id);
    } else if (roll < 97) {
      if (leader !== null) {
        const membership = cluster.status(leader).membership;
        const kind = pick(["addLearner", "promote", "remove"] as const);
        const node = pick(ALL);
        if (kind !== "remove" || membership.voters.length > 2 || !membership.voters.includes(node)) {
          cluster.core(leader).proposeConfigChange({ kind, node });
          cluster.processReadies(leader);
        }
      }
    } else if (leader !== null) {
      const action = random.nextInt(4);
      if (action === 0) {
        cluster.core(leader).transferLeadership(pick(ALL));
      } else if (action === 1) {
        cluster.core(leader).stepDown();
      } else if (action === 2) {
        cluster.core(leader).reportUnreachable(pick(ALL));
      } else {
        // The shell holds compaction at an image it prepares (consistency monitor), or lets go.
        const status = cluster.status(leader);
        const compacted = status.firstIndex - 1;
        const hold = random.nextInt(2) === 0 ? null : compacted + random.nextInt(status.applied - compacted + 2);
        cluster.core(leader).holdCompaction(hold);
      }
      cluster.processReadies(leader);
    }
    checkSafety(cluster, state, seed);
  }

  // Liveness: faults stop; a leader emerges and a fresh write reaches every voter's state machine.
  cluster.heal();
  cluster.elect(1000);
  let proposed: { readonly index: number; readonly term: number; readonly data: string } | null = null;
  let attempts = 0;
  const isApplied = (p: { index: number; term: number; data: string }): boolean =>
    state.applied.get(p.index) === `${p.term}/${p.data}`;
  try {
    cluster.tickUntil(() => {
      checkSafety(cluster, state, seed);
      const leader = cluster.leader();
      if (leader === null) {
        return false;
      }
      const leaderStatus = cluster.status(leader);
      // Propose (again) when nothing is pending or the pending write was lost to a leader change.
      if (proposed === null || (!isApplied(proposed) && leaderStatus.term !== proposed.term)) {
        const data = `final-${seed}-${attempts++}`;
        const result = cluster.core(leader).propose(data);
        if (result.ok) {
          proposed = { index: result.index, term: result.term, data };
        }
        cluster.processReadies(leader);
        return false;
      }
      const write = proposed;
      return isApplied(write) && leaderStatus.membership.voters.every((v) => cluster.status(v).applied >= write.index);
    }, 1000);
  } catch (error) {
    for (const id of cluster.nodes.keys()) {
      console.log(
        JSON.stringify({
          ...cluster.status(id),
          replicas: cluster.status(id).replicas.map((r) => [r.id, r.progress, r.matchIndex, r.nextIndex, r.status]),
        }),
      );
    }
    console.log(JSON.stringify(proposed), attempts);
    throw error;
  }
  if (process.env.STRESS_DEBUG) {
    const events = [...cluster.nodes.values()].flatMap((n) => n.events);
    const count = (kind: string) => events.filter((e) => e.kind === kind).length;
    console.log(
      `seed ${seed}: terms=${state.leaderOfTerm.size} applied=${state.applied.size} reads=${state.readStatesChecked} membership=${count("membershipApplied")} transfers=${count("leadershipTransfer")} snapshots=${[...cluster.nodes.values()].reduce((n, node) => n + node.readies.filter((r) => r.snapshot !== null).length, 0)} final=${JSON.stringify(cluster.status(cluster.leader() ?? "a").membership)}`,
    );
  }
  return state;
}

describe("randomized soak", () => {
  it("keeps Raft's safety properties and recovers once faults stop (ReadIndex)", () => {
    let reads = 0;
    for (let seed = 1; seed <= 24 * SEED_SCALE; seed++) {
      reads += runSeed(seed, { overrides: {} }).readStatesChecked;
    }
    expect(reads).toBeGreaterThan(50);
  });

  it("keeps Raft's safety properties and recovers once faults stop (lease reads)", () => {
    let reads = 0;
    for (let seed = 100_001; seed <= 100_000 + 24 * SEED_SCALE; seed++) {
      reads += runSeed(seed, { overrides: { leaseRead: true } }).readStatesChecked;
    }
    expect(reads).toBeGreaterThan(50);
  });

  it("keeps Raft's safety properties without CheckQuorum, with one message in flight and tiny messages", () => {
    let reads = 0;
    const overrides = {
      checkQuorum: false,
      maxInflightMessages: 1,
      maxMessageBytes: 1,
      heartbeatIntervalTicks: 1,
      electionTimeoutTicks: 5,
    };
    for (let seed = 200_001; seed <= 200_000 + 24 * SEED_SCALE; seed++) {
      reads += runSeed(seed, { overrides }).readStatesChecked;
    }
    expect(reads).toBeGreaterThan(50);
  });
});
