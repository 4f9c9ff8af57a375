// The cluster API and rqlite's operational routes against fake nodes: health aggregation with per-node deadlines,
// membership and leadership changes, /status, /nodes, /readyz and /leader.
import { describe, expect, it } from "vitest";
import type {
  MemberChangeRequest,
  NodeStatusReport,
  RepairRequest,
  ReplicaReport,
  TransferRequest,
} from "../../src/objects/api";
import { FakeCluster, harness, nodeError } from "./http-support";

const FIXED_NOW = Date.UTC(2026, 0, 14, 12, 0, 0);
const fixedClock = { now: () => FIXED_NOW };

interface Health {
  status: string;
  leader: string | null;
  quorumAvailable: boolean;
  onlineServers: number;
  onlineReplicas: number;
  schemaAgreement: boolean;
  problems: string[];
  nodes: { name: string; reachable: boolean; error: string | null }[];
  replicas: { name: string; status: string; reachable: boolean }[];
}

describe("GET /api/v1/cluster/health", () => {
  it("reports a healthy cluster in full", async () => {
    const { cluster, request } = harness(new FakeCluster(), fixedClock);
    const response = await request("GET", "/api/v1/cluster/health");
    expect(response.status).toBe(200);
    const replica = (name: string) => ({
      name,
      isLearner: false,
      status: "ONLINE",
      matchIndex: 10,
      lag: 0,
      lastContactMs: 30,
      consecutiveFailures: 0,
      reconnections: 0,
      breaker: "CLOSED",
      schemaVersion: 3,
      schemaHash: "hash-a",
      reachable: true,
      consistency: null,
      consistencyCheckedIndex: null,
      consistencyDetail: null,
    });
    const node = (name: string, role: string) => ({
      name,
      reachable: true,
      role,
      term: 1,
      leader: "n1",
      commitIndex: 10,
      appliedIndex: 10,
      schemaVersion: 3,
      schemaHash: "hash-a",
      locationHint: null,
      responseMs: 0,
      error: null,
      consistency: null,
    });
    const expected = {
      cluster: cluster.name,
      status: "HEALTHY",
      reportingNode: "n1",
      leader: "n1",
      term: 1,
      election: { status: "ELECTED", term: 1, lastElectionMs: 120 },
      configuredServers: 3,
      onlineServers: 3,
      onlineReplicas: 2,
      voters: ["n1", "n2", "n3"],
      learners: [],
      quorum: 2,
      quorumAvailable: true,
      schemaAgreement: true,
      replicas: [replica("n2"), replica("n3")],
      nodes: [node("n1", "leader"), node("n2", "follower"), node("n3", "follower")],
      consistency: { enabled: null, repair: null, diverged: [], undecided: null },
      problems: [],
      checkedAt: "2026-01-14T12:00:00.000Z",
    };
    expect(await response.text()).toBe(JSON.stringify(expected));
  });

  it("answers within the per-node deadline when a node never answers, and says so", async () => {
    const cluster = new FakeCluster();
    cluster.hang("n3");
    cluster.replicas.set("n3", { status: "OFFLINE", lagEntries: 7, consecutiveFailures: 4, breaker: "OPEN" });
    const { request } = harness(cluster, { policy: { statusTimeoutMs: 150 } });
    const started = Date.now();
    const response = await request("GET", "/api/v1/cluster/health");
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(response.status).toBe(200);
    const health = (await response.json()) as Health;
    expect(health.status).toBe("DEGRADED");
    expect(health.quorumAvailable).toBe(true);
    expect(health.onlineServers).toBe(2);
    expect(health.onlineReplicas).toBe(1);
    expect(health.nodes.find((n) => n.name === "n3")).toMatchObject({
      reachable: false,
      error: "DEADLINE: node n3: no answer within 150 ms",
    });
    expect(health.replicas.find((r) => r.name === "n3")).toMatchObject({
      status: "OFFLINE",
      reachable: false,
      breaker: "OPEN",
      lag: 7,
    });
    expect(health.problems).toEqual([
      "node n3 is unreachable: node n3: no answer within 150 ms",
      "replica n3 is OFFLINE (lag 7 entries)",
    ]);
  });

  it("answers 503 with Retry-After when no quorum is available", async () => {
    const cluster = new FakeCluster(["n1", "n2", "n3"], null);
    cluster.unreachable("n2").unreachable("n3");
    const { request } = harness(cluster);
    const response = await request("GET", "/api/v1/cluster/health");
    expect(response.status).toBe(503);
    expect(response.headers.get("Retry-After")).toBe("2");
    const health = (await response.json()) as Health;
    expect(health.status).toBe("UNHEALTHY");
    expect(health.leader).toBeNull();
    expect(health.quorumAvailable).toBe(false);
    expect(health.problems[0]).toBe("no leader is known (an election is under way, or no quorum is reachable)");
  });

  /** Health as the leader n1 sees n2 and n3 (the fake cluster's election timeout is 1000 ms, 10 ticks of 100 ms). */
  async function healthWithReplicas(
    n2: Partial<ReplicaReport>,
    n3: Partial<ReplicaReport>,
  ): Promise<{ code: number; health: Health }> {
    const cluster = new FakeCluster();
    cluster.replicas.set("n2", n2).set("n3", n3);
    const response = await harness(cluster).request("GET", "/api/v1/cluster/health");
    return { code: response.status, health: (await response.json()) as Health };
  }

  it("is unhealthy when the leader has not heard from a quorum of replicas within an election timeout", async () => {
    // CheckQuorum no longer counts a voter last heard from 10 ticks ago.
    const { code, health } = await healthWithReplicas(
      { status: "RECONNECTING", lastContactMs: 1_000, consecutiveFailures: 9 },
      { status: "OFFLINE", lastContactMs: 30_000, consecutiveFailures: 40 },
    );
    expect(code).toBe(503);
    expect(health.status).toBe("UNHEALTHY");
    expect(health.quorumAvailable).toBe(false);
    expect(health.problems).toContain(
      "only 1 of 3 voters can acknowledge writes (the leader heard from them within 1000 ms); 2 are needed",
    );
  });

  it("counts a RECONNECTING replica heard from within an election timeout towards the quorum (DEGRADED, 200)", async () => {
    // Message loss: one delivery to each failed a moment ago, while their answers to other messages arrive.
    const { code, health } = await healthWithReplicas(
      { status: "RECONNECTING", lastContactMs: 100, consecutiveFailures: 1 },
      { status: "RECONNECTING", lastContactMs: 900, consecutiveFailures: 1 },
    );
    expect(code).toBe(200);
    expect(health).toMatchObject({ status: "DEGRADED", quorumAvailable: true, onlineReplicas: 0 });
    expect(health.replicas.map((r) => [r.name, r.status])).toEqual([
      ["n2", "RECONNECTING"],
      ["n3", "RECONNECTING"],
    ]);
    expect(health.problems).toEqual([
      "replica n2 is RECONNECTING (lag 0 entries)",
      "replica n3 is RECONNECTING (lag 0 entries)",
    ]);
  });

  it("does not count an ONLINE-looking replica the leader has not heard from within an election timeout", async () => {
    // A stalled leader's view: no tick has moved the statuses yet, but its contact times say the truth.
    const { code, health } = await healthWithReplicas(
      { lastContactMs: 1_200 },
      { status: "LAGGING", lastContactMs: 5_000 },
    );
    expect(code).toBe(503);
    expect(health.quorumAvailable).toBe(false);
  });

  it("stays available with a quorum but no leader during an election (unhealthy, 200)", async () => {
    const cluster = new FakeCluster(["n1", "n2", "n3"], null);
    // Two voters lost their leader a moment ago (within two election timeouts of 1000 ms): an election is under way.
    cluster.leaderContactMs.set("n1", 1_500).set("n2", 300).set("n3", null);
    const response = await harness(cluster).request("GET", "/api/v1/cluster/health");
    expect(response.status).toBe(200);
    const health = (await response.json()) as Health;
    expect(health.status).toBe("UNHEALTHY");
    expect(health.quorumAvailable).toBe(true);
  });

  it("answers 503 when the voters answer but none heard from a leader for over two election timeouts", async () => {
    const cluster = new FakeCluster(["n1", "n2", "n3"], null);
    cluster.leaderContactMs.set("n1", 2_001).set("n2", 30_000).set("n3", null);
    const response = await harness(cluster).request("GET", "/api/v1/cluster/health");
    expect(response.status).toBe(503);
    const health = (await response.json()) as Health;
    expect(health.onlineServers).toBe(3);
    expect(health.quorumAvailable).toBe(false);
    expect(health.problems).toEqual([
      "no leader is known (an election is under way, or no quorum is reachable)",
      "only 0 of 3 voters answered and heard from a leader within 2000 ms; 2 are needed to elect one",
    ]);
  });

  it("reports schema disagreement and members only the nodes know about", async () => {
    const cluster = new FakeCluster();
    const { request } = harness(cluster);
    cluster.schemaHashes.set("n2", "hash-b");
    cluster.learners = ["n4"];
    cluster.node("n4");
    const health = (await (await request("GET", "/api/v1/cluster/health")).json()) as Health;
    expect(health.schemaAgreement).toBe(false);
    expect(health.status).toBe("DEGRADED");
    expect(health.nodes.map((n) => n.name)).toEqual(["n1", "n2", "n3", "n4"]);
    expect(health.replicas.map((r) => r.name)).toEqual(["n2", "n3", "n4"]);
    expect(health.problems).toContain("the reachable nodes disagree on the schema (2 different schema hashes)");
  });
});

