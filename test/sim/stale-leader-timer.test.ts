// A stale instance of the leader (a newer instance owns the object) must not go on ticking by its in-memory timer:
// heartbeating as leader, it kept the followers from timing out while the new instance, a follower, had its pre-votes
// refused (1.6 s without any client answer on seed 1 before the fix, against about one election timeout after it).
// The simulator's summaries did not catch it: availability is checked only in the liveness phase, after healing.
import { describe, expect, it } from "vitest";
import { QUIET } from "./bugs";
import { runSeed } from "./run";

describe("a stale leader instance", () => {
  it("does not keep the cluster from electing a new leader for more than a few election timeouts", async () => {
    const lines: string[] = [];
    let electionTimeoutMs = 0;
    await runSeed({
      seed: 1,
      steps: 4000,
      liveness: false,
      adjustScenario: (scenario) => {
        electionTimeoutMs = scenario.electionTimeoutMs;
        return {
          ...scenario,
          faults: {
            ...QUIET,
            staleInstances: true,
            leaderTargeting: 0.8,
            maxDownNodes: 1,
            minDownMs: 10,
            maxDownMs: 30,
            meanIntervalMs: 1000,
          },
        };
      },
      onTraceLine: (line) => lines.push(line),
    });
    // The longest stretch with no client answer at all, in simulated ms.
    let lastAnswerMs = 0;
    let longestSilenceMs = 0;
    for (const line of lines) {
      const match = /^\s*(\d+)ms client \d+ <- /.exec(line);
      if (match !== null) {
        const atMs = Number(match[1]);
        longestSilenceMs = Math.max(longestSilenceMs, atMs - lastAnswerMs);
        lastAnswerMs = atMs;
      }
    }
    const staleCrashes = lines.filter((line) => line.includes("keeps running, fenced")).length;
    console.log(
      `stale leader instances: ${staleCrashes}, longest stretch without a client answer ${longestSilenceMs} ms`,
    );
    expect(staleCrashes).toBeGreaterThan(0);
    expect(longestSilenceMs).toBeLessThan(4 * electionTimeoutMs);
  }, 120_000);
});
