// An admin call whose first answer was lost in transit (not a timeout: the router asks the next node) may have
// proposed its change: the conflicts and refusals that follow may be about the call's own change, so the router
// answers 504 "may still complete" rather than 409 "nothing was applied" or a 400 for a change it made itself.
import { describe, expect, it } from "vitest";
import { harness, nodeError } from "./http-support";

/** n1 proposes n4's addition on the first call and its answer is lost; the entry stays pending `pendingCalls` calls. */
function lostThenPending(cluster: ReturnType<typeof harness>["cluster"], pendingCalls: number): void {
  let calls = 0;
  cluster.on("n1", "addMember", () => {
    calls++;
    if (calls === 1) {
      // Proposed (a pending config entry), then the RPC broke: "Network connection lost", an object reset, ...
      throw new Error("Network connection lost.");
    }
    if (calls <= 1 + pendingCalls) {
      return nodeError("n1", "CONFIG_CHANGE_IN_PROGRESS", "the config change at index 11 is not applied yet");
    }
    if (!cluster.learners.includes("n4")) {
      cluster.learners = [...cluster.learners, "n4"];
    }
    // What the core answers to adding a member that is one (applyConfigChange refuses: INVALID_REQUEST).
    return nodeError("n1", "INVALID_REQUEST", "n4 is already a member", { retryable: false });
  });
}

describe("an admin call whose first answer was lost", () => {
  it("is not answered 409 'nothing was applied' while its own change is pending", async () => {
    const { cluster, request } = harness();
    lostThenPending(cluster, Number.POSITIVE_INFINITY);
    const response = await request("POST", "/api/v1/cluster/members?timeout=300ms", { json: { name: "n4" } });
    const text = await response.text();
    expect(text).not.toMatch(/nothing was applied/);
    expect(response.status, text).toBe(504);
  });

  it("is not answered 400 once its own change applied", async () => {
    const { cluster, request } = harness();
    lostThenPending(cluster, 2);
    const response = await request("POST", "/api/v1/cluster/members?timeout=2s", { json: { name: "n4" } });
    const text = await response.text();
    expect(response.status, text).toBe(504);
    expect(text).toMatch(/may have made the change/);
  });
});
