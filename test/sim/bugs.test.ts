// The checkers must bite: each bug planted in the simulated storage is reported within a bounded number of seeds,
// by a checker expected to catch it, while the very same directed scenario without the bug stays clean. These are
// safety hunts: they run without the liveness phase (its own checks run in sim.test.ts). (The
// shell's own bug switches, one per review finding, and the router's (router-NAME) are hunted with
// `npm run sim -- --bug NAME --seeds N`.) The storage-bug hunts run without the consistency monitor: its checkpoint
// entries change every directed seed's schedule, and the monitor is searched for false positives by sim.test.ts.

import { describe, expect, it } from "vitest";
import { BUG_SCENARIOS, HARNESS_BUG_SCENARIOS, type BugName, type HarnessBugName } from "./bugs.js";
import { runSeed } from "./run.js";

const MAX_SEEDS_PER_BUG = 20;
const CLEAN_SEEDS_PER_SCENARIO = 3;

describe("planted bugs are caught", () => {
  for (const name of Object.keys(HARNESS_BUG_SCENARIOS) as HarnessBugName[]) {
    const bug = HARNESS_BUG_SCENARIOS[name];
    it(`${name}: ${bug.description}, within ${MAX_SEEDS_PER_BUG} seeds`, async () => {
      let found: { seed: number; kind: string; detail: string } | null = null;
      for (let seed = 1; seed <= MAX_SEEDS_PER_BUG && found === null; seed += 1) {
        const result = await runSeed({
          seed,
          steps: bug.steps,
          harnessBugs: bug.bugs,
          adjustScenario: bug.adjustScenario,
          liveness: false,
          monitor: false,
        });
        const first = result.violations[0];
        if (first !== undefined) {
          found = { seed, kind: first.kind, detail: first.detail };
        }
      }
      expect(found, `no violation reported in ${MAX_SEEDS_PER_BUG} seeds`).not.toBeNull();
      if (found === null) {
        return;
      }
      console.log(`${name}: caught at seed ${found.seed} by "${found.kind}": ${found.detail.split("\n")[0]}`);
      expect(bug.expectedKinds as readonly string[]).toContain(found.kind);
    });

    it(`${name}: the same directed scenario without the bug reports nothing`, async () => {
      for (let seed = 1; seed <= CLEAN_SEEDS_PER_SCENARIO; seed += 1) {
        const result = await runSeed({
          seed,
          steps: bug.steps,
          adjustScenario: bug.adjustScenario,
          liveness: false,
          monitor: false,
        });
        expect(
          result.violations,
          `seed ${seed}: ${result.violations.map((v) => `${v.kind}: ${v.detail}`).join("; ")}`,
        ).toEqual([]);
        expect(result.lincheck?.verdict).toBe("linearizable");
      }
    });
  }
});

/**
 * Shell findings the simulator catches on its own, the checkers expected to see each, and where the hunt starts.
 */
const CAUGHT_FINDINGS: readonly {
  readonly name: BugName;
  readonly kinds: readonly string[];
  readonly firstSeed: number;
}[] = [
  { name: "backupFromAnyNode", kinds: ["linearizability"], firstSeed: 1 },
  // The router's switch: the simulated client goes through the worker's real router.
  { name: "router-definiteWriteFailures", kinds: ["linearizability"], firstSeed: 1 },
  // Finding 9: a wiped voter that votes at once votes twice in a term (seed 10 at the time of writing).
  {
    name: "wipedVoterVotesAtOnce",
    kinds: ["double vote", "election safety", "log matching", "leader completeness", "acknowledged write lost"],
    firstSeed: 1,
  },
];

describe("shell findings put back are caught", () => {
  for (const finding of CAUGHT_FINDINGS) {
    it(`${finding.name}: a seed within ${MAX_SEEDS_PER_BUG} from ${finding.firstSeed} reports it, and the same seed without the switch is clean`, async () => {
      const bug = BUG_SCENARIOS[finding.name];
      let caught: { seed: number; kind: string; detail: string } | null = null;
      for (let seed = finding.firstSeed; seed < finding.firstSeed + MAX_SEEDS_PER_BUG && caught === null; seed += 1) {
        const result = await runSeed({
          seed,
          bugs: bug.bugs,
          ...(bug.routerBugs === undefined ? {} : { routerBugs: bug.routerBugs }),
          adjustScenario: bug.adjustScenario,
          liveness: false,
          monitor: false,
        });
        const first = result.violations[0];
        if (first === undefined || !finding.kinds.includes(first.kind)) {
          continue;
        }
        const control = await runSeed({ seed, adjustScenario: bug.adjustScenario, liveness: false });
        if (control.violations.length === 0) {
          caught = { seed, kind: first.kind, detail: first.detail };
        }
      }
      expect(caught, `not caught in ${MAX_SEEDS_PER_BUG} seeds`).not.toBeNull();
      if (caught !== null) {
        console.log(
          `${finding.name}: caught at seed ${caught.seed} by "${caught.kind}": ${caught.detail.split("\n")[0]}`,
        );
      }
    });
  }
});
