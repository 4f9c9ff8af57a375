// Findings of issue 9 that need real ClusterNode objects (real alarms, RPC, storage): each scenario runs with the
// fix and with its bug switch on (ClusterNode.testSetBugs, test configuration only), and the same check must see
// the difference.
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { BackupValue } from "../../src/objects/api";
import type { ClusterNode } from "../../src/objects/cluster-node";
import type { NodeRuntime } from "../../src/objects/node-runtime";
import type { NodeHost } from "../../src/objects/node-host";
import type { ShellBugs } from "../../src/objects/shell-bugs";
import { clusterFactory, waitFor, type TestCluster } from "./helpers/cluster";

const newCluster = clusterFactory();
// Slower than the default test timing: these scenarios assert exact answers, and the machine running them is shared.

async function startWithBugs(options: { prefix: string; bugs: ShellBugs }): Promise<TestCluster> {
  const cluster = newCluster({ prefix: options.prefix, nodes: 3, heartbeatIntervalMs: 50, electionTimeoutMs: 500 });
  await Promise.all(cluster.names.map((name) => cluster.stub(name).testSetBugs(options.bugs)));
  await cluster.startAll();
  return cluster;
}

// ---------------------------------------------------------------------------------------------------------------

/** A small database's dump, which a node sends inline (a large one comes as a stream). */
function inlineDump(value: BackupValue): string {
  if (!("sql" in value)) {
    throw new Error("a small database's dump came as a stream");
  }
  return value.sql;
}

async function backupFromLaggingFollower(bugs: ShellBugs): Promise<{
  healthy: { ok: boolean; code?: string; leader?: string | null };
  follower: { ok: boolean; code?: string; hasWrite?: boolean };
  leaderHasWrite: boolean;
  leader: string;
}> {
  const cluster = await startWithBugs({ prefix: "f2-backup", bugs });
  const leader = await cluster.waitForLeader();
  await cluster.execute(["CREATE TABLE t (v TEXT)"]);
  const follower = cluster.names.find((name) => name !== leader)!;
  const fromHealthy = await cluster.stub(follower).backup(cluster.address(follower));
  // The follower stops hearing from the leader; the write is acknowledged by the other two.
  await cluster.setFaults(leader, { partitions: [{ from: leader, to: follower }] });
  await cluster.execute([{ sql: "INSERT INTO t (v) VALUES (?)", params: ["acknowledged-write"] }], {
    among: cluster.names.filter((n) => n !== follower),
  });
  const fromFollower = await cluster.stub(follower).backup(cluster.address(follower));
  const fromLeader = await cluster.stub(leader).backup(cluster.address(leader));
  if (!fromLeader.ok) {
    throw new Error(`the leader refused the backup: ${fromLeader.error.code}: ${fromLeader.error.message}`);
  }
  return {
    leader,
    leaderHasWrite: inlineDump(fromLeader.value).includes("acknowledged-write"),
    healthy: fromHealthy.ok
      ? { ok: true }
      : { ok: false, code: fromHealthy.error.code, leader: fromHealthy.error.leader ?? null },
    follower: fromFollower.ok
      ? { ok: true, hasWrite: inlineDump(fromFollower.value).includes("acknowledged-write") }
      : { ok: false },
  };
}

describe("finding 2: backups come from the leader", () => {
  it("finding 2: a lagging follower refuses a backup with NOT_LEADER naming the leader; the leader's backup has every acknowledged write", async () => {
    const seen = await backupFromLaggingFollower({});
    expect(seen.leaderHasWrite).toBe(true);
    // NOT_LEADER names the leader; a follower that has not heard it lately (a loaded machine) says NO_LEADER instead.
    expect(seen.healthy.ok).toBe(false);
    if (seen.healthy.code === "NOT_LEADER") {
      expect(seen.healthy.leader).toBe(seen.leader);
    } else {
      expect(seen.healthy.code).toBe("NO_LEADER");
    }
    expect(seen.follower).toEqual({ ok: false });
  });
  it("finding 2: with backupFromAnyNode the lagging follower serves a dump without the acknowledged write (the check can fail)", async () => {
    const seen = await backupFromLaggingFollower({ backupFromAnyNode: true });
    expect(seen.healthy).toEqual({ ok: true });
    expect(seen.follower).toEqual({ ok: true, hasWrite: false });
  });
});

