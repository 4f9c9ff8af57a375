// Issue 11 (failover): when the node the router took for the leader lets go of a write (outcome unknown) or knows
// no leader, the router asks another node to wait for the election (a bounded long poll) and sends the write, under
// the same request id, to the leader it names. It must not wait for the election on the node that failed as leader:
// a leader cut off from its peers never sees the election end, and the wait there took the request's whole deadline.
import { describe, expect, it } from "vitest";
import type { ExecuteRequest, WaitForLeaderRequest } from "../../src/objects/api";
import type { RouterBugs } from "../../src/worker/routing/router-bugs";
import { FakeCluster, harness, nodeError } from "./http-support";

const write = { json: ["INSERT INTO foo(name) VALUES('fiona')"] };
/** When the fake election ends, after the leader was lost. */
const ELECTED_AFTER_MS = 300;

/**
 * n1 leads (the router learns it from a first write), then loses its peers: `how` it answers the next write. Its
 * own waitForLeader sees no election end (it answers at its deadline); the others see n3 elected after
 * ELECTED_AFTER_MS. Default backoff and election wait, as in production.
 */
async function failoverWrite(
  bugs: RouterBugs,
  how: "outcome unknown" | "no leader",
): Promise<{ problems: string[]; elapsedMs: number }> {
  const cluster = new FakeCluster(["n1", "n2", "n3"], "n1");
  const { request } = harness(cluster, {
    routerBugs: bugs,
    policy: { baseBackoffMs: 25, maxBackoffMs: 1_000 },
  });
  const problems: string[] = [];
  const first = await request("POST", "/db/execute", write);
  if (first.status !== 200) {
    problems.push(`the first write answered ${first.status}`);
  }
  cluster.elect(null);
  let letGo = how === "outcome unknown";
  cluster.on("n1", "execute", () => {
    if (letGo) {
      letGo = false;
      return nodeError("n1", "OUTCOME_UNKNOWN", "n1 heard from no majority lately; the write may still commit", {
        leader: "n1",
      });
    }
    return nodeError("n1", "NO_LEADER", "n1 heard from no majority lately: it may be cut off", { leader: null });
  });
  cluster.on(
    "n1",
    "waitForLeader",
    (req: WaitForLeaderRequest) =>
      new Promise((resolve) =>
        setTimeout(() => resolve(nodeError("n1", "NO_LEADER", "no leader was elected")), req.timeoutMs),
      ) as never,
  );
  const electionTimer = setTimeout(() => cluster.elect("n3"), ELECTED_AFTER_MS);
  const started = Date.now();
  const response = await request("POST", "/db/execute?timeout=5s", write);
  const elapsedMs = Date.now() - started;
  clearTimeout(electionTimer);
  if (response.status !== 200 || response.headers.get("X-DHA-Node") !== "n3") {
    problems.push(`answered ${response.status} by ${response.headers.get("X-DHA-Node")}: ${await response.text()}`);
  }
  // The election ends after 300 ms; a few calls and the first backoffs may follow, not a wait on n1.
  if (elapsedMs > ELECTED_AFTER_MS + 250) {
    problems.push(`took ${elapsedMs} ms for an election of ${ELECTED_AFTER_MS} ms`);
  }
  const ids = new Set(
    cluster
      .callsTo("execute")
      .slice(1)
      .map((call) => (call.request as ExecuteRequest).request.id),
  );
  if (ids.size !== 1) {
    problems.push(`the write went out under ${ids.size} request ids`);
  }
  return { problems, elapsedMs };
}

describe("issue 11: a write follows the election elsewhere when its leader is lost", () => {
  it("after an outcome-unknown answer from the cut-off leader, waits on another node and resends there", async () => {
    expect((await failoverWrite({}, "outcome unknown")).problems).toEqual([]);
  });

  it("after NO_LEADER from the node it took for the leader, waits on another node", async () => {
    expect((await failoverWrite({}, "no leader")).problems).toEqual([]);
  });

  it("catches the defect when waitsOnFailedLeader puts it back", async () => {
    const { problems, elapsedMs } = await failoverWrite({ waitsOnFailedLeader: true }, "outcome unknown");
    expect(problems.some((p) => p.startsWith("took"))).toBe(true);
    expect(elapsedMs).toBeGreaterThan(1_000);
  });
});