describe("GET /api/v1/cluster", () => {
  it("lists members with roles and location hints", async () => {
    const cluster = new FakeCluster();
    const { request } = harness(cluster, {}, { CLUSTER_NODES: "n1@weur,n2,n3@apac" });
    cluster.unreachable("n3");
    const response = await request("GET", "/api/v1/cluster");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      name: cluster.name,
      leader: "n1",
      term: 1,
      heartbeatIntervalMs: 100,
      electionTimeoutMs: 1000,
      members: [
        {
          name: "n1",
          role: "leader",
          voter: true,
          learner: false,
          configured: true,
          locationHint: "weur",
          reachable: true,
        },
        {
          name: "n2",
          role: "follower",
          voter: true,
          learner: false,
          configured: true,
          locationHint: null,
          reachable: true,
        },
        {
          name: "n3",
          role: "unknown",
          voter: true,
          learner: false,
          configured: true,
          locationHint: "apac",
          reachable: false,
        },
      ],
    });
  });
});

describe("leadership and membership changes", () => {
  it("steps the leader down and transfers leadership to a named voter", async () => {
    const { cluster, request } = harness();
    const stepdown = await request("POST", "/api/v1/cluster/leader/stepdown");
    expect(stepdown.status).toBe(200);
    expect(await stepdown.text()).toBe('{"leader":"n2","term":2}');
    expect((cluster.callsTo("transferLeadership")[0]?.request as TransferRequest).to).toBeUndefined();
    const transfer = await request("POST", "/api/v1/cluster/leader/transfer", { json: { to: "n3" } });
    expect(transfer.status).toBe(200);
    expect(await transfer.text()).toBe('{"leader":"n3","term":3}');
    // The cached leader followed the transfer: the next write goes straight to n3.
    await request("POST", "/db/execute", { json: ["DELETE FROM foo"] });
    expect(cluster.callsTo("execute").map((call) => call.node)).toEqual(["n3"]);
  });

  it("refuses bad transfer bodies with 400 and passes node refusals on", async () => {
    const { cluster, request } = harness();
    const cases: [string, RegExp][] = [
      ['{"to": "a/b"}', /^to: member name "a\/b" is invalid: use 1 to 64 letters/],
      ['{"to": "n2", "force": true}', /Unrecognized key/i],
      ["{not json", /not valid JSON/],
      ["", /empty/],
    ];
    for (const [body, message] of cases) {
      const response = await request("POST", "/api/v1/cluster/leader/transfer", {
        body,
        headers: { "Content-Type": "application/json" },
      });
      expect(response.status, body).toBe(400);
      expect(((await response.json()) as { error: string }).error, body).toMatch(message);
    }
    expect(cluster.callsTo("transferLeadership")).toEqual([]);
    // A learner is a member, so the leader is asked, and its refusal is passed on.
    cluster.learners = ["n4"];
    const learner = await request("POST", "/api/v1/cluster/leader/transfer", { json: { to: "n4" } });
    expect(learner.status).toBe(400);
    expect(await learner.json()).toEqual({ error: "n4 is not a voter" });
  });

  it("asks again while a conflict lasts: 200 once it clears, 409 with its reason at the deadline", async () => {
    const { cluster, request } = harness();
    // A new leader that has not committed in its term refuses config changes for a heartbeat or two.
    let refusals = 2;
    cluster.on("n1", "addMember", () =>
      refusals-- > 0
        ? nodeError("n1", "CONFIG_CHANGE_IN_PROGRESS", "the leader has not yet committed an entry of its term 2")
        : undefined,
    );
    const added = await request("POST", "/api/v1/cluster/members", { json: { name: "n4" } });
    expect(added.status, await added.clone().text()).toBe(200);
    expect(cluster.callsTo("addMember").map((call) => call.node)).toEqual(["n1", "n1", "n1"]);
    expect(cluster.learners).toEqual(["n4"]);

    cluster.on("n1", "transferLeadership", () =>
      nodeError("n1", "TRANSFER_IN_PROGRESS", "a transfer to n2 is under way"),
    );
    const busy = await request("POST", "/api/v1/cluster/leader/stepdown?timeout=1s");
    expect(busy.status).toBe(409);
    expect(busy.headers.get("X-DHA-Error-Code")).toBe("TRANSFER_IN_PROGRESS");
    expect(((await busy.json()) as { error: string }).error).toMatch(
      /^a transfer to n2 is under way \(still refused after \d+ calls in \d+ ms, until less than half an election timeout was left before the deadline; nothing was/,
    );
    expect(cluster.callsTo("transferLeadership").length).toBeGreaterThan(1);
  });

  it("says what ended the asking when a conflict lasts: the attempt cap, or too little time left", async () => {
    const capped = harness(new FakeCluster(), { policy: { maxAttempts: 3 } });
    capped.cluster.on("n1", "transferLeadership", () =>
      nodeError("n1", "TRANSFER_IN_PROGRESS", "a transfer to n2 is under way"),
    );
    const busy = await capped.request("POST", "/api/v1/cluster/leader/stepdown?timeout=10s");
    expect(busy.status).toBe(409);
    expect(((await busy.json()) as { error: string }).error).toMatch(
      /^a transfer to n2 is under way \(still refused after 3 calls in \d+ ms, the most one request may make, before the deadline; nothing was applied\)$/,
    );
    expect(capped.cluster.callsTo("transferLeadership")).toHaveLength(3);

    // The fake cluster's election timeout is 1 s: with 400 ms left, a change proposed now could not be confirmed.
    const late = harness();
    late.cluster.on("n1", "transferLeadership", () =>
      nodeError("n1", "TRANSFER_IN_PROGRESS", "a transfer to n2 is under way"),
    );
    const short = await late.request("POST", "/api/v1/cluster/leader/stepdown?timeout=400ms");
    expect(short.status).toBe(409);
    expect(((await short.json()) as { error: string }).error).toMatch(
      /^a transfer to n2 is under way \(still refused after 1 call in \d+ ms, until less than half an election timeout was left before the deadline; nothing was applied\)$/,
    );
    expect(late.cluster.callsTo("transferLeadership")).toHaveLength(1);
  });

  it("answers refusals that will not clear by themselves at once", async () => {
    const { cluster, request } = harness();
    cluster.on("n1", "removeMember", () =>
      nodeError("n1", "INVALID_REQUEST", "node n2 is the last voter; a cluster cannot remove its last voter"),
    );
    const lastVoter = await request("DELETE", "/api/v1/cluster/members/n2");
    expect(lastVoter.status).toBe(400);
    expect(await lastVoter.json()).toEqual({
      error: "node n2 is the last voter; a cluster cannot remove its last voter",
    });
    expect(cluster.callsTo("removeMember")).toHaveLength(1);
  });

  it("answers 504 when an admin call times out, without asking again", async () => {
    const { cluster, request } = harness();
    cluster.on("n1", "addMember", () => nodeError("n1", "TIMEOUT", "not committed in time"));
    const slow = await request("POST", "/api/v1/cluster/members", { json: { name: "n4" } });
    expect(slow.status).toBe(504);
    expect(((await slow.json()) as { error: string }).error).toBe(
      "not committed in time; the change may still complete: check GET /api/v1/cluster",
    );
    expect(cluster.callsTo("addMember")).toHaveLength(1);
  });

  it("answers 504 without trying another node when the leader does not answer an admin call in time", async () => {
    const { cluster, request } = harness(new FakeCluster(), { policy: { attemptTimeoutMs: 150 } });
    cluster.on("n1", "removeMember", () => new Promise<never>(() => {}));
    const started = Date.now();
    const hung = await request("DELETE", "/api/v1/cluster/members/n3?timeout=2s");
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(hung.status).toBe(504);
    expect(hung.headers.get("X-DHA-Error-Code")).toBe("TIMEOUT");
    expect(((await hung.json()) as { error: string }).error).toBe(
      "node n1: no answer within 150 ms; the change may still complete: check GET /api/v1/cluster",
    );
    expect(cluster.callsTo("removeMember").map((call) => call.node)).toEqual(["n1"]);
  });

  it("treats a transfer to the node that already leads as done, without asking it to transfer", async () => {
    const { cluster, request } = harness();
    const response = await request("POST", "/api/v1/cluster/leader/transfer", { json: { to: "n1" } });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('{"leader":"n1","term":1}');
    expect(cluster.callsTo("transferLeadership")).toEqual([]);
    // A transfer to a follower still goes through the leader.
    const moved = await request("POST", "/api/v1/cluster/leader/transfer", { json: { to: "n2" } });
    expect(await moved.text()).toBe('{"leader":"n2","term":2}');
    expect(
      cluster.callsTo("transferLeadership").map((call) => [call.node, (call.request as TransferRequest).to]),
    ).toEqual([["n1", "n2"]]);
  });

  it("adds and removes members", async () => {
    const { cluster, request } = harness();
    const added = await request("POST", "/api/v1/cluster/members", { json: { name: "n4", locationHint: "weur" } });
    expect(added.status).toBe(200);
    expect(await added.text()).toBe('{"voters":["n1","n2","n3"],"learners":["n4"]}');
    expect((cluster.callsTo("addMember")[0]?.request as MemberChangeRequest).member).toEqual({
      name: "n4",
      locationHint: "weur",
    });
    const removed = await request("DELETE", "/api/v1/cluster/members/n3");
    expect(removed.status).toBe(200);
    expect(await removed.text()).toBe('{"voters":["n1","n2"],"learners":["n4"]}');
    const badHint = await request("POST", "/api/v1/cluster/members", { json: { name: "n5", locationHint: "mars" } });
    expect(badHint.status).toBe(400);
    expect(((await badHint.json()) as { error: string }).error).toMatch(
      /^locationHint: member "n5": unknown location hint "mars" \(one of wnam, /,
    );
    const badName = await request("DELETE", "/api/v1/cluster/members/bad!name");
    expect(badName.status).toBe(400);
    expect(((await badName.json()) as { error: string }).error).toMatch(/^name: member name ".*" is invalid/);
    expect(cluster.callsTo("removeMember")).toHaveLength(1);
  });

  it("repairs a member on the leader, and refuses unknown and malformed names", async () => {
    const { cluster, request } = harness();
    const repaired = await request("POST", "/api/v1/cluster/members/n2/repair");
    expect(repaired.status).toBe(200);
    expect(await repaired.text()).toBe('{"node":"n2","imageIndex":10,"durationMs":5}');
    expect(repaired.headers.get("X-DHA-Node")).toBe("n1");
    expect((cluster.callsTo("repairMember")[0]?.request as RepairRequest).member).toBe("n2");
    const unknown = await request("POST", "/api/v1/cluster/members/n9/repair");
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: string }).error).toMatch(/n9 is not a member/);
    const badName = await request("POST", "/api/v1/cluster/members/bad!name/repair");
    expect(badName.status).toBe(400);
    expect(cluster.callsTo("repairMember")).toHaveLength(1);
  });
});

