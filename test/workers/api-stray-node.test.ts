// An object that is not a member of its cluster never schedules an alarm: a name that no configuration and no
// membership lists must not tick (and be billed) forever, and an alarm such an object already has is deleted.
import { env, listDurableObjectIds, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION, type ClusterConfig, type NodeAddress } from "../../src/objects/api";
import { objectName } from "../../src/objects/config";
import { clusterFactory, uniqueClusterName } from "./helpers/cluster";
import { RealHarness } from "./http-support";

const newCluster = clusterFactory();

function clusterConfig(prefix: string): ClusterConfig {
  return {
    name: uniqueClusterName(prefix),
    members: [{ name: "n1" }, { name: "n2" }, { name: "n3" }],
    heartbeatIntervalMs: 20,
    electionTimeoutMs: 200,
  };
}

function stubOf(config: ClusterConfig, node: string) {
  return env.CLUSTER_NODE.get(env.CLUSTER_NODE.idFromName(objectName({ cluster: config.name, node })));
}

function alarmOf(stub: ReturnType<typeof stubOf>): Promise<number | null> {
  return runInDurableObject(stub, (_instance, state) => state.storage.getAlarm());
}

describe("an object that is not a member", () => {
  it("reached by name with a configuration that does not list it, schedules no alarm", async () => {
    const config = clusterConfig("stray-start");
    const address: NodeAddress = { protocolVersion: PROTOCOL_VERSION, cluster: config, node: "ghost-16957" };
    const ghost = stubOf(config, "ghost-16957");
    const answer = await ghost.status(address);
    expect(answer.ok && answer.value.member).toBe(false);
    expect(await alarmOf(ghost)).toBeNull();
    // The same call to a configured member starts it ticking: the check is about membership, not about starting.
    const member = stubOf(config, "n1");
    await member.status({ ...address, node: "n1" });
    expect(await alarmOf(member)).not.toBeNull();
    await member.testHalt();
  });

  it("that already has an alarm (from before this check), deletes it when it fires instead of re-arming it", async () => {
    const config = clusterConfig("stray-alarm");
    const ghost = stubOf(config, "ghost");
    // What an object reached by an unknown name was left with before: an identity and a pending alarm.
    await runInDurableObject(ghost, async (_instance, state) => {
      state.storage.kv.put("node/identity", { cluster: config, node: "ghost" });
      await state.storage.setAlarm(Date.now() + 60_000);
    });
    expect(await alarmOf(ghost)).not.toBeNull();
    expect(await runDurableObjectAlarm(ghost)).toBe(true);
    expect(await alarmOf(ghost)).toBeNull();
  });

  it("is never created by the production app: /status and /readyz with a name that is not a member answer 404", async () => {
    const cluster = newCluster({ prefix: "stray-http", nodes: 3 });
    const h = new RealHarness(cluster);
    await cluster.startAll();
    await cluster.waitForLeader();
    for (const path of ["/status?node=ghost-16957", "/readyz?node=ghost-16957"]) {
      const answer = await h.send("GET", path);
      expect(answer.status, answer.text).toBe(404);
    }
    expect((await h.send("GET", "/readyz?node=bad%20name")).status).toBe(400);
    const ghostId = env.CLUSTER_NODE.idFromName(objectName({ cluster: cluster.config.name, node: "ghost-16957" }));
    const existing = await listDurableObjectIds(env.CLUSTER_NODE);
    expect(existing.some((id) => id.equals(ghostId))).toBe(false);
    // The members do exist: the listing would show an object the app had reached.
    const memberId = env.CLUSTER_NODE.idFromName(objectName({ cluster: cluster.config.name, node: "n1" }));
    expect(existing.some((id) => id.equals(memberId))).toBe(true);
    expect(h.calls.some((call) => call.node === "ghost-16957")).toBe(false);
  });
});
