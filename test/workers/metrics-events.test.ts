// GET /api/v1/cluster/events over real clusters: elections, leader changes, breaker and replica transitions show up
// merged by time with term and commit index; limits, since and bad input; a node that does not answer is listed and
// the others are still served. Each test has its own cluster, halted after the test.
import { describe, expect, it } from "vitest";
import { clusterFactory, waitFor, type TestCluster } from "./helpers/cluster";
import { MetricsHarness, TOKENS } from "./helpers/metrics-harness";

const newCluster = clusterFactory();
/** Generous: on a loaded machine the nodes (which share the test's thread) may take long to agree on a leader. */
const LEADER_TIMEOUT_MS = 40_000;
const WAIT = { timeoutMs: 30_000 };

interface Feed {
  cluster: string;
  events: {
    time: string;
    timeMs: number;
    node: string;
    event: string;
    level: string;
    term: number;
    commitIndex: number | null;
    details: Record<string, unknown>;
  }[];
  nodes: { name: string; reachable: boolean; events: number; clockOffsetMs: number | null; error: string | null }[];
  maxEventsPerNode: number;
}

async function feed(h: MetricsHarness, query = ""): Promise<Feed> {
  const response = await h.send("GET", `/api/v1/cluster/events${query}`);
  expect(response.status, response.text).toBe(200);
  return JSON.parse(response.text) as Feed;
}

async function setUp(
  prefix: string,
): Promise<{ cluster: TestCluster; h: MetricsHarness; leader: string; followers: string[] }> {
  const cluster = newCluster({ prefix, nodes: 3 });
  const h = new MetricsHarness(cluster);
  await cluster.startAll();
  const leader = await cluster.waitForLeader({ timeoutMs: LEADER_TIMEOUT_MS });
  return { cluster, h, leader, followers: cluster.names.filter((name) => name !== leader) };
}

describe("GET /api/v1/cluster/events on a real cluster", () => {
  it("lists each node's start and the election, merged by time, with term and commit index", async () => {
    const { cluster, h, leader } = await setUp("events-election");
    const events = await waitFor(
      "every node's start and the leader's election in the feed",
      async () => {
        const current = await feed(h);
        const started = new Set(current.events.filter((e) => e.event === "nodeStarted").map((e) => e.node));
        const elected = current.events.some((e) => e.event === "becameLeader" && e.node === leader);
        return started.size === 3 && elected ? current : undefined;
      },
      WAIT,
    );
    expect(events.cluster).toBe(cluster.config.name);
    expect(events.nodes.map((node) => node.reachable)).toEqual([true, true, true]);
    const times = events.events.map((e) => e.timeMs);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    const elected = events.events.find((e) => e.event === "becameLeader" && e.node === leader)!;
    expect(elected.term).toBeGreaterThanOrEqual(1);
    expect(typeof elected.commitIndex).toBe("number");
    expect(new Date(elected.time).getTime()).toBe(elected.timeMs);
    expect(events.events.some((e) => e.event === "becameCandidate")).toBe(true);
    expect(events.events.some((e) => e.event === "replicaSummary" || e.event === "deliveryFailed")).toBe(false);
  });

  it("shows a leadership transfer and the new leader's election at a higher term", async () => {
    const { cluster, h, leader } = await setUp("events-transfer");
    const before = await feed(h);
    const stepped = await h.send("POST", "/api/v1/cluster/leader/stepdown");
    expect(stepped.status, stepped.text).toBe(200);
    const newLeader = await cluster.waitForLeader({ notLeader: leader, timeoutMs: LEADER_TIMEOUT_MS });
    const after = await waitFor(
      "the new leader's election in the feed",
      async () => {
        const current = await feed(h);
        return current.events.some((e) => e.event === "becameLeader" && e.node === newLeader) ? current : undefined;
      },
      WAIT,
    );
    const oldTerm = Math.max(...before.events.filter((e) => e.event === "becameLeader").map((e) => e.term));
    expect(after.events.find((e) => e.event === "becameLeader" && e.node === newLeader)!.term).toBeGreaterThan(oldTerm);
    expect(after.events.some((e) => e.event === "leadershipTransfer" && e.node === leader)).toBe(true);
  });

  it("shows the breaker to a cut-off replica opening and its status change", async () => {
    const { cluster, h } = await setUp("events-cutoff");
    // Under load leadership may have moved since setUp: cut a follower of the leader as it is now.
    const leader = await cluster.waitForLeader({ timeoutMs: LEADER_TIMEOUT_MS });
    const cut = cluster.names.find((name) => name !== leader)!;
    await cluster.setFaultsEverywhere({ partitions: [{ from: leader, to: cut, bothWays: true }] });
    const events = await waitFor(
      "the breaker and replica status events of the cut-off replica",
      async () => {
        // Every node's whole ring: the breaker's probes log a transition or two every quarter of an election timeout, which
        // would push the one status change out of the default 100 newest before a slow poll sees both.
        const current = await feed(h, "?limit=1000");
        const breaker = current.events.some(
          (e) => e.event === "circuitBreaker" && e.node === leader && e.details.peer === cut && e.details.to === "OPEN",
        );
        // From whatever it was (ONLINE, or still JOINING right after an election on a loaded machine) to not reached.
        const status = current.events.some(
          (e) =>
            e.event === "replicaStatus" &&
            e.node === leader &&
            e.details.peer === cut &&
            (e.details.to === "RECONNECTING" || e.details.to === "OFFLINE"),
        );
        return breaker && status ? current : undefined;
      },
      WAIT,
    );
    expect(events.events.filter((e) => e.event === "circuitBreaker").every((e) => e.term >= 1)).toBe(true);
    await cluster.heal();
  });

  it("keeps to limit and since, refuses bad input with 400, and lists a node that does not answer", async () => {
    const { h, followers } = await setUp("events-limits");
    const all = await feed(h);
    expect(all.events.length).toBeGreaterThan(3);
    const limited = await feed(h, "?limit=3");
    expect(limited.events).toEqual(all.events.slice(-3));
    expect((await feed(h, `?since=${Date.now() + 60_000}`)).events).toEqual([]);
    const since = all.events[Math.floor(all.events.length / 2)]!.timeMs;
    expect((await feed(h, `?since=${new Date(since).toISOString()}`)).events.every((e) => e.timeMs >= since)).toBe(
      true,
    );
    for (const bad of ["?limit=0", "?limit=1001", "?limit=x", "?since=yesterday", "?timeout=banana", "?timeout=0s"]) {
      const response = await h.send("GET", `/api/v1/cluster/events${bad}`);
      expect(response.status, bad).toBe(400);
    }
    expect((await h.send("GET", "/api/v1/cluster/events", { token: TOKENS.scraper })).status).toBe(403);

    const hung = followers[0]!;
    h.hung.add(hung);
    const partial = await feed(h, "?timeout=300ms");
    const hungEntry = partial.nodes.find((node) => node.name === hung)!;
    expect(hungEntry.reachable).toBe(false);
    expect(hungEntry.error).not.toBeNull();
    expect(partial.events.some((e) => e.node !== hung)).toBe(true);
    expect(partial.events.some((e) => e.node === hung)).toBe(false);
  });
});
