// Finding 3 (issue 9), the router's side: every write that may have been applied is answered as outcome unknown
// (504 with the request id to resend), never as a definite failure, and every node it is sent to gets the same
// request id. Fake nodes apply the write and then answer as a stopped runtime, a failed Ready or a step-down would.
import { describe, expect, it } from "vitest";
import type { ExecuteRequest, NodeErrorCode } from "../../src/objects/api";
import type { RouterBugs } from "../../src/worker/routing/router-bugs";
import { FakeCluster, harness, nodeError } from "./http-support";

const write = { json: ["INSERT INTO foo(name) VALUES('fiona')"] };

interface Scenario {
  readonly name: string;
  /** What n1 (the leader) does with the write: it applies it, then answers with a failure. */
  readonly answer: (cluster: FakeCluster, request: ExecuteRequest, calls: number) => Promise<unknown>;
  /** 200: a resend under the same id must find the applied write; 504: no node can confirm it before the deadline. */
  readonly expectStatus: 200 | 504;
}

/** Applies the write as the leader would, without going through the fake's overrides again. */
function applyDirectly(cluster: FakeCluster, request: ExecuteRequest): void {
  if (!cluster.applied_requests.has(request.request.id)) {
    cluster.applied_requests.set(request.request.id, {
      results: [{ lastInsertId: 1, rowsAffected: 1 }],
      raftIndex: ++cluster.raftIndex,
    });
  }
}

const appliedThen =
  (code: string, message: string, extra: { leader?: string | null; elect?: string | null } = {}) =>
  async (cluster: FakeCluster, request: ExecuteRequest, calls: number): Promise<unknown> => {
    if (calls > 1) {
      return undefined;
    }
    applyDirectly(cluster, request);
    if (extra.elect !== undefined) {
      cluster.elect(extra.elect);
    }
    return nodeError("n1", code as NodeErrorCode, message, extra.leader === undefined ? {} : { leader: extra.leader });
  };

const SCENARIOS: readonly Scenario[] = [
  {
    name: "a runtime stopped with the write pending answers NOT_MEMBER, and no leader follows",
    answer: appliedThen("NOT_MEMBER", "the node's runtime stopped", { elect: null }),
    expectStatus: 504,
  },
  {
    name: "a Ready that failed after persisting answers INTERNAL",
    answer: appliedThen("INTERNAL", "Ready failed after persisting: storage error"),
    expectStatus: 200,
  },
  {
    name: "a leader that stepped down answers outcome unknown and names the new leader",
    answer: appliedThen("OUTCOME_UNKNOWN", "leadership changed before the write was confirmed", {
      elect: "n2",
      leader: "n2",
    }),
    expectStatus: 200,
  },
  {
    name: "the node answers INTERNAL until the deadline",
    answer: async (cluster, request) => {
      applyDirectly(cluster, request);
      return nodeError("n1", "INTERNAL", "the state machine keeps failing");
    },
    expectStatus: 504,
  },
];

/** Returns what went wrong (nothing when the router behaves). */
async function possiblyAppliedWrite(scenario: Scenario, bugs: RouterBugs): Promise<string[]> {
  const { cluster, request } = harness(new FakeCluster(), { routerBugs: bugs, policy: { maxElectionWaitMs: 40 } });
  let calls = 0;
  cluster.on("n1", "execute", (req: ExecuteRequest) => scenario.answer(cluster, req, ++calls) as never);
  const response = await request("POST", "/db/execute?timeout=400ms", {
    ...write,
    headers: { "Idempotency-Key": "order-42" },
  });
  const problems: string[] = [];
  const text = await response.text();
  if (response.status !== scenario.expectStatus) {
    problems.push(`answered ${response.status} ${response.headers.get("X-DHA-Error-Code")}: ${text}`);
  }
  const code = response.headers.get("X-DHA-Error-Code");
  if (response.status !== 200 && !(response.status === 504 && code === "OUTCOME_UNKNOWN")) {
    problems.push(`a write that was applied failed with ${response.status} ${code}, not 504 OUTCOME_UNKNOWN`);
  }
  if (response.headers.get("X-DHA-Request-Id") !== "order-42") {
    problems.push("the answer does not carry the request id to resend");
  }
  const ids = new Set(cluster.callsTo("execute").map((call) => (call.request as ExecuteRequest).request.id));
  if (ids.size !== 1) {
    problems.push(`the write was sent under ${ids.size} request ids`);
  }
  if (cluster.applied_requests.size !== 1) {
    problems.push(`applied ${cluster.applied_requests.size} times`);
  }
  return problems;
}

describe("finding 3: a write that may have been applied is answered as outcome unknown", () => {
  for (const scenario of SCENARIOS) {
    it(`${scenario.name}: resent under the same id, never a definite failure`, async () => {
      expect(await possiblyAppliedWrite(scenario, {})).toEqual([]);
    });
  }

  it("catches the defect in every scenario when definiteWriteFailures puts it back", async () => {
    for (const scenario of SCENARIOS) {
      const problems = await possiblyAppliedWrite(scenario, { definiteWriteFailures: true });
      expect(
        problems.some((problem) => problem.includes("not 504 OUTCOME_UNKNOWN")),
        `${scenario.name}: ${problems.join("; ")}`,
      ).toBe(true);
    }
  });

  it("still answers a write refused before proposing as a definite failure", async () => {
    const { cluster, request } = harness(new FakeCluster());
    cluster.on("n1", "execute", () =>
      nodeError("n1", "INVALID_REQUEST", 'near "SELEC": syntax error', { retryable: false }),
    );
    const response = await request("POST", "/db/execute", write);
    expect(response.status).toBe(400);
    expect(response.headers.get("X-DHA-Error-Code")).toBe("INVALID_REQUEST");
  });

  it("keeps a write's outcome unknown when a later attempt is refused for overload", async () => {
    const { cluster, request } = harness(new FakeCluster());
    let calls = 0;
    cluster.on("n1", "execute", async (req: ExecuteRequest) => {
      if (++calls === 1) {
        applyDirectly(cluster, req);
        return nodeError("n1", "TIMEOUT", "commit not confirmed in time");
      }
      throw Object.assign(new Error("n1 is overloaded"), { overloaded: true, retryable: true });
    });
    const response = await request("POST", "/db/execute", write);
    expect(response.status).toBe(504);
    expect(response.headers.get("X-DHA-Error-Code")).toBe("OUTCOME_UNKNOWN");
  });
});
