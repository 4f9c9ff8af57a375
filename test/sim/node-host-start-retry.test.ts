// A node whose start fails every time (a deterministic storage error) backs off between tries instead of reloading
// on every tick, and the alarm time it sets is the one it remembers.
import { describe, expect, it } from "vitest";
import { NodeHost, type NodeHostSeams } from "../../src/objects/node-host";
import { startRetryDelayMs } from "../../src/objects/timing";

function hostWhoseStorageFails(): { host: NodeHost; alarms: number[]; advance: (ms: number) => void } {
  let nowMs = 1_000_000;
  const alarms: number[] = [];
  const failing = (): never => {
    throw new Error("SQLITE_FULL: database or disk is full");
  };
  const seams = {
    kv: { get: failing, put: failing, delete: failing, list: failing },
    transaction: failing,
    stateMachine: failing,
    clock: { now: () => nowMs },
    alarm: {
      set: async (atMs: number) => {
        alarms.push(atMs - nowMs);
      },
      delete: async () => undefined,
    },
    randomSeed: () => 1,
    newIncarnation: () => "i",
    peerStub: failing,
    faultsEnabled: false,
    bugs: () => ({}),
    exclusive: async (fn: () => Promise<void>) => fn(),
  } as unknown as NodeHostSeams;
  return { host: new NodeHost(seams), alarms, advance: (ms) => (nowMs += ms) };
}

describe("NodeHost: a start that fails again and again", () => {
  it("retries with a doubling delay, capped at a few election timeouts", async () => {
    const { host, alarms, advance } = hostWhoseStorageFails();
    for (let i = 0; i < 8; i++) {
      await host.alarm();
      advance(alarms[alarms.length - 1]!);
    }
    expect(alarms).toEqual([100, 200, 400, 800, 1600, 3000, 3000, 3000]);
  });

  it("the delay grows from a heartbeat interval to three election timeouts", () => {
    const cluster = { heartbeatIntervalMs: 50, electionTimeoutMs: 500 };
    expect([1, 2, 3, 4, 5, 6, 100].map((n) => startRetryDelayMs(cluster, n))).toEqual([
      50, 100, 200, 400, 800, 1500, 1500,
    ]);
  });
});
