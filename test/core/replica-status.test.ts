import { describe, expect, it } from "vitest";
import {
  REPLICA_STATUS_TRANSITIONS,
  RaftInvariantError,
  assertReplicaStatusTransition,
  isValidReplicaStatusTransition,
  targetReplicaStatus,
} from "../../src/replication/index.js";
import type { RaftEvent, ReplicaStatus } from "../../src/replication/types.js";
import { TestCluster } from "./helpers.js";

const statusEvents = (events: readonly RaftEvent[], peer: string): Array<[ReplicaStatus | null, ReplicaStatus]> =>
  events.flatMap((e) =>
    e.kind === "replicaStatus" && e.peer === peer ? [[e.from, e.to] as [ReplicaStatus | null, ReplicaStatus]] : [],
  );

describe("replica status machine", () => {
  it("allows the transitions of the table and throws on any other", () => {
    expect(isValidReplicaStatusTransition(null, "JOINING")).toBe(true);
    expect(isValidReplicaStatusTransition("JOINING", "ONLINE")).toBe(true);
    expect(isValidReplicaStatusTransition("ONLINE", "LAGGING")).toBe(true);
    expect(isValidReplicaStatusTransition("OFFLINE", "ONLINE")).toBe(true);
    expect(() => assertReplicaStatusTransition("b", "ONLINE", "JOINING")).toThrow(RaftInvariantError);
    expect(() => assertReplicaStatusTransition("b", "JOINING", "LAGGING")).toThrow(
      /invalid status transition JOINING -> LAGGING/,
    );
    expect(() => assertReplicaStatusTransition("b", null, "ONLINE")).toThrow(RaftInvariantError);
    // Every status is reachable and none is a dead end.
    for (const [from, targets] of Object.entries(REPLICA_STATUS_TRANSITIONS)) {
      expect(targets.length, from).toBeGreaterThan(0);
      expect(targets, from).not.toContain(from);
    }
  });

  it("derives the status from contact, failures and lag", () => {
    const thresholds = { laggingThresholdEntries: 10, offlineAfterTicks: 30 };
    const base = { caughtUpOnce: true, lagEntries: 0, ticksSinceContact: 0, unreachable: false };
    expect(targetReplicaStatus(base, thresholds)).toBe("ONLINE");
    expect(targetReplicaStatus({ ...base, lagEntries: 11 }, thresholds)).toBe("LAGGING");
    expect(targetReplicaStatus({ ...base, caughtUpOnce: false, lagEntries: 500 }, thresholds)).toBe("JOINING");
    expect(targetReplicaStatus({ ...base, unreachable: true }, thresholds)).toBe("RECONNECTING");
    expect(targetReplicaStatus({ ...base, unreachable: true, ticksSinceContact: 30 }, thresholds)).toBe("OFFLINE");
  });

  it("with requireReplicaReady, keeps a caught-up replica JOINING until the shell reports it ready", () => {
    const cluster = new TestCluster(["a", "b", "c"], { overrides: { requireReplicaReady: true } });
    const leader = cluster.elect();
    cluster.tickMany(3);
    const peer = ["a", "b", "c"].find((id) => id !== leader) as string;
    const view = () => cluster.status(leader).replicas.find((r) => r.id === peer);
    expect(view()?.matchIndex).toBe(cluster.status(leader).lastIndex);
    expect(view()?.status).toBe("JOINING");
    cluster.core(leader).reportReplicaReady(peer);
    expect(view()?.status).toBe("ONLINE");
    // Readiness does not depend on anything else: a second report changes nothing.
    cluster.core(leader).reportReplicaReady(peer);
    expect(view()?.status).toBe("ONLINE");
  });

  it("follows a replica through JOINING, ONLINE, RECONNECTING, OFFLINE and back, with events", () => {
    const cluster = new TestCluster(["a", "b", "c"], { overrides: { offlineAfterTicks: 20 } });
    const leader = cluster.elect();
    cluster.tickMany(3);
    const peer = ["a", "b", "c"].find((id) => id !== leader) as string;
    const view = () => cluster.status(leader).replicas.find((r) => r.id === peer);
    expect(view()?.status).toBe("ONLINE");
    cluster.isolate(peer);
    cluster.core(leader).reportUnreachable(peer);
    expect(view()).toMatchObject({ status: "RECONNECTING", consecutiveFailures: 1 });
    cluster.tickMany(20);
    expect(view()?.status).toBe("OFFLINE");
    expect(view()?.ticksSinceContact).toBeGreaterThanOrEqual(20);
    cluster.heal();
    cluster.tickMany(4);
    expect(view()).toMatchObject({ status: "ONLINE", reconnections: 1, consecutiveFailures: 0 });
    expect(statusEvents(cluster.node(leader).events, peer)).toEqual([
      [null, "JOINING"],
      ["JOINING", "ONLINE"],
      ["ONLINE", "RECONNECTING"],
      ["RECONNECTING", "OFFLINE"],
      ["OFFLINE", "ONLINE"],
    ]);
  });

  it("marks a replica that is in contact but far behind as LAGGING, and ONLINE again once it catches up", () => {
    const cluster = new TestCluster(["a", "b", "c"], { overrides: { laggingThresholdEntries: 3 } });
    const leader = cluster.elect();
    cluster.tickMany(3);
    const peer = ["a", "b", "c"].find((id) => id !== leader) as string;
    cluster.dropIf = (m) => m.type === "append" && m.to === peer;
    for (let i = 0; i < 6; i++) {
      cluster.propose(leader, `v${i}`);
    }
    cluster.tickMany(2);
    const view = () => cluster.status(leader).replicas.find((r) => r.id === peer);
    expect(view()).toMatchObject({ status: "LAGGING" });
    expect(view()?.lagEntries).toBeGreaterThan(3);
    cluster.dropIf = () => false;
    cluster.tickMany(6);
    expect(view()).toMatchObject({ status: "ONLINE", lagEntries: 0 });
  });
});
