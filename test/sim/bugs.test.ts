// The checkers must bite: each planted bug is reported within a bounded number of seeds, by the checkers
// expected to catch it, while the very same directed scenario without the bug stays clean.

import { describe, expect, it } from "vitest";
import { BUG_SCENARIOS, type BugName } from "./bugs.js";
import { runSeed } from "./run.js";

const MAX_SEEDS_PER_BUG = 40;
const CLEAN_SEEDS_PER_SCENARIO = 10;
const FIRST_SEED = 1;

function hunt(name: BugName): { seed: number; kind: string; detail: string } | null {
  const bug = BUG_SCENARIOS[name];
  for (let seed = FIRST_SEED; seed < FIRST_SEED + MAX_SEEDS_PER_BUG; seed += 1) {
    const result = runSeed({ seed, steps: bug.steps, bugs: bug.bugs, adjustScenario: (scenario, random) => bug.adjustScenario(scenario, random, true) });
    const first = result.violations[0];
    if (first !== undefined) return { seed, kind: first.kind, detail: first.detail };
  }
  return null;
}

describe("planted bugs are caught", () => {
  for (const name of Object.keys(BUG_SCENARIOS) as BugName[]) {
    const bug = BUG_SCENARIOS[name];
    it(`${name}: ${bug.description}, within ${MAX_SEEDS_PER_BUG} seeds`, () => {
      const found = hunt(name);
      expect(found, `no violation reported in ${MAX_SEEDS_PER_BUG} seeds`).not.toBeNull();
      if (found === null) return;
      console.log(`${name}: caught at seed ${found.seed} by "${found.kind}": ${found.detail.split("\n")[0]}`);
      expect(bug.expectedKinds as readonly string[]).toContain(found.kind);
    });

    it(`${name}: the same directed scenario without the bug reports nothing`, () => {
      for (let seed = FIRST_SEED; seed < FIRST_SEED + CLEAN_SEEDS_PER_SCENARIO; seed += 1) {
        const result = runSeed({ seed, steps: bug.steps, adjustScenario: (scenario, random) => bug.adjustScenario(scenario, random, false) });
        expect(result.violations, `seed ${seed}: ${result.violations.map((v) => `${v.kind}: ${v.detail}`).join("; ")}`).toEqual([]);
        expect(result.lincheck?.verdict).toBe("linearizable");
      }
    });
  }
});
