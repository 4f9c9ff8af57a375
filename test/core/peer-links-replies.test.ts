// PeerLinks (src/objects/runtime/peers.ts) on a hand-driven clock: responses carried in the answer to a peer's call
// meet the test fault rules once, as any call does, and a new proposal waits for a round in flight only while too
// few voters are free to make a quorum.
import { setImmediate as nextMacrotask } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import type { ClusterConfig } from "../../src/objects/cluster-types";
import { PeerLinks } from "../../src/objects/runtime/peers";
import type { PeerStub, RuntimeCore } from "../../src/objects/runtime/types";
import { TestHookKeys } from "../../src/objects/storage-keys";
import type { FaultRules, RaftEnvelope } from "../../src/objects/transport/index";
import { ManualClock } from "../../src/objects/transport/manual-clock";
import type { Message } from "../../src/replication/types";

const settle = async (): Promise<void> => {
  for (let i = 0; i < 8; i++) {
    await nextMacrotask();
  }
};

const CLUSTER: ClusterConfig = {
  name: "replies",
  members: [{ name: "n1" }, { name: "n2" }, { name: "n3" }],
  heartbeatIntervalMs: 50,
  electionTimeoutMs: 500,
};

interface Harness {
  readonly clock: ManualClock;
  readonly links: PeerLinks;
  /** Messages each peer received through calls (not in answers). */
  readonly receivedBy: Map<string, Message[]>;
}

/**
 * Node n1 with peers n2, n3 (voters) and n4 (a learner). `hang` names peers whose calls never settle (a round in
 * flight); `rules` are the test fault rules; the random source alternates 0 and one half.
 */
function harness(options: { readonly rules?: FaultRules; readonly hang?: readonly string[] }): Harness {
  const clock = new ManualClock(1_000);
  const receivedBy = new Map<string, Message[]>();
  const kv = new Map<string, unknown>();
  if (options.rules !== undefined) {
    kv.set(TestHookKeys.faultRules, options.rules);
  }
  let draws = 0;
  const stubFor = (peer: string): PeerStub => ({
    receive: (envelope: RaftEnvelope) => {
      receivedBy.set(peer, [...(receivedBy.get(peer) ?? []), ...envelope.messages]);
      return options.hang?.includes(peer) === true
        ? new Promise<unknown>(() => undefined)
        : Promise.resolve({ ok: true });
    },
    start: () => Promise.resolve({ ok: true }),
  });
  const core = {
    identity: { cluster: CLUSTER, node: "n1" },
    raft: {
      reportSnapshotResult: () => undefined,
      reportUnreachable: () => undefined,
      status: () => ({ applied: 7, membership: { voters: ["n1", "n2", "n3"], learners: ["n4"] } }),
    },
    deps: {
      kv: { get: (key: string) => kv.get(key), put: (key: string, value: unknown) => kv.set(key, value) },
      clock,
      peerStub: (member: { readonly name: string }) => stubFor(member.name),
      faultsEnabled: true,
    },
    random: { nextInt: (n: number) => (draws++ % 2 === 0 ? 0 : Math.floor(n / 2)) },
    bugs: {},
    isStopped: () => false,
    inBackground: (_what: string, fn: () => void) => fn(),
    processReady: () => undefined,
    runDeferredReady: () => undefined,
    log: () => undefined,
  } as unknown as RuntimeCore;
  return { clock, links: new PeerLinks(core), receivedBy };
}

function appendResponse(to: string, index: number): Message {
  return { type: "appendResponse", from: "n1", to, term: 3, success: true, matchIndex: index } as unknown as Message;
}

function append(to: string): Message {
  return {
    type: "append",
    from: "n1",
    to,
    term: 3,
    prevLogIndex: 7,
    prevLogTerm: 3,
    entries: [{ index: 8, term: 3, kind: "normal", data: "x" }],
    commit: 7,
  } as unknown as Message;
}

