// One seed, one execution: the same seed twice gives the same trace, byte for byte (compared by hash), even though
// every node runs the real NodeRuntime with promises, timers and SQLite underneath; a different seed gives a
// different trace (so the hash does depend on what happened); and a failing seed fails the same way again.

import { describe, expect, it } from "vitest";
import { Prng } from "./prng.js";
import { HARNESS_BUG_SCENARIOS } from "./bugs.js";
import { runSeed } from "./run.js";

const STEPS = 1500;

describe("replay determinism", () => {
  it("the same seed twice yields identical traces and results", async () => {
    for (const seed of [7, 123_456_789]) {
      const first = await runSeed({ seed, steps: STEPS });
      const second = await runSeed({ seed, steps: STEPS });
      expect(second.traceHash).toBe(first.traceHash);
      expect(second.traceTail).toEqual(first.traceTail);
      expect(second.steps).toBe(first.steps);
      expect(second.stats).toEqual(first.stats);
      expect(second.lincheck).toEqual(first.lincheck);
    }
  });

  it("a failing seed replays to the same violation", async () => {
    const bug = HARNESS_BUG_SCENARIOS["keep-suffix"];
    const options = { steps: bug.steps, harnessBugs: bug.bugs, adjustScenario: bug.adjustScenario };
    let failing: number | null = null;
    for (let seed = 1; seed <= 20 && failing === null; seed += 1) {
      if ((await runSeed({ seed, ...options })).violations.length > 0) {
        failing = seed;
      }
    }
    expect(failing).not.toBeNull();
    const first = await runSeed({ seed: failing ?? 0, ...options });
    const second = await runSeed({ seed: failing ?? 0, ...options });
    expect(first.violations.length).toBeGreaterThan(0);
    expect(second.violations).toEqual(first.violations);
    expect(second.traceHash).toBe(first.traceHash);
  });

  it("different seeds yield different traces", async () => {
    const hashes = new Set<string>();
    for (const seed of [1, 2, 3]) {
      hashes.add((await runSeed({ seed, steps: 500 })).traceHash);
    }
    expect(hashes.size).toBe(3);
  });

  it("the PRNG is a pure function of its seed, with independent forks", () => {
    const draw = (seed: number): number[] => {
      const random = new Prng(seed);
      const fork = random.fork();
      return [random.nextUint32(), fork.nextUint32(), random.nextInt(7), fork.nextInt(1000)];
    };
    expect(draw(42)).toEqual(draw(42));
    expect(draw(42)).not.toEqual(draw(43));
    const random = new Prng(9);
    const counts = new Array<number>(6).fill(0);
    for (let i = 0; i < 6000; i += 1) {
      const face = random.nextInt(6);
      counts[face] = (counts[face] ?? 0) + 1;
    }
    for (const count of counts) {
      expect(count).toBeGreaterThan(800);
    }
  });
});
