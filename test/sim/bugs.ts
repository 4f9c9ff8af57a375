// The shell's bug switches (src/objects/shell-bugs.ts), one per review finding, and the router's
// (src/worker/routing/router-bugs.ts, named router-NAME), as `npm run sim -- --bug NAME`: the simulator runs the real
// runtime and router with that finding put back, so a seed range shows whether (and by which seed) it is caught.

import { SHELL_BUG_NAMES, type ShellBugs } from "../../src/objects/shell-bugs.js";
import type { RouterBugs } from "../../src/worker/routing/router-bugs.js";
import type { HarnessBugs } from "./host.js";
import type { Prng } from "./prng.js";
import type { Scenario } from "./run.js";

type ShellBugName = (typeof SHELL_BUG_NAMES)[number];
const ROUTER_BUG_NAMES = [
  "backupFromAnyNode",
  "definiteWriteFailures",
  "fixedRetryBudget",
] as const satisfies readonly (keyof RouterBugs)[];
type RouterBugName = `router-${(typeof ROUTER_BUG_NAMES)[number]}`;
export type BugName = ShellBugName | RouterBugName;

export interface BugScenario {
  readonly bugs: ShellBugs;
  readonly routerBugs?: RouterBugs;
  /** Tunes what the seed drew towards the faults that expose this finding (identity when none is needed). */
  readonly adjustScenario: (scenario: Scenario, random: Prng) => Scenario;
}

/** Faults that make leaders change and writes stay pending: where most of the findings live. */
function churn(scenario: Scenario): Scenario {
  return {
    ...scenario,
    faults: {
      ...scenario.faults,
      crashes: true,
      crashesInsideEvents: true,
      storageErrors: true,
      partitions: true,
      meanIntervalMs: Math.min(scenario.faults.meanIntervalMs, 150),
    },
  };
}

const TUNING: Partial<Record<BugName, (scenario: Scenario, random: Prng) => Scenario>> = {
  // Followers that restart within a few ms and serve linearizable reads (through the leader's ReadIndex) right after
  // starting, while the leader's answers to the previous instance's reads are still on the (slow) wire.
  readContextRestartsAtZero: (scenario, random) => ({
    ...scenario,
    nodes: 3,
    network: { ...scenario.network, minLatencyMs: 5, maxLatencyMs: random.between(10, 40), maxDropProbability: 0 },
    faults: {
      ...scenario.faults,
      crashes: true,
      crashesInsideEvents: false,
      storageWipes: false,
      leaderTargeting: 0,
      minDownMs: 1,
      maxDownMs: 5,
      meanIntervalMs: random.between(10, 40),
      maxDownNodes: 1,
    },
    workload: {
      ...scenario.workload,
      clients: 4,
      keys: 1,
      roamProbability: 0.8,
      maxThinkMs: 5,
      mix: { ...scenario.workload.mix, write: 6, cas: 0, linearizableRead: 10 },
    },
  }),
  // Finding 9: three voters, wiped often (also where committed entries live on the wiped node and one other) while
  // partitions split them: a wiped voter that votes at once re-elects a node whose log lacks what it acknowledged,
  // or votes a second time in a term.
  wipedVoterVotesAtOnce: (scenario, random) => ({
    ...scenario,
    nodes: 3,
    faults: {
      ...scenario.faults,
      storageWipes: true,
      storageWipesAnywhere: true,
      partitions: true,
      crashes: false,
      staleInstances: false,
      transfers: false,
      leaderTargeting: 0,
      meanIntervalMs: random.between(20, 60),
      minPartitionMs: 20,
      maxPartitionMs: random.between(100, 400),
    },
  }),
  stoppedWritesAnsweredNotMember: churn,
  readyFailureAnsweredInternal: (scenario) => ({
    ...churn(scenario),
    faults: { ...churn(scenario).faults, storageErrors: true, stateMachineErrors: true },
  }),
  writeWaitersKeyedByIndex: churn,
  brokenRuntimeKeepsServing: (scenario) => ({
    ...churn(scenario),
    faults: { ...churn(scenario).faults, storageErrors: true },
  }),
  pendingWritesWaitAfterStepDown: churn,
  // Leadership changes all the time, and clients read weakly from whoever leads while others write.
  weakReadBeforeOwnTermApplied: (scenario, random) => ({
    ...scenario,
    faults: {
      ...scenario.faults,
      transfers: true,
      crashes: true,
      partitions: true,
      leaderTargeting: 1,
      meanIntervalMs: random.between(30, 100),
    },
    workload: { ...scenario.workload, clients: 4, keys: 1, mix: { ...scenario.workload.mix, write: 10, weakRead: 10 } },
  }),
  backupFromAnyNode: (scenario) => ({
    ...churn(scenario),
    workload: { ...scenario.workload, roamProbability: 0.5, mix: { ...scenario.workload.mix, backup: 5, write: 10 } },
  }),
  // Writes answered INTERNAL or "outcome unknown" by nodes that crash, fail storage or lose leadership mid-write.
  // One key, leaders crashed and moved all the time: a write answered "leader changed" that commits anyway is read.
  "router-definiteWriteFailures": (scenario, random) => ({
    ...churn(scenario),
    faults: {
      ...churn(scenario).faults,
      storageErrors: true,
      stateMachineErrors: true,
      transfers: true,
      leaderTargeting: 1,
      meanIntervalMs: random.between(30, 100),
    },
    workload: {
      ...scenario.workload,
      clients: 4,
      keys: 1,
      mix: { ...scenario.workload.mix, write: 10, cas: 3, linearizableRead: 10, strongRead: 3 },
    },
  }),
};

