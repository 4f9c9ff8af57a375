// Planted bugs and the directed scenarios that make each one show quickly. A checker that never fires proves
// nothing: each bug here must be reported by the simulator within a bounded number of seeds (bugs.test.ts).

import type { SimBugs } from "./cluster.js";
import type { Prng } from "./prng.js";
import type { Scenario } from "./run.js";

export interface BugScenario {
  readonly description: string;
  readonly bugs: SimBugs;
  /** Which checkers are expected to catch it (any of them counts). */
  readonly expectedKinds: readonly string[];
  /** `planted` false: the same directed scenario with the bug left out (it must stay clean). */
  readonly adjustScenario: (scenario: Scenario, random: Prng, planted: boolean) => Scenario;
  /** Safety steps per seed for the hunt. */
  readonly steps: number;
}

const NO_FAULTS: Scenario["faults"] = {
  crashes: false,
  tornCrashes: false,
  partitions: false,
  pathFaults: false,
  slowNodes: false,
  membershipChanges: false,
  transfers: false,
  clockDrift: false,
  meanIntervalMs: 200,
  leaderTargeting: 0.5,
  minDownMs: 20,
  maxDownMs: 200,
  minPartitionMs: 50,
  maxPartitionMs: 400,
  maxDownNodes: 1,
  maxMembers: 7,
  crashAfterVote: 0,
  crashLeaderAfterCommit: 0,
  crashLeaderAfterElection: 0,
};

