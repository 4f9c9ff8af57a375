// A client call first catches the node's clock up (ClientRequests.beginCall), which runs the Ready loop: when a
// storage write there fails, the runtime stops before anything of the call ran. The call is answered as any call to
// a stopped runtime (NO_LEADER, retryable: the router asks again, here once the node reloaded, or elsewhere), not as
// the node's internal error (INTERNAL, which the router does not retry for a read: the user got a 500).
//
// The same holds for a call that starts the node (NodeHost.startForCall) when the start fails on storage.
//
// The node is a real NodeHost over the simulator's storage (SimHost), alone in its cluster: after an election timeout
// without a leader, a read's catch-up campaigns, and the campaign's hard state is the write that fails.
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION, type NodeAddress } from "../../src/objects/api";
import type { ClusterConfig } from "../../src/objects/cluster-types";
import { SimHost, type HostEnvironment } from "./host";

const CLUSTER: ClusterConfig = {
  name: "call-start",
  members: [{ name: "n1" }],
  heartbeatIntervalMs: 100,
  electionTimeoutMs: 1_000,
  snapshotThresholdEntries: 1_000,
  consistency: { enabled: false },
};

const ADDRESS: NodeAddress = { protocolVersion: PROTOCOL_VERSION, cluster: CLUSTER, node: "n1" };

/** A single-node host whose next storage writes (puts or deletes) fail: one, or `count`, from `failNextWrite` on. */
function singleNodeHost(): { host: SimHost; advance: (ms: number) => void; failNextWrite: (count?: number) => void } {
  let nowMs = 1_000_000;
  let failing = 0;
  const ignore = (): void => undefined;
  const env: HostEnvironment = {
    nowMs: () => nowMs,
    setAlarm: ignore,
    // Timers never fire: the test moves time itself and the calls catch the clock up.
    scheduleTimer: () => ignore,
    peerStub: () => {
      throw new Error("a single-node cluster has no peers");
    },
    inCrashedEvent: () => false,
    beforeStorageOperation: (_host, _instance, what, kind) => {
      if (failing > 0 && kind !== "sql") {
        failing -= 1;
        throw new Error(`injected storage failure at ${what}`);
      }
    },
    beforeApply: ignore,
    observeApplied: ignore,
    observeSnapshotInstalled: ignore,
    observeStateMachineDefect: ignore,
    observeLogDelete: ignore,
    note: ignore,
    seedFor: () => 7,
    bugs: {},
    harnessBugs: {},
    maxDedupEntries: undefined,
  };
  return {
    host: new SimHost("n1", { cluster: CLUSTER, node: "n1" }, env),
    advance: (ms) => (nowMs += ms),
    failNextWrite: (count = 1) => (failing = count),
  };
}

const READ = {
  ...ADDRESS,
  statements: [{ sql: "SELECT 1 AS one" }],
  level: "none" as const,
  transaction: false,
  timeoutMs: 2_000,
};

/**
 * Reads every tick (each read catches the clock up, and a read writes nothing) until one is refused: the one whose
 * catch-up campaigned, and whose campaign's hard state was the first write, which fails. A catch-up after a long gap
 * stops one tick short of the election (NodeRuntime.ticksAfterStall), so time moves a tick at a time. Returns that
 * answer.
 */
async function readUntilTheCampaignFails(
  host: SimHost,
  advance: (ms: number) => void,
  failNextWrite: (count?: number) => void,
) {
  await host.restart();
  expect(host.instance?.runtime?.status().role).toBe("follower");
  failNextWrite();
  for (let tick = 0; tick < (3 * CLUSTER.electionTimeoutMs) / CLUSTER.heartbeatIntervalMs; tick++) {
    advance(CLUSTER.heartbeatIntervalMs);
    const answer = await host.instance!.node.query(READ);
    if (!answer.ok) {
      return answer;
    }
  }
  throw new Error("no read was refused: the node never campaigned");
}

describe("a client call whose clock catch-up fails on storage (issue 11)", () => {
  it("a read is answered NO_LEADER, retryable, and the node serves it once reloaded", async () => {
    const { host, advance, failNextWrite } = singleNodeHost();
    const answer = await readUntilTheCampaignFails(host, advance, failNextWrite);
    expect(answer).toMatchObject({ ok: false, error: { code: "NO_LEADER", retryable: true } });
    // The answer (and the node's log of the discarded runtime) says what stopped it.
    expect(answer.ok ? "" : answer.error.message).toMatch(/restarting \(Error: injected storage failure at put/);
    expect(host.instance?.runtime).toBeNull();
    // The failed runtime was discarded; the next call loads the node from storage again and is served.
    const again = await host.instance!.node.query(READ);
    expect(again).toMatchObject({ ok: true, value: { results: [{ columns: ["one"], rows: [[1]] }] } });
  });

  it("a read whose call starts the node, and the start fails, is answered NO_LEADER, retryable", async () => {
    const { host, failNextWrite } = singleNodeHost();
    // The object's own start (its constructor) fails on the first write, and so does the read's start of it.
    failNextWrite(2);
    await host.restart();
    expect(host.instance?.runtime).toBeNull();
    const answer = await host.instance!.node.query(READ);
    expect(answer).toMatchObject({ ok: false, error: { code: "NO_LEADER", retryable: true } });
    expect(answer.ok ? "" : answer.error.message).toMatch(/n1 failed to start \(injected storage failure at put/);
    const again = await host.instance!.node.query(READ);
    expect(again).toMatchObject({ ok: true, value: { results: [{ columns: ["one"], rows: [[1]] }] } });
  });
});