describe("GET /status", () => {
  it("describes one node in rqlite's vocabulary", async () => {
    const { cluster, request } = harness(new FakeCluster(), fixedClock);
    const response = await request("GET", "/status");
    expect(response.status).toBe(200);
    expect(response.headers.get("X-DHA-Node")).toBe("n1");
    const status = (await response.json()) as {
      store: { node_id: string; ready: boolean; leader: unknown; raft: { state: string } };
    };
    expect(status.store.node_id).toBe("n1");
    expect(status.store.ready).toBe(true);
    expect(status.store.leader).toEqual({ node_id: "n1", addr: `${cluster.name}/n1` });
    expect(status.store.raft.state).toBe("Leader");
    const follower = await request("GET", "/status?node=n2&key=store.raft.state");
    expect(await follower.text()).toBe('"Follower"');
    const missing = await request("GET", "/status?key=store.nothing");
    expect(await missing.text()).toBe("{}");
    const bad = await request("GET", "/status?node=a/b");
    expect(bad.status).toBe(400);
  });

  it("answers 503 when no node answers", async () => {
    const cluster = new FakeCluster();
    cluster.unreachable("n1").unreachable("n2").unreachable("n3");
    const response = await harness(cluster).request("GET", "/status");
    expect(response.status).toBe(503);
    expect(((await response.json()) as { error: string }).error).toMatch(/^no node answered: n1: node n1: RPC failed/);
  });
});

