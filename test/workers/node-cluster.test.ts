// ClusterNode on the real runtime: elections through real alarms, replication over real RPC, real SQLite.
import { describe, expect, it } from "vitest";
import { clusterFactory, type TestCluster, waitFor } from "./helpers/cluster";

const newCluster = clusterFactory();

async function createTable(cluster: TestCluster): Promise<number> {
  const created = await cluster.execute(["CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"]);
  expect(created.results[0]?.error).toBeUndefined();
  return created.raftIndex;
}

async function writeRows(
  cluster: TestCluster,
  options: { from: number; count: number; among?: readonly string[] },
): Promise<number> {
  let lastIndex = 0;
  for (let i = options.from; i < options.from + options.count; i++) {
    const written = await cluster.execute(
      [{ sql: "INSERT INTO kv (k, v) VALUES (?, ?)", params: [`k${i}`, `v${i}`] }],
      options.among === undefined ? {} : { among: options.among },
    );
    expect(written.results[0]?.error).toBeUndefined();
    expect(written.results[0]?.rowsAffected).toBe(1);
    lastIndex = written.raftIndex;
  }
  return lastIndex;
}

async function expectIdentical(
  cluster: TestCluster,
  options: { index: number; nodes?: readonly string[] },
): Promise<string> {
  const nodes = options.nodes ?? cluster.names;
  await cluster.waitForConvergence({ index: options.index, nodes });
  const dumps = await Promise.all(nodes.map((node) => cluster.dump(node)));
  for (const dump of dumps) {
    expect(dump).toBe(dumps[0]);
  }
  return dumps[0]!;
}

