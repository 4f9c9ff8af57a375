// Finding 10 (issue 9): retries are bounded by the deadline (with backoff), not by a count of calls; giving up
// never names a leader while saying there is none; a read that any node may serve moves on from a node that cannot
// confirm it (cut off from the majority) within a share of the deadline and a few election timeouts.
import { describe, expect, it } from "vitest";
import type { QueryRequest, WaitForLeaderRequest } from "../../src/objects/api";
import type { RouterBugs } from "../../src/worker/routing/router-bugs";
import { FakeCluster, harness, nodeError } from "./http-support";

const write = { json: ["INSERT INTO foo(name) VALUES('fiona')"] };
const RING: Readonly<Record<string, string>> = { n1: "n2", n2: "n3", n3: "n1" };

/** Every node points to the next as leader (leadership moving every call) while `moving()` holds. */
function chaseLeadership(cluster: FakeCluster, moving: () => boolean): void {
  for (const node of ["n1", "n2", "n3"]) {
    const hint = RING[node] as string;
    cluster.on(node, "execute", () =>
      moving()
        ? nodeError(node, "NOT_LEADER", `${node} is not the leader; ${hint} leads`, { leader: hint })
        : undefined,
    );
  }
}

/** Leadership moves for 400 ms of a 5 s deadline, then settles on n3. */
async function writeWhileLeadershipMoves(bugs: RouterBugs): Promise<string[]> {
  const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], "n3"), {
    routerBugs: bugs,
    policy: { baseBackoffMs: 10, maxBackoffMs: 80 },
  });
  const settlesAt = Date.now() + 400;
  chaseLeadership(cluster, () => Date.now() < settlesAt);
  const response = await request("POST", "/db/execute?timeout=5s", write);
  const problems: string[] = [];
  if (response.status !== 200) {
    problems.push(
      `answered ${response.status} ${response.headers.get("X-DHA-Error-Code")} with time left: ${await response.text()}`,
    );
  }
  return problems;
}

/** Leadership moves until the deadline: the answer must say so, not that there is no leader. */
async function giveUpWhileLeadershipMoves(bugs: RouterBugs): Promise<string[]> {
  const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], "n3"), { routerBugs: bugs });
  chaseLeadership(cluster, () => true);
  const started = Date.now();
  const response = await request("POST", "/db/execute?timeout=300ms", write);
  const elapsedMs = Date.now() - started;
  const code = response.headers.get("X-DHA-Error-Code");
  const error = ((await response.json()) as { error: string }).error;
  const problems: string[] = [];
  if (response.status !== 503) {
    problems.push(`answered ${response.status}`);
  }
  if (elapsedMs < 290) {
    problems.push(`gave up after ${elapsedMs} ms of a 300 ms deadline`);
  }
  if (code !== "LEADER_CHANGING") {
    problems.push(`code ${code}, not LEADER_CHANGING`);
  }
  if ((code === "NO_LEADER" || /no leader/i.test(error)) && /n\d leads/.test(error)) {
    problems.push(`the answer says there is no leader and names one: ${error}`);
  }
  return problems;
}

/**
 * n1 is cut off from the majority: it cannot confirm a linearizable read (it answers TIMEOUT when its time is up,
 * or NO_LEADER once it lost the leader) and never sees an election finish. n2 and n3 serve.
 */
async function readFromCutOffNode(bugs: RouterBugs, answer: "TIMEOUT" | "NO_LEADER"): Promise<string[]> {
  const cluster = new FakeCluster(["n1", "n2", "n3"], "n2");
  const { request } = harness(
    cluster,
    { routerBugs: bugs },
    { HEARTBEAT_INTERVAL_MS: "20", ELECTION_TIMEOUT_MS: "200" },
  );
  // As a node does: it answers when the time the router gave it is up.
  const waitOut = (timeoutMs: number, code: "TIMEOUT" | "NO_LEADER", message: string) =>
    new Promise((resolve) => setTimeout(() => resolve(nodeError("n1", code, message)), timeoutMs));
  cluster.on("n1", "query", (req: QueryRequest) =>
    answer === "TIMEOUT"
      ? (waitOut(req.timeoutMs, "TIMEOUT", "the read index was not confirmed in time") as never)
      : nodeError("n1", "NO_LEADER", "no leader is known (no contact with a quorum)"),
  );
  cluster.on(
    "n1",
    "waitForLeader",
    (req: WaitForLeaderRequest) => waitOut(req.timeoutMs, "NO_LEADER", "no leader was elected") as never,
  );
  const started = Date.now();
  const response = await request("GET", "/db/query?q=SELECT%201&level=linearizable&timeout=2s");
  const elapsedMs = Date.now() - started;
  const problems: string[] = [];
  if (response.status !== 200) {
    problems.push(`answered ${response.status} ${response.headers.get("X-DHA-Error-Code")}`);
  } else if (response.headers.get("X-DHA-Node") === "n1") {
    problems.push("served by the cut-off node");
  }
  // Half of the 2 s deadline is 1 s; three election timeouts are 600 ms.
  if (elapsedMs > 1_000) {
    problems.push(`took ${elapsedMs} ms: more than half the deadline on the cut-off node`);
  }
  return problems;
}

describe("finding 10: retries bounded by the deadline, honest codes, reads move on", () => {
  it("keeps a write going while leadership moves, for as long as its deadline allows", async () => {
    expect(await writeWhileLeadershipMoves({})).toEqual([]);
  });

  it("says LEADER_CHANGING, not NO_LEADER naming a leader, when leadership moves until the deadline", async () => {
    expect(await giveUpWhileLeadershipMoves({})).toEqual([]);
  });

  it("moves a linearizable read off a node cut off from the majority (TIMEOUT) within a few election timeouts", async () => {
    expect(await readFromCutOffNode({}, "TIMEOUT")).toEqual([]);
  });

  it("moves a linearizable read off a node that lost the leader (NO_LEADER) without waiting there", async () => {
    expect(await readFromCutOffNode({}, "NO_LEADER")).toEqual([]);
  });

  it("catches each defect when fixedRetryBudget puts the old behaviour back", async () => {
    const bugs: RouterBugs = { fixedRetryBudget: true };
    expect((await writeWhileLeadershipMoves(bugs))[0]).toMatch(
      /^answered 503 NO_LEADER with time left: .*8 attempts failed/,
    );
    const gaveUp = await giveUpWhileLeadershipMoves(bugs);
    expect(gaveUp).toContain("code NO_LEADER, not LEADER_CHANGING");
    expect(gaveUp.some((problem) => problem.startsWith("the answer says there is no leader and names one"))).toBe(true);
    expect(await readFromCutOffNode(bugs, "TIMEOUT")).not.toEqual([]);
    expect(await readFromCutOffNode(bugs, "NO_LEADER")).not.toEqual([]);
  });
});
