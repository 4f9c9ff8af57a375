// Routes that take a node name never reach an object that is not a member of the cluster (each object reached is
// created and billed), and bad names are the caller's error: 400 when malformed, 404 when not a member.
import { describe, expect, it } from "vitest";
import { FakeCluster, harness } from "./http-support";

/** Every node the app called, configured or not. */
function nodesCalled(cluster: FakeCluster): Set<string> {
  return new Set(cluster.calls.map((call) => call.node));
}

describe("node names in requests", () => {
  it("GET /status?node= answers 404 for a name that is not a member, 400 for a malformed one, and reaches neither", async () => {
    const { cluster, request } = harness();
    const unknown = await request("GET", "/status?node=ghost-16957");
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: string }).error).toMatch(
      /ghost-16957 is not a member of cluster .*: members are n1, n2, n3/,
    );
    const malformed = await request("GET", "/status?node=a/b");
    expect(malformed.status).toBe(400);
    const empty = await request("GET", "/status?node=");
    expect(empty.status).toBe(400);
    expect(nodesCalled(cluster).has("ghost-16957")).toBe(false);
    expect(nodesCalled(cluster).has("a/b")).toBe(false);
    expect([...cluster.nodes.keys()]).toEqual(["n1", "n2", "n3"]);
  });

  it("GET /status?node= serves a member added at run time (a learner the configuration does not list)", async () => {
    const cluster = new FakeCluster();
    const { request } = harness(cluster);
    cluster.learners = ["n4"];
    const learner = await request("GET", "/status?node=n4&key=store.node_id");
    expect(learner.status).toBe(200);
    expect(await learner.text()).toBe('"n4"');
  });

  it("GET /readyz?node= answers 400 for a malformed name and 404 for a non-member, without Retry-After", async () => {
    const { cluster, request } = harness();
    const malformed = await request("GET", "/readyz?node=bad%20name");
    expect(malformed.status).toBe(400);
    expect(malformed.headers.get("Retry-After")).toBeNull();
    expect(((await malformed.json()) as { error: string }).error).toMatch(/^node: member name "bad name" is invalid/);
    const unknown = await request("GET", "/readyz?node=ghost");
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get("Retry-After")).toBeNull();
    expect(nodesCalled(cluster).has("ghost")).toBe(false);
    const badTimeout = await request("GET", "/readyz?timeout=forever");
    expect(badTimeout.status).toBe(400);
  });

  it("leadership transfers and removals name members only: 404 otherwise, and no node is asked to act", async () => {
    const { cluster, request } = harness();
    const transfer = await request("POST", "/api/v1/cluster/leader/transfer", { json: { to: "ghost" } });
    expect(transfer.status).toBe(404);
    const leader = await request("POST", "/leader", { json: { id: "ghost" } });
    expect(leader.status).toBe(404);
    const removal = await request("DELETE", "/api/v1/cluster/members/ghost");
    expect(removal.status).toBe(404);
    const malformed = await request("DELETE", "/api/v1/cluster/members/a%20b");
    expect(malformed.status).toBe(400);
    expect(nodesCalled(cluster).has("ghost")).toBe(false);
    expect(cluster.callsTo("transferLeadership")).toEqual([]);
    expect(cluster.callsTo("removeMember")).toEqual([]);
    // A member added at run time can still be removed.
    cluster.learners = ["n4"];
    const learner = await request("DELETE", "/api/v1/cluster/members/n4");
    expect(learner.status).toBe(200);
  });
});