describe("responses in the answer to a peer's call", () => {
  it("are lost with the configured drop probability, not its square", async () => {
    const h = harness({ rules: { dropProbability: 0.5 } });
    const rounds = 200;
    let inAnswers = 0;
    for (let i = 0; i < rounds; i++) {
      const held = h.links.holdRepliesTo("n2");
      h.links.sendMessages([appendResponse("n2", i)]);
      inAnswers += held ? h.links.releaseReplies().length : 0;
    }
    await h.clock.advance(5_000, settle);
    const delivered = inAnswers + (h.receivedBy.get("n2")?.length ?? 0);
    // Half of the dice say drop: 100 of 200 arrive. Rolled twice (in the hold and again in the transport), 102 did
    // with these dice; with independent dice about three in four would.
    expect(delivered).toBe(rounds / 2);
  });

  it("go through the transport, which applies the rules, across a partition or with a delay", async () => {
    const cut = harness({ rules: { partitions: [{ from: "n1", to: "n2" }] } });
    expect(cut.links.holdRepliesTo("n2")).toBe(false);
    const slow = harness({ rules: { delayMs: 20 } });
    expect(slow.links.holdRepliesTo("n2")).toBe(false);
    const clear = harness({});
    expect(clear.links.holdRepliesTo("n2")).toBe(true);
    clear.links.sendMessages([appendResponse("n2", 1), append("n3")]);
    expect(clear.links.releaseReplies()).toEqual([appendResponse("n2", 1)]);
  });

  it("are at most 256 per answer; the rest go as a call", async () => {
    const h = harness({});
    expect(h.links.holdRepliesTo("n2")).toBe(true);
    h.links.sendMessages(Array.from({ length: 300 }, (_, i) => appendResponse("n2", i)));
    expect(h.links.releaseReplies()).toHaveLength(256);
    await h.clock.advance(1_000, settle);
    expect(h.receivedBy.get("n2")).toHaveLength(44);
  });
});

describe("group commit waits for a round in flight only while too few voters are free", () => {
  it("a learner being caught up, or one slow voter, does not hold a proposal back; both voters busy do", async () => {
    const h = harness({ hang: ["n2", "n3", "n4"] });
    expect(h.links.roundInFlight()).toBe(false);
    h.links.sendMessages([append("n4")]);
    await settle();
    expect(h.links.roundInFlight()).toBe(false);
    h.links.sendMessages([append("n2")]);
    await settle();
    expect(h.links.roundInFlight()).toBe(false);
    h.links.sendMessages([append("n3")]);
    await settle();
    expect(h.links.roundInFlight()).toBe(true);
  });
});

describe("commit notices (appends without entries) wait for the next message to the peer", () => {
  function notice(to: string, commit: number): Message {
    return { ...(append(to) as object), entries: [], prevLogIndex: 8, commit } as unknown as Message;
  }

  it("ride with the next message, or go alone once a quarter of a heartbeat interval passed", async () => {
    const h = harness({});
    h.links.sendMessages([notice("n2", 8), notice("n3", 8)]);
    await settle();
    expect(h.receivedBy.size).toBe(0);
    const heartbeat = { type: "heartbeat", from: "n1", to: "n2", term: 3, commit: 8, readContext: null, round: 1 };
    h.links.sendMessages([heartbeat as Message]);
    await settle();
    expect(h.receivedBy.get("n2")).toEqual([notice("n2", 8), heartbeat]);
    // 50 ms heartbeats: n3's notice goes alone after 13 ms (12.5, rounded).
    await h.clock.advance(12, settle);
    expect(h.receivedBy.get("n3")).toBeUndefined();
    await h.clock.advance(1, settle);
    expect(h.receivedBy.get("n3")).toEqual([notice("n3", 8)]);
  });

  it("are dropped when the next append carries at least their commit", async () => {
    const h = harness({});
    h.links.sendMessages([notice("n2", 7)]);
    h.links.sendMessages([append("n2")]);
    await h.clock.advance(1_000, settle);
    expect(h.receivedBy.get("n2")).toEqual([append("n2")]);
  });
});
