// Leader routing, elections, retries and deadlines, against fake nodes that misbehave on cue.
import { describe, expect, it } from "vitest";
import type { ExecuteRequest, QueryRequest } from "../../src/objects/api";
import { FakeCluster, harness, nodeError } from "./http-support";

const write = { json: ["INSERT INTO foo(name) VALUES('fiona')"] };

function executeIds(cluster: FakeCluster): string[] {
  return cluster.callsTo("execute").map((call) => (call.request as ExecuteRequest).request.id);
}

function nodesCalled(cluster: FakeCluster, method: "execute" | "query"): string[] {
  return cluster.callsTo(method).map((call) => call.node);
}

describe("leader routing", () => {
  it("follows a NOT_LEADER hint and then goes straight to the cached leader", async () => {
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], "n3"));
    const first = await request("POST", "/db/execute", write);
    expect(first.status).toBe(200);
    expect(first.headers.get("X-DHA-Node")).toBe("n3");
    expect(nodesCalled(cluster, "execute")).toEqual(["n1", "n3"]);
    const second = await request("POST", "/db/execute", write);
    expect(second.status).toBe(200);
    expect(nodesCalled(cluster, "execute")).toEqual(["n1", "n3", "n3"]);
  });

  it("refreshes a stale cached leader from the NOT_LEADER answer", async () => {
    const { cluster, request } = harness();
    await request("POST", "/db/execute", write);
    cluster.elect("n2");
    const response = await request("POST", "/db/execute", write);
    expect(response.status).toBe(200);
    expect(response.headers.get("X-DHA-Node")).toBe("n2");
    expect(nodesCalled(cluster, "execute")).toEqual(["n1", "n1", "n2"]);
  });

  it("moves on from an unreachable cached leader", async () => {
    const { cluster, request } = harness();
    await request("POST", "/db/execute", write);
    cluster.unreachable("n1");
    cluster.elect("n2");
    const response = await request("POST", "/db/execute", write);
    expect(response.status).toBe(200);
    expect(response.headers.get("X-DHA-Node")).toBe("n2");
  });
});

describe("elections (waitForElectionComplete)", () => {
  it("waits for an election under way, then writes to the new leader", async () => {
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], null));
    cluster.on("n2", "waitForLeader", () => {
      // The election completes while the request waits.
      setTimeout(() => cluster.elect("n2"), 20);
      return undefined;
    });
    const response = await request("POST", "/db/execute", write);
    expect(response.status).toBe(200);
    expect(response.headers.get("X-DHA-Node")).toBe("n2");
    // n1 knew no leader (it may be the one cut off): the wait is asked of the next node.
    expect(cluster.callsTo("waitForLeader").map((call) => call.node)).toEqual(["n2"]);
    expect(nodesCalled(cluster, "execute")).toEqual(["n1", "n2"]);
  });

  it("answers 503 NO_LEADER with Retry-After and the reason when no leader emerges before the deadline, applying nothing", async () => {
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], null), {
      policy: { maxElectionWaitMs: 60 },
    });
    const started = Date.now();
    const response = await request("POST", "/db/execute?timeout=400ms", write);
    const elapsedMs = Date.now() - started;
    // The deadline, not a count of calls, ends the retries: every node was asked to wait for an election.
    expect(elapsedMs).toBeGreaterThanOrEqual(390);
    expect(elapsedMs).toBeLessThan(2_000);
    expect(response.status).toBe(503);
    expect(response.headers.get("Retry-After")).toBe("2");
    expect(response.headers.get("X-DHA-Error-Code")).toBe("NO_LEADER");
    const body = (await response.json()) as { results: unknown[]; error: string };
    expect(body.results).toEqual([]);
    expect(body.error).toMatch(/^no leader: n[123] saw no leader elected within \d+ ms/);
    expect(new Set(cluster.callsTo("waitForLeader").map((call) => call.node))).toEqual(new Set(["n1", "n2", "n3"]));
    expect(cluster.applied_requests.size).toBe(0);
  });

  it("waits for a leader before a linearizable read once no node knows one", async () => {
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], null));
    for (const node of ["n1", "n2", "n3"]) {
      cluster.on(node, "waitForLeader", () => {
        setTimeout(() => cluster.elect("n3"), 10);
        return undefined;
      });
    }
    const response = await request("GET", "/db/query?q=SELECT%201&level=linearizable");
    expect(response.status).toBe(200);
    // Every node said NO_LEADER before the router waited on one; that node serves once a leader confirms the read.
    const waitedOn = cluster.callsTo("waitForLeader").map((call) => call.node);
    expect(waitedOn).toHaveLength(1);
    expect(response.headers.get("X-DHA-Node")).toBe(waitedOn[0]);
    expect(new Set(nodesCalled(cluster, "query").slice(0, 3))).toEqual(new Set(["n1", "n2", "n3"]));
  });
});

