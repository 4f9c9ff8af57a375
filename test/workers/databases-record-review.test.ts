// Findings of an adversarial review of the catalog's record of the nodes added at run time to a named database
// (catalog.ts recordNode, lifecycle.ts dropNodes), each a test that failed on the code as reviewed.
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION, SYSTEM_DATABASE, type MembershipValue, type NodeResult } from "../../src/objects/api";
import { DeploymentHarness } from "./helpers/databases";
import {
  clusterConfigOf,
  failingCalls,
  haltN4After,
  membersOf,
  removeN4,
  WIPED,
  withN4HoldingARow,
} from "./helpers/database-nodes";
import { Deployment } from "../../src/worker/databases/deployment";
import { clusterRuntimeFactory } from "../../src/worker/runtime";
import { executeStatements } from "../../src/worker/data/service";
import { MAX_ADDED_NODES, type DatabaseEntry } from "../../src/worker/databases/schemas";

const T = "timeout=30s";
const SLOW_MS = 180_000;

describe("databases: review of the record of nodes added at run time", { timeout: SLOW_MS }, () => {
  // A removal records the node first (one added by an earlier version has no record yet); when the record is full
  // the removal is refused with 409 MEMBER_LIMIT, which is right (removed unrecorded, the node would keep its copy
  // out of any drop's reach), but the answer told the operator to "add one of those names again (a removed node may
  // be added back), or move to a new database": advice for an addition, which does nothing for this removal.
  it("a removal refused by the full record says why it is refused, not how to add", async () => {
    const h = new DeploymentHarness("db-rr-full-removal", { nodes: 1 });
    await h.create("capped", { nodes: 1 });
    const config = await clusterConfigOf(h, "capped");
    haltN4After(h, config);
    // n4 joins as a worker of an earlier version added it: straight to the leader, with no record.
    const added = (await h.stub(config.name, "n1").addMember({
      protocolVersion: PROTOCOL_VERSION,
      cluster: config,
      node: "n1",
      member: { name: "n4" },
      timeoutMs: 10_000,
    })) as NodeResult<MembershipValue>;
    expect(added.ok, JSON.stringify(added)).toBe(true);
    const deployment = new Deployment(h.env, clusterRuntimeFactory({}));
    for (let i = 0; i < MAX_ADDED_NODES; i += 8) {
      const batch = Array.from({ length: 8 }, (_, j) => `r${i + j}`);
      const answers = await Promise.all(
        batch.map((node) =>
          deployment.catalog.recordNode({
            name: "capped",
            generation: 1,
            node,
            atMs: Date.now(),
            deadlineAt: Date.now() + 30_000,
          }),
        ),
      );
      expect(answers).toEqual(batch.map(() => null));
    }

    const refused = await h.untilDone("DELETE", `/databases/capped/api/v1/cluster/members/n4?${T}`);
    expect(refused.status, refused.text).toBe(409);
    expect(refused.headers.get("X-DHA-Error-Code")).toBe("MEMBER_LIMIT");
    expect(refused.text).toContain("n4");
    expect(refused.text).toMatch(/cannot be removed/);
    expect(refused.text).not.toContain("add one of those names again");
    expect(await membersOf(h, config, "n1")).toEqual(["n1", "n4"]);
  });

  // An addition records its node in the catalog before it is sent. When the catalog did not confirm the record in
  // time, the addition answered 504 OUTCOME_UNKNOWN, "the write may or may not have been applied: resend it with the
  // same request id (X-DHA-Request-Id as Idempotency-Key)": the catalog's own request id, and the spec's 504 of an
  // admin route says "the change may still complete". The addition was never sent: nothing changed, a 503 to retry.
  it("an addition whose record the catalog did not confirm answers 503, nothing changed", async () => {
    const catalog = { down: false };
    const directory = failingCalls(
      ({ config, method }) => catalog.down && method === "execute" && config.name.includes(`:${SYSTEM_DATABASE}:`),
    );
    const h = new DeploymentHarness("db-rr-catalog-down", { nodes: 1, app: { directory } });
    await h.create("orphan", { nodes: 1 });
    const config = await clusterConfigOf(h, "orphan");
    haltN4After(h, config);
    catalog.down = true;
    const refused = await h.send("POST", `/databases/orphan/api/v1/cluster/members?timeout=2s`, {
      json: { name: "n4" },
    });
    catalog.down = false;
    expect(refused.status, refused.text).toBe(503);
    expect(refused.text).toContain("the addition was not sent");
    expect(refused.text).not.toContain("Idempotency-Key");
    expect(refused.headers.get("Retry-After")).not.toBeNull();
    expect(await membersOf(h, config, "n1")).toEqual(["n1"]);
  });

  // README Known limitations: a drop served by an isolate of an earlier version (a rolling deploy) does not read the
  // record, so a member removed before it keeps its copy; that drop commits DROPPED and leaves the record in place.
  // A DELETE repeated once every isolate runs this version answered DROPPED at once, without reading the record:
  // the copy stayed for good although the catalog still named the node.
  it("a repeated DELETE wipes the recorded nodes a drop of an earlier version left", async () => {
    const h = new DeploymentHarness("db-rr-old-drop");
    await h.create("legacy");
    const config = await withN4HoldingARow(h, "legacy");
    await removeN4(h, config, "legacy");
    expect((await h.storageOf(config.name, "n4")).tables).toContain("secrets");

    // The drop as a worker of an earlier version made it: every member closed and wiped, then DROPPED committed;
    // the record neither read nor forgotten.
    for (const phase of ["close", "wipe"] as const) {
      for (const node of h.nodes) {
        const answer = await h.stub(config.name, node).drop({
          protocolVersion: PROTOCOL_VERSION,
          cluster: config,
          node,
          phase,
          timeoutMs: 0,
          reason: "dropped by a worker of an earlier version",
        });
        expect(answer.ok, JSON.stringify(answer)).toBe(true);
      }
    }
    const deployment = new Deployment(h.env, clusterRuntimeFactory({}));
    const committed = await executeStatements(deployment.system, {
      statements: [
        {
          sql: "UPDATE databases SET state = 'DROPPED', reason = '3 nodes wiped' WHERE name = ? AND generation = ?",
          params: ["legacy", 1],
        },
      ],
      transaction: true,
      requestId: "review-old-drop",
      deadlineAt: Date.now() + 30_000,
    });
    expect(committed.ok, JSON.stringify(committed)).toBe(true);

    const dropped = await h.untilDone("DELETE", `/api/v1/databases/legacy?${T}`);
    expect(dropped.status, dropped.text).toBe(200);
    expect(dropped.json().state).toBe("DROPPED");
    for (const node of [...h.nodes, "n4"]) {
      expect(await h.storageOf(config.name, node), node).toEqual(WIPED);
    }
    const entry = dropped.json() as DatabaseEntry;
    expect(entry.generation).toBe(1);
    expect(await deployment.catalog.recordedNodes(entry, Date.now() + 30_000)).toEqual([]);
  });
});