describe("ClusterNode", () => {
  for (const size of [3, 5]) {
    it(`elects exactly one leader in a ${size}-node cluster and replicates writes to every node`, async () => {
      const cluster = newCluster({ prefix: `elect${size}`, nodes: size });
      await cluster.startAll();
      const leader = await cluster.waitForLeader();
      const statuses = await cluster.statuses();
      expect(statuses.filter((s) => s.role === "leader").map((s) => s.node)).toEqual([leader]);
      await createTable(cluster);
      const index = await writeRows(cluster, { from: 0, count: 10 });
      const dump = await expectIdentical(cluster, { index });
      expect(dump).toContain('INSERT INTO "kv"');
      const rows = await cluster.queryLocal(cluster.names[size - 1]!, "SELECT count(*) FROM kv");
      expect(rows.rows).toEqual([[10]]);
    });
  }

  it("a read with a floor the node has not applied waits at most minAppliedWaitMs, then answers STALE", async () => {
    const cluster = newCluster({ prefix: "floorwait", nodes: 3 });
    await cluster.startAll();
    const leader = await cluster.waitForLeader();
    const index = await createTable(cluster);
    const query = (minAppliedWaitMs?: number) =>
      cluster.stub(leader).query({
        ...cluster.address(leader),
        statements: [{ sql: "SELECT count(*) FROM kv" }],
        level: "none",
        minAppliedIndex: index + 1_000,
        ...(minAppliedWaitMs === undefined ? {} : { minAppliedWaitMs }),
        transaction: false,
        timeoutMs: 10_000,
      });
    const started = Date.now();
    const refused = await query(50);
    expect(refused.ok ? null : refused.error.code).toBe("STALE");
    // Well under the 10 s timeout it would otherwise wait (the margin is for a loaded machine).
    expect(Date.now() - started).toBeLessThan(5_000);
    const served = await cluster.stub(leader).query({
      ...cluster.address(leader),
      statements: [{ sql: "SELECT count(*) FROM kv" }],
      level: "none",
      minAppliedIndex: index,
      minAppliedWaitMs: 50,
      transaction: false,
      timeoutMs: 10_000,
    });
    expect(served.ok).toBe(true);
  });

  it("elects a new leader when the leader is evicted mid-write; acknowledged writes survive; the old leader rejoins", async () => {
    const cluster = newCluster({ prefix: "evict-leader", nodes: 3 });
    await cluster.startAll();
    await createTable(cluster);
    const oldLeader = await cluster.waitForLeader();
    await writeRows(cluster, { from: 0, count: 5 });
    await cluster.evict(oldLeader);
    const index = await writeRows(cluster, { from: 5, count: 5 });
    const newLeader = await cluster.waitForLeader();
    await expectIdentical(cluster, { index });
    const count = await cluster.queryLocal(oldLeader, "SELECT count(*) FROM kv");
    expect(count.rows).toEqual([[10]]);
    const oldStatus = await cluster.status(oldLeader);
    expect(oldStatus.role === "follower" || newLeader === oldLeader).toBe(true);
  });

  it("a follower evicted while writes continue catches up", async () => {
    const cluster = newCluster({ prefix: "evict-follower", nodes: 3 });
    await cluster.startAll();
    await createTable(cluster);
    const leader = await cluster.waitForLeader();
    const follower = cluster.names.find((n) => n !== leader)!;
    await cluster.evict(follower);
    const index = await writeRows(cluster, { from: 0, count: 10 });
    await expectIdentical(cluster, { index });
  });

  it("a follower whose storage was wiped catches up through a snapshot", async () => {
    const cluster = newCluster({ prefix: "wipe", nodes: 3, snapshotThresholdEntries: 5 });
    await cluster.startAll();
    await createTable(cluster);
    const leader = await cluster.waitForLeader();
    const follower = cluster.names.find((n) => n !== leader)!;
    await writeRows(cluster, { from: 0, count: 12 });
    await cluster.wipe(follower);
    const index = await writeRows(cluster, { from: 12, count: 3 });
    await cluster.stub(follower).start(cluster.address(follower));
    const leaderStatus = await cluster.status(leader);
    expect(leaderStatus.firstLogIndex).toBeGreaterThan(1);
    await expectIdentical(cluster, { index });
    // It holds no log before the leader's snapshot: it can only have caught up by installing one.
    const wiped = await cluster.status(follower);
    expect(wiped.firstLogIndex).toBeGreaterThan(1);
  });

  it("a leader refuses a transfer to a voter on voting probation up front, and transfers once it is off", async () => {
    const cluster = newCluster({ prefix: "probation-transfer", nodes: 3 });
    await cluster.startAll();
    await createTable(cluster);
    const leader = await cluster.waitForLeader();
    const [wiped, other] = cluster.names.filter((n) => n !== leader) as [string, string];
    await writeRows(cluster, { from: 0, count: 3 });
    // The wiped node hears the leader but not the other follower: its census cannot conclude, so it stays on
    // probation while it answers the leader (and reports that it is on it).
    await cluster.wipe(wiped);
    await cluster.setFaultsEverywhere({ partitions: [{ from: wiped, to: other, bothWays: true }] });
    await cluster.stub(wiped).start(cluster.address(wiped));
    // Asked of whoever leads now: on a busy machine a starved heartbeat may move leadership between the two others.
    const transfer = async (timeoutMs: number) => {
      const current = await cluster.waitForLeader({ among: [leader, other], timeoutMs: 5_000 });
      return cluster.stub(current).transferLeadership({ ...cluster.address(current), to: wiped, timeoutMs });
    };
    const refused = await waitFor(
      `the leader to refuse a transfer to ${wiped} on probation`,
      async () => {
        const answer = await transfer(300);
        return !answer.ok && answer.error.code === "CONFIG_CHANGE_IN_PROGRESS" ? answer : undefined;
      },
      { timeoutMs: 15_000 },
    );
    expect(refused.ok ? "" : refused.error.message).toMatch(new RegExp(`${wiped} is on voting probation`));
    // Healed, its census concludes and the leader catches it up: then leadership can go to it.
    await cluster.heal();
    const moved = await waitFor(
      `leadership to move to ${wiped} once its probation ended`,
      async () => {
        const answer = await transfer(2_000);
        return answer.ok ? answer.value : undefined;
      },
      { timeoutMs: 20_000 },
    );
    expect(moved.leader).toBe(wiped);
  });

  it("a wiped follower catches up through a snapshot taken in an earlier term than the leader's", async () => {
    // One compaction in the first term (after 20 entries), none in the second (it ends below 40 entries).
    const cluster = newCluster({ prefix: "wipe-term", nodes: 3, snapshotThresholdEntries: 20 });
    await cluster.startAll();
    await createTable(cluster);
    await writeRows(cluster, { from: 0, count: 24 });
    const firstLeader = await cluster.waitForLeader();
    const firstTerm = (await cluster.status(firstLeader)).term;
    const moved = await cluster
      .stub(firstLeader)
      .transferLeadership({ ...cluster.address(firstLeader), timeoutMs: 5_000 });
    expect(moved.ok).toBe(true);
    const leader = await cluster.waitForLeader({ notLeader: firstLeader });
    expect((await cluster.status(leader)).term).toBeGreaterThan(firstTerm);
    const follower = cluster.names.find((n) => n !== leader)!;
    await cluster.wipe(follower);
    // Fewer writes than the compaction threshold: the leader's latest snapshot stays one of the earlier term.
    const index = await writeRows(cluster, { from: 24, count: 2 });
    expect(index).toBeLessThan(40);
    expect((await cluster.status(leader)).firstLogIndex).toBeGreaterThan(20);
    await cluster.stub(follower).start(cluster.address(follower));
    await expectIdentical(cluster, { index });
    expect((await cluster.status(follower)).firstLogIndex).toBeGreaterThan(1);
  });

  it("an isolated leader commits nothing; the majority elects a new one; after healing one history remains", async () => {
    const cluster = newCluster({ prefix: "isolate", nodes: 3 });
    await cluster.startAll();
    await createTable(cluster);
    const oldLeader = await cluster.waitForLeader();
    await cluster.isolate(oldLeader);
    const majority = cluster.names.filter((n) => n !== oldLeader);
    // The isolated leader cannot commit: its write times out.
    const stranded = await cluster.stub(oldLeader).execute({
      ...cluster.address(oldLeader),
      request: { id: "stranded", transaction: false, statements: [{ sql: "INSERT INTO kv VALUES ('stranded', 'x')" }] },
      timeoutMs: 500,
    });
    expect(stranded.ok).toBe(false);
    const newLeader = await cluster.waitForLeader({ among: majority, notLeader: oldLeader });
    expect(newLeader).not.toBe(oldLeader);
    await writeRows(cluster, { from: 0, count: 3, among: majority });
    await cluster.heal();
    const index = await writeRows(cluster, { from: 3, count: 1 });
    const dump = await expectIdentical(cluster, { index });
    expect(dump).not.toContain("stranded");
  });

  it("a learner joins, catches up log and schema, and only then becomes a voter", async () => {
    const cluster = newCluster({ prefix: "learner", nodes: 3 });
    await cluster.startAll();
    await createTable(cluster);
    await writeRows(cluster, { from: 0, count: 5 });
    const leader = await cluster.waitForLeader();
    const added = await cluster
      .stub(leader)
      .addMember({ ...cluster.address(leader), member: { name: "n4" }, timeoutMs: 5_000 });
    expect(added.ok).toBe(true);
    if (added.ok) {
      expect(added.value.learners).toContain("n4");
    }
    const final = await waitFor("n4 to be promoted", async () => {
      const status = await cluster.status(leader);
      return status.voters.includes("n4") ? status : undefined;
    });
    expect(final.learners).not.toContain("n4");
    const n4 = await cluster.status("n4");
    expect(n4.schemaHash).toBe(final.schemaHash);
    const count = await cluster.queryLocal("n4", "SELECT count(*) FROM kv");
    expect(count.rows).toEqual([[5]]);
  });

  it("refused statements leave no log entry; a failed transaction leaves no trace; random() and 'now' agree everywhere", async () => {
    const cluster = newCluster({ prefix: "sm", nodes: 3 });
    await cluster.startAll();
    await createTable(cluster);
    const leader = await cluster.waitForLeader();
    const before = await cluster.status(leader);
    const refused = await cluster.stub(leader).execute({
      ...cluster.address(leader),
      request: { id: "refused", transaction: false, statements: [{ sql: "ATTACH DATABASE 'x' AS y" }] },
      timeoutMs: 2_000,
    });
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(refused.error.code).toBe("INVALID_REQUEST");
    }
    const after = await cluster.status(leader);
    expect(after.lastLogIndex).toBe(before.lastLogIndex);

    const failedTx = await cluster.execute(
      ["INSERT INTO kv VALUES ('tx1', 'a')", "INSERT INTO kv VALUES ('tx1', 'duplicate key')"],
      { transaction: true },
    );
    expect(failedTx.results.some((r) => r.error !== undefined)).toBe(true);
    const nondeterministic = await cluster.execute([
      "CREATE TABLE nd (r INTEGER, t TEXT, b BLOB)",
      "INSERT INTO nd VALUES (random(), datetime('now'), randomblob(8))",
      "INSERT INTO nd VALUES (abs(random()), CURRENT_TIMESTAMP, NULL)",
    ]);
    const dump = await expectIdentical(cluster, { index: nondeterministic.raftIndex });
    expect(dump).not.toContain("tx1");
    expect(dump).toContain('INSERT INTO "nd"');
  });
});