export const BUG_SCENARIOS: Readonly<Record<BugName, BugScenario>> = Object.fromEntries([
  ...SHELL_BUG_NAMES.map((name) => [
    name,
    {
      bugs: { [name]: true } as ShellBugs,
      // Finding 2 has two halves: the node serves a backup whatever its role, and the router sends it to whichever
      // node answers (the fixed router checks the node leads first, which hides the node's half on its own).
      ...(name === "backupFromAnyNode" ? { routerBugs: { backupFromAnyNode: true } } : {}),
      adjustScenario: TUNING[name] ?? ((scenario: Scenario) => scenario),
    },
  ]),
  ...ROUTER_BUG_NAMES.map((name) => [
    `router-${name}`,
    {
      bugs: {},
      routerBugs: { [name]: true } as RouterBugs,
      adjustScenario: TUNING[`router-${name}`] ?? ((scenario: Scenario) => scenario),
    },
  ]),
]) as Record<BugName, BugScenario>;

export function isBugName(name: string): name is BugName {
  return Object.hasOwn(BUG_SCENARIOS, name);
}

/** Bugs planted in the simulated storage, with the directed scenario that shows each one quickly. */
export interface HarnessBugScenario {
  readonly description: string;
  readonly bugs: HarnessBugs;
  /** Which checkers are expected to catch it (any of them counts). */
  readonly expectedKinds: readonly string[];
  readonly steps: number;
  readonly adjustScenario: (scenario: Scenario, random: Prng) => Scenario;
}

export const QUIET: Scenario["faults"] = {
  crashes: false,
  crashesInsideEvents: false,
  storageErrors: false,
  storageErrorsEverywhere: false,
  stateMachineErrors: false,
  staleInstances: false,
  storageWipes: false,
  partitions: false,
  pathFaults: false,
  alarmFaults: false,
  transfers: false,
  slowNodes: false,
  meanIntervalMs: 100,
  leaderTargeting: 0.5,
  minDownMs: 1,
  maxDownMs: 50,
  minPartitionMs: 50,
  maxPartitionMs: 400,
  maxDownNodes: 1,
};

export const HARNESS_BUG_SCENARIOS = {
  "forget-vote": {
    description: "a vote that does not survive a restart",
    bugs: { forgetVoteOnRestart: true },
    expectedKinds: [
      "double vote",
      "election safety",
      "log matching",
      "state machine safety",
      "leader completeness",
      "linearizability",
      "acknowledged write lost",
    ],
    steps: 4000,
    adjustScenario: (scenario: Scenario, random: Prng): Scenario => ({
      ...scenario,
      nodes: random.pick([3, 5]),
      electionTimeoutMs: scenario.heartbeatIntervalMs * 5,
      faults: {
        ...QUIET,
        crashes: true,
        crashesInsideEvents: true,
        partitions: true,
        meanIntervalMs: random.between(20, 60),
        leaderTargeting: 0.8,
        maxDownNodes: 2,
        maxDownMs: 30,
      },
      workload: { ...scenario.workload, clients: 3, mix: { ...scenario.workload.mix, write: 10, linearizableRead: 5 } },
    }),
  },
  "keep-suffix": {
    description: "log truncation that does not delete: a conflicting suffix survives a restart",
    bugs: { keepTruncatedSuffix: true },
    expectedKinds: [
      "log matching",
      "log continuity",
      "state machine safety",
      "leader completeness",
      "linearizability",
      "acknowledged write lost",
      "host threw",
    ],
    steps: 4000,
    adjustScenario: (scenario: Scenario, random: Prng): Scenario => ({
      ...scenario,
      nodes: random.pick([3, 5]),
      snapshotThresholdEntries: 1000,
      faults: {
        ...QUIET,
        crashes: true,
        partitions: true,
        meanIntervalMs: random.between(40, 120),
        leaderTargeting: 0.9,
        maxDownNodes: 1,
        maxDownMs: 50,
      },
      workload: { ...scenario.workload, clients: 4, mix: { ...scenario.workload.mix, write: 10 } },
    }),
  },
} as const satisfies Record<string, HarnessBugScenario>;

export type HarnessBugName = keyof typeof HARNESS_BUG_SCENARIOS;