// ---------------------------------------------------------------------------------------------------------------

type Patched = NodeRuntime & { brokenByTest?: true };

/** Makes the follower's next delivery-failure callback fail inside its Ready loop (a background break). */
async function breakInDeliveryCallback(cluster: TestCluster, node: string): Promise<void> {
  await runInDurableObject(cluster.stub(node), (instance: ClusterNode) => {
    const runtime = (instance as unknown as { host: NodeHost }).host.current as Patched | null;
    if (runtime === null) {
      throw new Error(`${node} has no runtime`);
    }
    const raft = runtime.raft as { -readonly [K in keyof NodeRuntime["raft"]]: NodeRuntime["raft"][K] };
    let armed = false;
    const reportUnreachable = raft.reportUnreachable.bind(raft);
    const hasReady = raft.hasReady.bind(raft);
    const ready = raft.ready.bind(raft);
    raft.reportUnreachable = (peer) => {
      armed = true;
      reportUnreachable(peer);
    };
    raft.hasReady = () => armed || hasReady();
    raft.ready = () => {
      if (armed) {
        armed = false;
        throw new Error("injected failure in a background callback");
      }
      return ready();
    };
    runtime.brokenByTest = true;
  });
}

async function runtimeState(
  cluster: TestCluster,
  node: string,
): Promise<"patched-broken" | "patched-running" | "replaced" | "none"> {
  return runInDurableObject(cluster.stub(node), (instance: ClusterNode) => {
    const runtime = (instance as unknown as { host: NodeHost }).host.current as Patched | null;
    if (runtime === null) {
      return "none";
    }
    if (runtime.brokenByTest !== true) {
      return "replaced";
    }
    return runtime.isBroken ? "patched-broken" : "patched-running";
  });
}

async function followerBrokenInBackground(
  bugs: ShellBugs,
): Promise<{ broke: boolean; caughtUp: boolean; appliedIndex: number; writeIndex: number }> {
  const cluster = await startWithBugs({ prefix: "f4-broken", bugs });
  const leader = await cluster.waitForLeader();
  await cluster.execute(["CREATE TABLE t (v TEXT)"]);
  const follower = cluster.names.find((name) => name !== leader)!;
  await breakInDeliveryCallback(cluster, follower);
  // Its answers to the leader are lost: its transport reports the failures, and the callback breaks the runtime.
  await cluster.setFaults(follower, { partitions: [{ from: follower, to: leader }] });
  const broke = await waitFor(
    "the follower's runtime to break or be replaced",
    async () => {
      const state = await runtimeState(cluster, follower);
      return state === "patched-broken" || state === "replaced" ? true : undefined;
    },
    { timeoutMs: 10_000 },
  );
  await cluster.heal();
  const write = await cluster.execute([{ sql: "INSERT INTO t (v) VALUES (?)", params: ["after-the-break"] }]);
  const caughtUp = await waitFor(
    "the follower to apply the write",
    async () => ((await cluster.status(follower)).appliedIndex >= write.raftIndex ? true : undefined),
    { timeoutMs: 5_000 },
  ).catch(() => false);
  return { broke, caughtUp, appliedIndex: (await cluster.status(follower)).appliedIndex, writeIndex: write.raftIndex };
}

describe("finding 4: a runtime broken in a background callback is discarded", () => {
  it("finding 4: a follower whose delivery-failure callback broke is reloaded from storage and keeps applying writes", async () => {
    const seen = await followerBrokenInBackground({});
    expect(seen.broke).toBe(true);
    expect(seen.caughtUp).toBe(true);
  });
  it("finding 4: with brokenRuntimeKeepsServing the broken follower answers from a frozen state (the check can fail)", async () => {
    const seen = await followerBrokenInBackground({ brokenRuntimeKeepsServing: true });
    expect(seen.broke).toBe(true);
    expect(seen.caughtUp).toBe(false);
    expect(seen.appliedIndex).toBeLessThan(seen.writeIndex);
  });
});