describe("retries", () => {
  it("retries a write after TIMEOUT with the same request id, and the leader applies it once", async () => {
    const { cluster, request } = harness();
    let timeouts = 0;
    cluster.on("n1", "execute", async (req: ExecuteRequest, node) => {
      if (timeouts++ === 0) {
        // Applied, but the answer is lost: only deduplication keeps the retry from applying it twice.
        await node.execute(req);
        return nodeError("n1", "TIMEOUT", "commit not confirmed in time");
      }
      return undefined;
    });
    const response = await request("POST", "/db/execute", write);
    expect(response.status).toBe(200);
    const ids = executeIds(cluster);
    expect(new Set(ids).size).toBe(1);
    expect(cluster.applied_requests.size).toBe(1);
    expect(response.headers.get("X-DHA-Request-Id")).toBe(ids[0]?.split(":")[1]);
  });

  it("backs off on QUEUE_FULL and TRANSFER_IN_PROGRESS, keeping the request id", async () => {
    const { cluster, request } = harness();
    const refusals = ["QUEUE_FULL", "TRANSFER_IN_PROGRESS", "QUEUE_FULL"] as const;
    let calls = 0;
    cluster.on("n1", "execute", () => {
      const code = refusals[calls++];
      return code === undefined ? undefined : nodeError("n1", code, `busy (${code})`);
    });
    const response = await request("POST", "/db/execute", write);
    expect(response.status).toBe(200);
    expect(new Set(executeIds(cluster)).size).toBe(1);
    expect(executeIds(cluster)).toHaveLength(4);
  });

  it("keeps retrying until the deadline, then answers 503 with the last error", async () => {
    const { cluster, request } = harness(new FakeCluster());
    cluster.on("n1", "execute", () => nodeError("n1", "QUEUE_FULL", "the proposal queue is full"));
    const started = Date.now();
    const response = await request("POST", "/db/execute?timeout=200ms", write);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(response.status).toBe(503);
    expect(response.headers.get("Retry-After")).toBe("2");
    expect(response.headers.get("X-DHA-Error-Code")).toBe("QUEUE_FULL");
    expect(((await response.json()) as { error: string }).error).toMatch(
      /^the deadline passed after \d+ calls in \d+ ms \(last: n1 answered QUEUE_FULL: the proposal queue is full\)$/,
    );
    // A refusal before proposing applies nothing; the request was resent (more than the old budget of 8) under one id.
    expect(executeIds(cluster).length).toBeGreaterThan(8);
    expect(new Set(executeIds(cluster)).size).toBe(1);
  });

  it("reports an unknown outcome (504) when a write's answer never comes before the deadline", async () => {
    const { cluster, request } = harness(new FakeCluster(), { policy: { attemptTimeoutMs: 40 } });
    cluster.hang("n1");
    cluster.unreachable("n2");
    cluster.unreachable("n3");
    const started = Date.now();
    const response = await request("POST", "/db/execute?timeout=300ms", write);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(response.status).toBe(504);
    const body = (await response.json()) as { results: unknown[]; error: string };
    expect(body.error).toMatch(/may or may not have been applied/);
    expect(response.headers.get("X-DHA-Error-Code")).toBe("OUTCOME_UNKNOWN");
    // A keyless write's id is a UUIDv7: time-ordered, so every node's dedup window appends it at the end.
    expect(response.headers.get("X-DHA-Request-Id")).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-/,
    );
  });

  it("does not hammer an overloaded node", async () => {
    const { cluster, request } = harness();
    cluster.unreachable("n1", { overloaded: true, retryable: true });
    const response = await request("POST", "/db/execute", write);
    expect(response.status).toBe(503);
    expect(response.headers.get("X-DHA-Error-Code")).toBe("OVERLOADED");
    expect(response.headers.get("Retry-After")).toBe("2");
    expect(executeIds(cluster)).toHaveLength(1);
  });

  it("treats a malformed node answer as a failed call", async () => {
    const { cluster, request } = harness(new FakeCluster(["n1", "n2"], "n1"));
    cluster.on("n1", "execute", () => ({ nonsense: true }) as never);
    cluster.on("n2", "execute", () => ({ nonsense: true }) as never);
    const response = await request("POST", "/db/execute?timeout=100ms", write);
    expect(response.status).toBe(504);
    expect(((await response.json()) as { error: string }).error).toMatch(/malformed answer/);
  });
});