const SCENARIOS = {
  /** (1) The store forgets the vote on restart; nodes crash right after voting and come straight back. */
  "forget-vote": {
    description: "a vote not persisted across a crash",
    bugs: { forgetVoteOnRestart: true },
    expectedKinds: ["election safety", "log matching", "state machine safety", "leader completeness", "linearizability", "acknowledged write lost"],
    steps: 8000,
    adjustScenario: (scenario: Scenario, random: Prng): Scenario => ({
      ...scenario,
      nodes: 5,
      raft: { ...scenario.raft, electionTimeoutTicks: 2, heartbeatIntervalTicks: 1, checkQuorum: true, leaseRead: false },
      maxTickSkew: 0,
      faults: {
        ...NO_FAULTS,
        crashes: true,
        partitions: true,
        meanIntervalMs: random.between(100, 200),
        leaderTargeting: 1,
        minDownMs: 1,
        maxDownMs: 2,
        maxDownNodes: 2,
        crashAfterVote: 0.8,
      },
      network: { ...scenario.network, minLatencyMs: 2, maxLatencyMs: 12, maxJitterMs: 4, maxDropProbability: 0 },
    }),
  },
  /** (2) Figure 8: the leader commits an entry of an earlier term by counting replicas. */
  "count-previous-term": {
    description: "a previous-term entry committed by counting",
    bugs: { commitPreviousTermByCounting: true },
    expectedKinds: ["state machine safety", "leader completeness", "acknowledged write lost", "linearizability", "log matching"],
    steps: 20_000,
    // Figure 8 on demand: new leaders often crash before their first entry leaves (leaving entries of their term
    // on them alone), and leaders often crash right after advancing their commit index (before anyone hears of
    // it); one entry per message, one message in flight, so an old entry can reach a majority before the new
    // leader's own entry does.
    adjustScenario: (scenario: Scenario, random: Prng): Scenario => ({
      ...scenario,
      nodes: 3,
      raft: { ...scenario.raft, maxInflightMessages: 1, maxMessageBytes: 1, heartbeatIntervalTicks: 1, electionTimeoutTicks: random.between(5, 8) },
      faults: {
        ...NO_FAULTS,
        crashes: true,
        meanIntervalMs: random.between(100, 300),
        leaderTargeting: 0.5,
        minDownMs: 20,
        maxDownMs: 300,
        maxDownNodes: 1,
        crashLeaderAfterCommit: 0.8,
        crashLeaderAfterElection: 0.8,
      },
      workload: { ...scenario.workload, clients: 2, maxThinkMs: 20, mix: { write: 10, cas: 2, linearizableRead: 2, strongRead: 0, weakRead: 0, noneRead: 0 } },
    }),
  },
  /** (3) A node that believes it leads answers linearizable reads locally; deposed leaders linger (no CheckQuorum). */
  "stale-leader-read": {
    description: "reads served locally by a deposed leader",
    bugs: { localReadsOnBelievedLeader: true },
    expectedKinds: ["linearizability"],
    steps: 4000,
    adjustScenario: (scenario: Scenario, random: Prng): Scenario => ({
      ...scenario,
      nodes: random.pick([3, 5]),
      raft: { ...scenario.raft, checkQuorum: false, leaseRead: false },
      faults: {
        ...NO_FAULTS,
        partitions: true,
        meanIntervalMs: random.between(150, 400),
        leaderTargeting: 1,
        minPartitionMs: 300,
        maxPartitionMs: 1500,
      },
      workload: {
        ...scenario.workload,
        clients: 4,
        keys: 1,
        maxThinkMs: 10,
        timeoutMs: 300,
        mix: { write: 5, cas: 0, linearizableRead: 10, strongRead: 0, weakRead: 0, noneRead: 0 },
      },
    }),
  },
  /** (4) The store ignores truncation (overwrites in place, keeps the stale tail); the node restarts on it. */
  "keep-suffix": {
    description: "a follower that keeps a conflicting suffix",
    bugs: { keepConflictingSuffix: true },
    expectedKinds: ["log matching", "log continuity", "state machine safety", "core threw", "apply", "commit", "leader completeness", "linearizability"],
    steps: 4000,
    adjustScenario: (scenario: Scenario, random: Prng): Scenario => ({
      ...scenario,
      nodes: random.pick([3, 5]),
      faults: {
        ...NO_FAULTS,
        partitions: true,
        meanIntervalMs: random.between(150, 400),
        leaderTargeting: 1,
        minPartitionMs: 200,
        maxPartitionMs: 1000,
      },
      workload: { ...scenario.workload, clients: 4, maxThinkMs: 5, mix: { write: 10, cas: 0, linearizableRead: 1, strongRead: 0, weakRead: 0, noneRead: 0 } },
    }),
  },
  /**
   * (5) Lease reads under clock drift far beyond the lease's safety margin (margin 0, tick rates up to 80% apart):
   * a leader whose clock runs slow keeps serving reads after its followers elected another. Planted through the
   * configuration, not the harness; without it the scenario keeps the default margin and 5% drift.
   */
  "lease-drift": {
    description: "lease reads with clock drift beyond the lease margin",
    bugs: {},
    expectedKinds: ["linearizability"],
    steps: 15_000,
    adjustScenario: (scenario: Scenario, _random: Prng, planted: boolean): Scenario => ({
      ...scenario,
      nodes: 3,
      maxTickSkew: planted ? 0.8 : 0.05,
      raft: {
        ...scenario.raft,
        checkQuorum: true,
        leaseRead: true,
        electionTimeoutTicks: 10,
        heartbeatIntervalTicks: 2,
        ...(planted ? { leaseSafetyMarginTicks: 0 } : {}),
      },
      faults: { ...NO_FAULTS, partitions: true, transfers: true, clockDrift: true, leaderTargeting: 1, meanIntervalMs: 150, minPartitionMs: 300, maxPartitionMs: 800 },
      network: { ...scenario.network, maxDropProbability: 0 },
      workload: {
        ...scenario.workload,
        clients: 5,
        keys: 1,
        roamProbability: 0.5,
        timeoutMs: 150,
        maxThinkMs: 10,
        mix: { write: 5, cas: 0, linearizableRead: 10, strongRead: 0, weakRead: 0, noneRead: 0 },
      },
    }),
  },
} satisfies Record<string, BugScenario>;

export type BugName = keyof typeof SCENARIOS;
export const BUG_SCENARIOS: Readonly<Record<BugName, BugScenario>> = SCENARIOS;

export function isBugName(name: string): name is BugName {
  return Object.hasOwn(BUG_SCENARIOS, name);
}
