// The level-none floor of one worker isolate's recent writes, and the nodes it asks last (src/worker/data).
import { describe, expect, it } from "vitest";
import { RecentWrites, recentWritesTiming } from "../../src/worker/data/recent-writes";

const timing = recentWritesTiming({ heartbeatIntervalMs: 100, electionTimeoutMs: 1_000 });

describe("RecentWrites", () => {
  it("marks a node behind for one window, ended early by a clock that went back", () => {
    const recent = new RecentWrites(timing);
    recent.nodeBehind("n1", 5_000);
    expect(recent.nodesBehind(5_000)).toEqual(["n1"]);
    expect(recent.nodesBehind(6_000)).toEqual(["n1"]);
    expect(recent.nodesBehind(6_001)).toEqual([]);
    recent.nodeBehind("n2", 5_000);
    expect(recent.nodesBehind(4_999)).toEqual([]);
  });

  it("keeps at most 16 nodes, forgetting the oldest mark, and a new mark moves a node last", () => {
    const recent = new RecentWrites(timing);
    for (let i = 0; i < 20; i++) {
      recent.nodeBehind(`n${i}`, 1_000 + i);
    }
    const behind = recent.nodesBehind(1_020);
    expect(behind).toHaveLength(16);
    expect(behind[0]).toBe("n4");
    recent.nodeBehind("n4", 1_021);
    expect(recent.nodesBehind(1_021).at(-1)).toBe("n4");
  });
});