describe("read routing", () => {
  it("sends weak and strong reads to the leader, none and linearizable to the preferred node", async () => {
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], "n2"));
    for (const level of ["weak", "strong", "none", "linearizable", "auto"]) {
      const response = await request("GET", `/db/query?q=SELECT%201&level=${level}`);
      expect(response.status, level).toBe(200);
    }
    const served = cluster
      .callsTo("query")
      .filter((call) => (call.request as QueryRequest).level !== undefined)
      .map((call) => `${(call.request as QueryRequest).level}@${call.node}`);
    expect(served).toEqual(["weak@n1", "weak@n2", "strong@n2", "none@n1", "linearizable@n1", "weak@n2"]);
  });

  it("moves a read to the next node when one never answers", async () => {
    const { cluster, request } = harness(new FakeCluster(), { policy: { attemptTimeoutMs: 40 } });
    cluster.hang("n1");
    const response = await request("GET", "/db/query?q=SELECT%201&level=none");
    expect(response.status).toBe(200);
    expect(response.headers.get("X-DHA-Node")).toBe("n2");
  });

  it("reads your writes: the write's raft index bounds the read, a stale node hands over to the leader", async () => {
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], "n3"));
    const written = await request("POST", "/db/execute", write);
    const index = written.headers.get("X-DHA-Raft-Index") ?? "";
    expect(index).toBe("11");
    cluster.applied.set("n1", 10);
    const read = await request("GET", "/db/query?q=SELECT%201", { headers: { "X-DHA-Raft-Index": index } });
    expect(read.status).toBe(200);
    expect(read.headers.get("X-DHA-Node")).toBe("n3");
    const sent = cluster
      .callsTo("query")
      .map((call) => [call.node, (call.request as QueryRequest).level, (call.request as QueryRequest).minAppliedIndex]);
    expect(sent).toEqual([
      ["n1", "none", 11],
      ["n3", "none", 11],
    ]);
    const byParam = await request("GET", "/db/query?q=SELECT%201&min_raft_index=5");
    expect(byParam.status).toBe(200);
    const bad = await request("GET", "/db/query?q=SELECT%201", { headers: { "X-DHA-Raft-Index": "eleven" } });
    expect(bad.status).toBe(400);
  });

  it("reads its own writes at level none within one isolate: a follower behind waits briefly, then the leader serves", async () => {
    let nowMs = 1_000_000;
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], "n3"), { now: () => nowMs });
    const written = await request("POST", "/db/execute", write);
    expect(written.headers.get("X-DHA-Raft-Index")).toBe("11");
    cluster.applied.set("n1", 10);
    const read = await request("GET", "/db/query?q=SELECT%201&level=none");
    expect(read.status).toBe(200);
    expect(read.headers.get("X-DHA-Node")).toBe("n3");
    const floors = () =>
      cluster.callsTo("query").map((call) => {
        const query = call.request as QueryRequest;
        return [call.node, query.minAppliedIndex, query.minAppliedWaitMs];
      });
    // Two heartbeat intervals (the fake cluster's is 100 ms) at most, then STALE: the read moves to the leader.
    const waitMs = 200;
    expect(floors()).toEqual([
      ["n1", 11, waitMs],
      ["n3", 11, waitMs],
    ]);
    // Past one election timeout (1 s) after the last write, level none serves what a node has, as documented.
    nowMs += 1_001;
    const late = await request("GET", "/db/query?q=SELECT%201&level=none");
    expect(late.status).toBe(200);
    expect(late.headers.get("X-DHA-Node")).toBe("n1");
    expect(floors().at(-1)).toEqual(["n1", undefined, undefined]);
    // The client's own floor wins, with the usual wait; leader-served levels carry none.
    await request("POST", "/db/execute", write);
    await request("GET", "/db/query?q=SELECT%201&level=none&min_raft_index=5");
    expect(floors().at(-1)).toEqual(["n1", 5, undefined]);
    await request("GET", "/db/query?q=SELECT%201&level=weak");
    expect(floors().at(-1)).toEqual(["n3", undefined, undefined]);
  });

  it("asks a node that answered STALE to its recent-writes floor last, for one election timeout", async () => {
    let nowMs = 1_000_000;
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], "n3"), { now: () => nowMs });
    await request("POST", "/db/execute", write);
    cluster.applied.set("n1", 10);
    cluster.applied.set("n2", 10);
    const servedBy = async () => {
      const read = await request("GET", "/db/query?q=SELECT%201&level=none");
      expect(read.status).toBe(200);
      return read.headers.get("X-DHA-Node");
    };
    const askedDuring = async (action: () => Promise<unknown>) => {
      const from = cluster.callsTo("query").length;
      await action();
      return cluster
        .callsTo("query")
        .slice(from)
        .map((call) => call.node);
    };
    expect(await askedDuring(async () => expect(await servedBy()).toBe("n3"))).toEqual(["n1", "n3"]);
    // n1 answered STALE: the next reads go elsewhere first; n2 then answers STALE too, and both wait their turn.
    expect(await askedDuring(async () => expect(await servedBy()).toBe("n3"))).toEqual(["n2", "n3"]);
    expect(await askedDuring(async () => expect(await servedBy()).toBe("n3"))).toEqual(["n3"]);
    // A read whose deadline did not give a node the floor's whole wait marks nothing: n1 may not be behind.
    nowMs += 1_001;
    await request("POST", "/db/execute", write);
    const shortRead = async () => {
      const read = await request("GET", "/db/query?q=SELECT%201&level=none&timeout=150ms");
      expect(read.headers.get("X-DHA-Node")).toBe("n3");
    };
    expect(await askedDuring(shortRead)).toEqual(["n1", "n3"]);
    expect(await askedDuring(async () => expect(await servedBy()).toBe("n3"))).toEqual(["n1", "n3"]);
    // The client's own floor is not this isolate's: its read keeps the usual order.
    const ownFloor = () => request("GET", "/db/query?q=SELECT%201&level=none&min_raft_index=5");
    expect(await askedDuring(ownFloor)).toEqual(["n1"]);
    // One election timeout after a node's STALE, it is asked in turn again (the floor of a new write included).
    nowMs += 1_001;
    cluster.applied.set("n1", 100);
    await request("POST", "/db/execute", write);
    expect(await askedDuring(async () => expect(await servedBy()).toBe("n1"))).toEqual(["n1"]);
  });

  it("a log that starts again under the same name ends the level-none floor within one election timeout", async () => {
    let nowMs = 1_000_000;
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], "n3"), { now: () => nowMs });
    cluster.raftIndex = 500;
    expect((await request("POST", "/db/execute", write)).headers.get("X-DHA-Raft-Index")).toBe("501");
    // Every node comes back empty (README "Lost storage"): the cluster's log starts again.
    cluster.raftIndex = 3;
    cluster.applied.clear();
    for (let i = 0; i < 5; i++) {
      nowMs += 500; // writes keep coming, each within one election timeout of the last
      expect((await request("POST", "/db/execute", write)).status).toBe(200);
      const read = await request("GET", "/db/query?q=SELECT%201&level=none");
      // Within one election timeout of the write at 501 its floor may hold (the read is refused); never past it.
      if (i >= 2) {
        expect(read.status).toBe(200);
      }
    }
  });

  it("prefers nodes on the caller's continent", async () => {
    const cluster = new FakeCluster();
    const { request } = harness(cluster, {}, { CLUSTER_NODES: "n1@wnam,n2@weur,n3@apac" });
    const response = await request("GET", "/db/query?q=SELECT%201&level=none", { cf: { continent: "EU" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("X-DHA-Node")).toBe("n2");
  });
});
