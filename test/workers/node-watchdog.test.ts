// While a node's object runs, an in-memory timer ticks it (the leader's heartbeats above all); the one alarm is only
// the watchdog that brings back an evicted object, set well ahead and seldom (node-host.ts, timing.ts). Setting the
// alarm is a storage write and each firing a billed request: before, the leader's alarm fired and was set again
// every heartbeat interval.
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { NodeCountersSnapshot } from "../../src/objects/metrics-counters";
import { watchdogAlarmAtMs } from "../../src/objects/timing";
import { clusterFactory, unwrap, waitFor, type TestCluster } from "./helpers/cluster";

const newCluster = clusterFactory();

async function countersOf(cluster: TestCluster, node: string): Promise<NodeCountersSnapshot> {
  return unwrap(await cluster.stub(node).metrics(cluster.address(node))).counters;
}

function peerCalls(counters: NodeCountersSnapshot): number {
  return counters.rpc.reduce((total, series) => total + series.calls, 0);
}

describe("the alarm as the watchdog of the tick timer", () => {
  it("a leader heartbeats for many election timeouts without its alarm firing; every node's alarm stays set, ahead", async () => {
    const cluster = newCluster({ prefix: "watchdog", nodes: 3 });
    await cluster.startAll();
    await cluster.waitForLeader();
    // Summed over every node: a loaded machine may move leadership during the wait, and then another node heartbeats.
    const countersOfAll = () => Promise.all(cluster.names.map((node) => countersOf(cluster, node)));
    const sum = (all: readonly NodeCountersSnapshot[], of: (counters: NodeCountersSnapshot) => number) =>
      all.reduce((total, counters) => total + of(counters), 0);
    const before = await countersOfAll();
    // 60 calls between the nodes: 30 heartbeat intervals or more, three election timeouts (20 ms ticks, 200 ms timeout).
    const after = await waitFor(
      "the nodes to make 60 more calls to their peers",
      async () => {
        const all = await countersOfAll();
        return sum(all, peerCalls) - sum(before, peerCalls) >= 60 ? all : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 50 },
    );
    expect(
      after.map((counters) => counters.startedAtMs),
      "the same instance of every node throughout",
    ).toEqual(before.map((counters) => counters.startedAtMs));
    // Ticked by the alarm, the leader alone would have woken once a heartbeat interval: 30 times or more. A stalled
    // machine may let a watchdog fire once or twice on a node.
    expect(sum(after, (c) => c.alarmWakeups) - sum(before, (c) => c.alarmWakeups)).toBeLessThanOrEqual(
      2 * cluster.names.length,
    );
    for (const node of cluster.names) {
      const { alarmAtMs, nowMs } = await runInDurableObject(cluster.stub(node), async (_instance, state) => ({
        alarmAtMs: await state.storage.getAlarm(),
        nowMs: Date.now(),
      }));
      expect(alarmAtMs, `${node} has its watchdog set`).not.toBeNull();
      // No later than the watchdog of a deadline one and a half election timeouts away (a follower's longest).
      const latestMs = watchdogAlarmAtMs(cluster.config, { nowMs, nextWakeAtMs: nowMs + 1.5 * 200 });
      expect(alarmAtMs!, `${node}'s alarm is at most the watchdog's bound ahead`).toBeLessThanOrEqual(latestMs);
    }
  });
});
