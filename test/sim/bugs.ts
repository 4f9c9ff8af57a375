// The shell's bug switches (src/objects/shell-bugs.ts), one per review finding, as `npm run sim -- --bug NAME`:
// the simulator runs the real runtime with that finding put back, so a seed range shows whether (and by which
// seed) the simulator catches it.

import { SHELL_BUG_NAMES, type ShellBugs } from "../../src/objects/shell-bugs.js";
import type { Prng } from "./prng.js";
import type { Scenario } from "./run.js";

export type BugName = (typeof SHELL_BUG_NAMES)[number];

export interface BugScenario {
  readonly bugs: ShellBugs;
  /** Tunes what the seed drew towards the faults that expose this finding (identity when none is needed). */
  readonly adjustScenario: (scenario: Scenario, random: Prng) => Scenario;
}

/** Faults that make leaders change and writes stay pending: where most of the findings live. */
function churn(scenario: Scenario): Scenario {
  return {
    ...scenario,
    faults: { ...scenario.faults, crashes: true, crashesInsideEvents: true, storageErrors: true, partitions: true, meanIntervalMs: Math.min(scenario.faults.meanIntervalMs, 150) },
  };
}

const TUNING: Partial<Record<BugName, (scenario: Scenario, random: Prng) => Scenario>> = {
  readContextRestartsAtZero: (scenario) => ({ ...churn(scenario), workload: { ...scenario.workload, mix: { ...scenario.workload.mix, linearizableRead: 10 } } }),
  stoppedWritesAnsweredNotMember: churn,
  readyFailureAnsweredInternal: (scenario) => ({ ...churn(scenario), faults: { ...churn(scenario).faults, storageErrors: true, stateMachineErrors: true } }),
  writeWaitersKeyedByIndex: churn,
  brokenRuntimeKeepsServing: (scenario) => ({ ...churn(scenario), faults: { ...churn(scenario).faults, storageErrors: true } }),
  pendingWritesWaitAfterStepDown: churn,
};

export const BUG_SCENARIOS: Readonly<Record<BugName, BugScenario>> = Object.fromEntries(
  SHELL_BUG_NAMES.map((name) => [name, { bugs: { [name]: true } as ShellBugs, adjustScenario: TUNING[name] ?? ((scenario: Scenario) => scenario) }]),
) as Record<BugName, BugScenario>;

export function isBugName(name: string): name is BugName {
  return (SHELL_BUG_NAMES as readonly string[]).includes(name);
}
