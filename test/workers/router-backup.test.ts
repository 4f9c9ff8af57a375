// Finding 2 (issue 9), the router's side: a backup comes from the leader only, and answering a backup does not make
// a node the cached leader. Fake nodes play an older node that dumps whatever it has applied, whatever its role.
import { describe, expect, it } from "vitest";
import type { RouterBugs } from "../../src/worker/routing/router-bugs";
import { FakeCluster, harness } from "./http-support";

const STALE_DUMP = "-- n1's dump, 3 writes behind\n";

/** Returns what went wrong (nothing when the router behaves). */
async function backupFromLaggingFollower(bugs: RouterBugs): Promise<string[]> {
  // n2 leads; with random 0 and an empty leader cache, n1 (a lagging follower) is asked first.
  const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], "n2"), { routerBugs: bugs });
  cluster.on("n1", "backup", () => ({ ok: true, node: "n1", value: { sql: STALE_DUMP, raftIndex: 7 } }));
  const problems: string[] = [];
  const backup = await request("GET", "/db/backup?fmt=sql");
  const body = await backup.text();
  if (backup.status !== 200) {
    problems.push(`backup answered ${backup.status}: ${body}`);
  }
  if (backup.headers.get("X-DHA-Node") !== "n2") {
    problems.push(`backup served by ${backup.headers.get("X-DHA-Node")}, not the leader n2`);
  }
  if (body === STALE_DUMP) {
    problems.push("the dump is the follower's, missing acknowledged writes");
  }
  const write = await request("POST", "/db/execute", { json: ["INSERT INTO foo(name) VALUES('fiona')"] });
  if (write.status !== 200) {
    problems.push(`the write after the backup answered ${write.status}`);
  }
  const firstTried = cluster.callsTo("execute")[0]?.node;
  if (firstTried !== "n2") {
    problems.push(
      `the write went first to ${firstTried}: the router took the node that answered the backup for the leader`,
    );
  }
  return problems;
}

describe("finding 2: backups are served by the leader only", () => {
  it("takes no backup from a follower that would answer one, and learns no leader from a backup", async () => {
    expect(await backupFromLaggingFollower({})).toEqual([]);
  });

  it("catches the defect when backupFromAnyNode puts it back", async () => {
    const problems = await backupFromLaggingFollower({ backupFromAnyNode: true });
    expect(problems).toContain("the dump is the follower's, missing acknowledged writes");
    expect(problems.some((problem) => problem.startsWith("the write went first to n1"))).toBe(true);
  });

  it("follows a follower's NOT_LEADER refusal of a backup to the leader", async () => {
    // The nodes' own check: a follower refuses backups naming the leader (the fake's default behaviour).
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], "n3"));
    cluster.on("n1", "status", (_request, node) => ({
      ok: true,
      node: "n1",
      value: { ...node.report(), role: "leader" },
    }));
    const backup = await request("GET", "/db/backup?fmt=sql");
    expect(backup.status).toBe(200);
    expect(backup.headers.get("X-DHA-Node")).toBe("n3");
    expect(cluster.callsTo("backup").map((call) => call.node)).toEqual(["n1", "n3"]);
  });

  it("answers 503 NO_LEADER, not a follower's dump, when no node leads before the deadline", async () => {
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], null), {
      policy: { maxElectionWaitMs: 40 },
    });
    for (const node of ["n1", "n2", "n3"]) {
      cluster.on(node, "backup", () => ({ ok: true, node, value: { sql: STALE_DUMP, raftIndex: 7 } }));
    }
    const backup = await request("GET", "/db/backup?fmt=sql&timeout=300ms");
    expect(backup.status).toBe(503);
    expect(backup.headers.get("X-DHA-Error-Code")).toBe("NO_LEADER");
    expect(cluster.callsTo("backup")).toEqual([]);
  });
});