describe("GET /nodes", () => {
  it("answers in rqlite's legacy map shape and, with ver=2, as a list", async () => {
    const cluster = new FakeCluster();
    cluster.hang("n3");
    const { request } = harness(cluster, { ...fixedClock, policy: { statusTimeoutMs: 100 } });
    const entry = (id: string, extra: Record<string, unknown>) => ({
      id,
      api_addr: "https://db.example.com",
      addr: `${cluster.name}/${id}`,
      voter: true,
      ...extra,
    });
    const n1 = entry("n1", { reachable: true, leader: true });
    const n2 = entry("n2", { reachable: true, leader: false });
    const n3 = entry("n3", { reachable: false, leader: false, error: "node n3: no answer within 100 ms" });
    const legacy = await request("GET", "/nodes");
    expect(legacy.status).toBe(200);
    expect(await legacy.text()).toBe(JSON.stringify({ n1, n2, n3 }));
    const v2 = await request("GET", "/nodes?ver=2&timeout=50ms");
    expect(await v2.text()).toBe(
      JSON.stringify({ nodes: [n1, n2, { ...n3, error: "node n3: no answer within 50 ms" }] }),
    );
  });

  it("includes learners only with nonvoters", async () => {
    const cluster = new FakeCluster();
    const { request } = harness(cluster);
    cluster.learners = ["n4"];
    const voters = (await (await request("GET", "/nodes?ver=2")).json()) as { nodes: { id: string; voter: boolean }[] };
    expect(voters.nodes.map((n) => n.id)).toEqual(["n1", "n2", "n3"]);
    const all = (await (await request("GET", "/nodes?ver=2&nonvoters")).json()) as {
      nodes: { id: string; voter: boolean }[];
    };
    expect(all.nodes.map((n) => [n.id, n.voter])).toEqual([
      ["n1", true],
      ["n2", true],
      ["n3", true],
      ["n4", false],
    ]);
  });
});

