// The consistency monitor in the simulator: with every fault of the nemesis it reports no mismatch (any report
// fails the seed: see runSeed), it checkpoints at all, and a table created outside Raft on one node is reported.
import { describe, expect, it } from "vitest";
import { formatFailure, runSeed } from "./run.js";

/**
 * Seeds 1-12. Over seeds 1-30 on the code with verified images and the [E, 1.5E) election timer, 24 report the plant,
 * 5 have it replaced by a snapshot first (8, 9, 10, 12, 18) and 1 has too few nodes; seeds 7-12 alone report only 2.
 */
const PLANT_SEEDS = Array.from({ length: 12 }, (_, i) => i + 1);
/**
 * Seeds whose leader, planted, sends a snapshot image before a checkpoint sees the change (without verified images:
 * snapshotImageUnverified). One of them ends in the tie: three nodes, one lagging, so the leader and the healthy
 * follower disagree one against one and no image may go out. Which seed ends so moves with timing: seed 2 on this
 * code (2, 3, 14, 16 and 17 among 1-30, since a breaker stays open half a heartbeat interval at a time; 2 and 3 also
 * with a whole one), seed 9 before (9, 16, 30 and 31 among 1-40, since images are prepared ahead and compaction held for them), seed 12
 * before that (12, 14, 16 and 17 among 10-20). With snapshotImageUnverified seed 12 spreads it.
 */
const LEADER_PLANT_SEEDS = [2, 7, 12];

describe("consistency monitor in the simulator", () => {
  it("checkpoints through faults without a single mismatch", async () => {
    const result = await runSeed({ seed: 4242 });
    expect(result.violations.map((v) => `${v.kind}: ${v.detail}`)).toEqual([]);
    expect(result.stats.checkpointsApplied).toBeGreaterThan(0);
  });

  it("reports a table planted outside Raft on one node", async () => {
    const outcomes: string[] = [];
    for (const seed of PLANT_SEEDS) {
      const result = await runSeed({ seed, plantDivergence: true });
      expect(result.violations, formatFailure(result, `runSeed({ seed: ${seed}, plantDivergence: true })`)).toEqual([]);
      outcomes.push(result.stats.plantOutcome ?? "none");
    }
    console.log(`planted divergence, seeds ${PLANT_SEEDS.join(",")}: ${outcomes.join(", ")}`);
    // A snapshot may replace the plant before a checkpoint sees it; most seeds must still report it.
    expect(outcomes.filter((outcome) => outcome === "reported").length).toBeGreaterThanOrEqual(PLANT_SEEDS.length / 2);
  });

  it("fails the seed when the plant goes unreported (the monitor off)", async () => {
    const seed = PLANT_SEEDS.find(() => true)!;
    const result = await runSeed({ seed, plantDivergence: true, monitor: false });
    const scenarioNodes = Number(/nodes (\d+)/.exec(result.scenario)?.[1] ?? "0");
    if (scenarioNodes >= 3) {
      expect(result.violations.map((v) => v.kind)).toContain("consistency monitor");
    }
  });

  it("a row changed on the leader outside Raft reaches no other node and is repaired (verified images)", async () => {
    const outcomes: string[] = [];
    for (const seed of LEADER_PLANT_SEEDS) {
      const result = await runSeed({ seed, plantLeaderRow: true });
      expect(result.violations, formatFailure(result, `runSeed({ seed: ${seed}, plantLeaderRow: true })`)).toEqual([]);
      outcomes.push(result.stats.plantOutcome ?? "none");
    }
    console.log(`row changed on the leader, seeds ${LEADER_PLANT_SEEDS.join(",")}: ${outcomes.join(", ")}`);
    expect(outcomes.every((outcome) => outcome === "repaired" || outcome === "undecided")).toBe(true);
    expect(outcomes).toContain("undecided");
  });

  it("with snapshotImageUnverified the leader's changed row spreads through a snapshot (the check can fail)", async () => {
    const failed: number[] = [];
    for (const seed of LEADER_PLANT_SEEDS) {
      const result = await runSeed({ seed, plantLeaderRow: true, bugs: { snapshotImageUnverified: true } });
      if (result.violations.some((v) => v.kind === "consistency monitor" && /reached n/.test(v.detail))) {
        failed.push(seed);
      }
    }
    expect(failed.length).toBeGreaterThan(0);
  });
});