describe("GET /readyz", () => {
  it("is ready when a reachable leader is known and the node has caught up", async () => {
    const { request } = harness();
    const ready = await request("GET", "/readyz");
    expect(ready.status).toBe(200);
    expect(ready.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(await ready.text()).toBe("[+]node ok\n[+]leader ok\n[+]store ok");
    const noleader = await request("GET", "/readyz?noleader");
    expect(await noleader.text()).toBe("[+]node ok");
  });

  it("is not ready without a leader, with an unreachable leader, or while behind", async () => {
    const leaderless = await harness(new FakeCluster(["n1", "n2", "n3"], null)).request("GET", "/readyz");
    expect(leaderless.status).toBe(503);
    expect(leaderless.headers.get("Retry-After")).toBe("2");
    expect(await leaderless.text()).toBe("[+]node ok\n[+]leader does not exist");

    const cut = new FakeCluster();
    cut.unreachable("n1");
    const unreachable = await harness(cut).request("GET", "/readyz?node=n2");
    expect(unreachable.status).toBe(503);
    expect(await unreachable.text()).toBe(
      "[+]node ok\n[+]leader not contactable: node n1: RPC failed: n1 is unreachable",
    );

    const behind = new FakeCluster();
    behind.applied.set("n2", 8);
    const lagging = await harness(behind).request("GET", "/readyz?node=n2");
    expect(lagging.status).toBe(503);
    expect(await lagging.text()).toBe(
      "[+]node ok\n[+]leader ok\n[+]store not ready: n2 has applied 8 of 10 committed entries",
    );

    // Caught up, but the leader has not been heard from for longer than an election timeout (1 s here).
    const lost = new FakeCluster();
    lost.leaderContactMs.set("n2", 4_500);
    const out = await harness(lost).request("GET", "/readyz?node=n2");
    expect(out.status).toBe(503);
    expect(await out.text()).toBe(
      "[+]node ok\n[+]leader ok\n[+]store not ready: n2 last heard from leader n1 4500 ms ago, " +
        "more than an election timeout (1000 ms)",
    );
    const status = await harness(lost).request("GET", "/status?node=n2&key=store.ready");
    expect(await status.text()).toBe("false");
  });

  it("with sync, waits until the node has applied the leader's commit index, within the timeout", async () => {
    const cluster = new FakeCluster();
    let probes = 0;
    cluster.on("n2", "status", (_request: never, node) => {
      const report: NodeStatusReport = node.report();
      // n2 has applied all it knows of for two probes, then learns and applies the rest.
      return probes++ < 2 ? { ok: true, node: "n2", value: { ...report, commitIndex: 8, appliedIndex: 8 } } : undefined;
    });
    const { request } = harness(cluster);
    const synced = await request("GET", "/readyz?node=n2&sync");
    expect(synced.status).toBe(200);
    expect(await synced.text()).toBe("[+]node ok\n[+]leader ok\n[+]store ok\n[+]sync ok");
    expect(probes).toBeGreaterThanOrEqual(3);

    const stuck = new FakeCluster();
    stuck.on("n2", "status", (_request: never, node) => ({
      ok: true,
      node: "n2",
      value: { ...node.report(), commitIndex: 8, appliedIndex: 8 },
    }));
    const started = Date.now();
    const never = await harness(stuck).request("GET", "/readyz?node=n2&sync&timeout=300ms");
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(never.status).toBe(503);
    expect(await never.text()).toBe(
      "[+]node ok\n[+]leader ok\n[+]store ok\n[+]sync not ok: n2 applied 8 of the leader's 10 entries before the deadline",
    );
  });

  it("with sync, is ready at once when the node has already applied the leader's commit index, even if the probes used up the timeout", async () => {
    const cluster = new FakeCluster();
    // Each status probe answers within the per-node timeout, but the two together outlast it (slow links).
    const slowly = async () => {
      await new Promise((resolve) => setTimeout(resolve, 60));
      return undefined;
    };
    cluster.on("n1", "status", slowly);
    cluster.on("n2", "status", slowly);
    const synced = await harness(cluster).request("GET", "/readyz?node=n2&sync&timeout=90ms");
    expect(await synced.text()).toBe("[+]node ok\n[+]leader ok\n[+]store ok\n[+]sync ok");
    expect(synced.status).toBe(200);
  });
});

describe("/leader", () => {
  it("GET names the leader as a /nodes entry", async () => {
    const cluster = new FakeCluster(["n1", "n2", "n3"], "n2");
    const { request } = harness(cluster, fixedClock);
    const response = await request("GET", "/leader");
    expect(response.status).toBe(200);
    expect(await response.text()).toBe(
      JSON.stringify({
        id: "n2",
        api_addr: "https://db.example.com",
        addr: `${cluster.name}/n2`,
        voter: true,
        reachable: true,
        leader: true,
        time_s: "0s",
      }),
    );
    const none = await harness(new FakeCluster(["n1", "n2", "n3"], null)).request("GET", "/leader");
    expect(none.status).toBe(503);
    expect(none.headers.get("Retry-After")).toBe("2");
  });

  it('POST steps down, optionally to {"id": name}', async () => {
    const { cluster, request } = harness();
    const plain = await request("POST", "/leader");
    expect(plain.status).toBe(200);
    expect(await plain.json()).toEqual({ leader: "n2", term: 2 });
    const named = await request("POST", "/leader", { json: { id: "n3" } });
    expect(await named.json()).toEqual({ leader: "n3", term: 3 });
    expect(cluster.callsTo("transferLeadership").map((call) => (call.request as TransferRequest).to)).toEqual([
      undefined,
      "n3",
    ]);
    const bad = await request("POST", "/leader", { json: { id: 5 } });
    expect(bad.status).toBe(400);
  });
});
