// Snapshot streaming (src/objects/runtime/peers.ts) on a hand-driven clock: a lost chunk answer costs a few
// heartbeat intervals and the chunk is sent again (it used to stall the transfer for a fixed 5 s and then fail
// it); a transfer that keeps failing backs off, and says so in the log.
import { setImmediate as nextMacrotask } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import type { ClusterConfig } from "../../src/objects/cluster-types";
import { PeerLinks, SNAPSHOT_CHUNK_LIMITS } from "../../src/objects/runtime/peers";
import { SNAPSHOT_CHUNK_TIMING, snapshotChunkTimeoutMs, snapshotRetryDelayMs } from "../../src/objects/timing";
import type { PeerStub, RuntimeCore } from "../../src/objects/runtime/types";
import type { ShellBugs } from "../../src/objects/shell-bugs";
import type { RaftEnvelope } from "../../src/objects/transport/envelope";
import { ManualClock } from "../../src/objects/transport/manual-clock";
import type { InstallSnapshot } from "../../src/replication/types";

const settle = async (): Promise<void> => {
  for (let i = 0; i < 8; i++) {
    await nextMacrotask();
  }
};

const CLUSTER: ClusterConfig = {
  name: "stream",
  members: [{ name: "n1" }, { name: "n2" }],
  heartbeatIntervalMs: 50,
  electionTimeoutMs: 500,
};

interface Harness {
  readonly clock: ManualClock;
  readonly links: PeerLinks;
  /** reportSnapshotResult calls, with the time each came. */
  readonly results: { readonly ok: boolean; readonly atMs: number }[];
  /** Chunk seqs the peer received, in order (repeats included). */
  readonly received: number[];
  /** Every envelope the peer received, in order. */
  readonly envelopes: RaftEnvelope[];
  readonly logs: { readonly level: string; readonly event: string; readonly fields: Record<string, unknown> }[];
}

/**
 * Node n1 streaming a three-chunk image to n2. `answer(seq, copy)` decides, per chunk delivery, whether n2's answer
 * comes back ("ok"), is lost (never settles), or is a refusal ("refuse").
 */
function harness(options: {
  readonly bugs?: ShellBugs;
  readonly answer: (seq: number | null, copy: number) => "ok" | "lost" | "refuse";
  /** The applied index of the image n1 builds (7, the snapshot's own index, unless said). */
  readonly imageIndex?: number;
}): Harness {
  const clock = new ManualClock(1_000);
  const results: { ok: boolean; atMs: number }[] = [];
  const received: number[] = [];
  const envelopes: RaftEnvelope[] = [];
  const logs: Harness["logs"] = [];
  const copies = new Map<number | null, number>();
  const stub: PeerStub = {
    receive: (envelope: RaftEnvelope) => {
      envelopes.push(envelope);
      const seq = envelope.snapshotChunk?.seq ?? null;
      const copy = (copies.get(seq) ?? 0) + 1;
      copies.set(seq, copy);
      if (seq !== null) {
        received.push(seq);
      }
      const answer = options.answer(seq, copy);
      if (answer === "lost") {
        return new Promise<unknown>(() => undefined);
      }
      return Promise.resolve(
        answer === "ok" ? { ok: true } : { ok: false, error: { code: "UNAVAILABLE", message: "refused" } },
      );
    },
    start: () => Promise.resolve({ ok: true }),
  };
  const kv = new Map<string, unknown>();
  const core = {
    identity: { cluster: CLUSTER, node: "n1" },
    raft: {
      reportSnapshotResult: (_peer: string, ok: boolean) => results.push({ ok, atMs: clock.now() }),
      reportUnreachable: () => undefined,
      // n1 has committed up to 9: it knows the snapshot metadata of the state at 7 (its compaction) to 9.
      snapshotMetaAt: (index: number) =>
        index >= 7 && index <= 9 ? { index, term: 3, membership: { voters: ["n1", "n2"], learners: [] } } : null,
      // Envelopes to members carry the sender's applied index (memberAsOf, the proof of membership a re-added node needs).
      status: () => ({ role: "leader", term: 3, applied: 7, membership: { voters: ["n1", "n2"], learners: [] } }),
    },
    sm: { createSnapshotImage: () => ({ appliedIndex: options.imageIndex ?? 7, chunks: ["c0", "c1", "c2"] }) },
    deps: {
      kv: { get: (key: string) => kv.get(key), put: (key: string, value: unknown) => kv.set(key, value) },
      clock,
      peerStub: () => stub,
      faultsEnabled: false,
    },
    random: { nextInt: (n: number) => Math.floor(n / 2) },
    bugs: options.bugs ?? {},
    isStopped: () => false,
    inBackground: (_what: string, fn: () => void) => fn(),
    processReady: () => undefined,
    log: (level: string, event: string, fields: Record<string, unknown>) => logs.push({ level, event, fields }),
  } as unknown as RuntimeCore;
  return { clock, links: new PeerLinks(core), results, received, envelopes, logs };
}

const SNAPSHOT: InstallSnapshot = {
  type: "snapshot",
  from: "n1",
  to: "n2",
  term: 3,
  snapshot: { index: 7, term: 3, membership: { voters: ["n1", "n2"], learners: [] } },
};

async function runFor(h: Harness, ms: number): Promise<void> {
  await h.clock.advance(ms, settle);
}

describe("snapshot chunks: timeout from the cluster timing, and sent again", () => {
  it("the chunk timeout is a few heartbeat intervals, within bounds", () => {
    const empty = { chunkChars: 0 };
    expect(snapshotChunkTimeoutMs({ heartbeatIntervalMs: 50 }, empty)).toBe(200);
    expect(snapshotChunkTimeoutMs({ heartbeatIntervalMs: 10 }, empty)).toBe(SNAPSHOT_CHUNK_TIMING.minChunkTimeoutMs);
    expect(snapshotChunkTimeoutMs({ heartbeatIntervalMs: 10_000 }, empty)).toBe(
      SNAPSHOT_CHUNK_TIMING.maxChunkTimeoutMs,
    );
  });

  it("a larger chunk gets a per-KiB allowance on top of that base, past its bound too", () => {
    expect(snapshotChunkTimeoutMs({ heartbeatIntervalMs: 50 }, { chunkChars: 512 * 1024 })).toBe(200 + 512);
    expect(snapshotChunkTimeoutMs({ heartbeatIntervalMs: 50 }, { chunkChars: 1 })).toBe(201);
    expect(snapshotChunkTimeoutMs({ heartbeatIntervalMs: 10_000 }, { chunkChars: 512 * 1024 })).toBe(5_000 + 512);
  });

  it("a lost chunk answer costs one chunk timeout: the chunk goes again and the transfer completes", async () => {
    const h = harness({ answer: (seq, copy) => (seq === 1 && copy === 1 ? "lost" : "ok") });
    h.links.sendMessages([SNAPSHOT]);
    await runFor(h, 1_000);
    expect(h.received).toEqual([0, 1, 1, 2]);
    expect(h.results).toEqual([{ ok: true, atMs: expect.any(Number) as number }]);
    // About one chunk timeout (200 ms) after the start, far from the old fixed 5 s.
    expect((h.results[0]?.atMs ?? Infinity) - 1_000).toBeLessThanOrEqual(
      snapshotChunkTimeoutMs(CLUSTER, { chunkChars: 2 }) + 50,
    );
    expect(h.logs.some((line) => line.event === "snapshotChunkTimedOut")).toBe(true);
  });

  it("with snapshotChunkWaitsFixedTimeout the same lost answer stalls the transfer 5 s and fails it", async () => {
    const h = harness({
      bugs: { snapshotChunkWaitsFixedTimeout: true },
      answer: (seq, copy) => (seq === 1 && copy === 1 ? "lost" : "ok"),
    });
    h.links.sendMessages([SNAPSHOT]);
    await runFor(h, 1_000);
    expect(h.results).toEqual([]);
    await runFor(h, 5_000);
    expect(h.received).toEqual([0, 1]);
    expect(h.results).toEqual([{ ok: false, atMs: 6_000 }]);
  });

  it("a chunk whose answers are all lost fails the transfer after a bounded number of attempts", async () => {
    const h = harness({ answer: (seq) => (seq === 2 ? "lost" : "ok") });
    h.links.sendMessages([SNAPSHOT]);
    await runFor(h, 5_000);
    expect(h.received).toEqual([0, 1, ...Array<number>(SNAPSHOT_CHUNK_LIMITS.attemptsPerChunk).fill(2)]);
    expect(h.results.map((r) => r.ok)).toEqual([false]);
  });

  it("a refused chunk is not sent again: the transfer fails at once", async () => {
    const h = harness({ answer: (seq) => (seq === 0 ? "refuse" : "ok") });
    h.links.sendMessages([SNAPSHOT]);
    await runFor(h, 100);
    expect(h.received).toEqual([0]);
    expect(h.results.map((r) => r.ok)).toEqual([false]);
  });
});

describe("a snapshot transfer that keeps failing backs off", () => {
  it("retry delays: none after one failure, then doubling from a heartbeat to two election timeouts", () => {
    const delays = [1, 2, 3, 4, 5, 6, 40].map((failures) => snapshotRetryDelayMs(CLUSTER, failures));
    expect(delays).toEqual([0, 50, 100, 200, 400, 800, 1_000]);
  });

  it("a peer whose install always fails gets the image again only after the delay, and the log says so", async () => {
    // The final snapshot message is what the receiver fails on (its install throws).
    const h = harness({ answer: (seq) => (seq === null ? "refuse" : "ok") });
    const streams = (): number => h.received.filter((seq) => seq === 0).length;
    for (let probe = 0; probe < 40; probe += 1) {
      h.links.sendMessages([SNAPSHOT]);
      await runFor(h, 25);
    }
    // 1 s of probes every 25 ms: without the back-off, every probe after a failure streams the image again.
    expect(h.results.length).toBeGreaterThan(30);
    expect(streams()).toBeGreaterThanOrEqual(4);
    expect(streams()).toBeLessThanOrEqual(7);
    const failures = h.logs.filter((line) => line.event === "snapshotSent");
    expect(failures.at(-1)?.fields).toMatchObject({ ok: false, failuresInARow: streams() });
    expect(failures.some((line) => line.level === "error")).toBe(true);
  });

  it("a success clears the count: the next failure is the first again (no delay)", async () => {
    let refuse = true;
    const h = harness({ answer: (seq) => (seq === null && refuse ? "refuse" : "ok") });
    const streams = (): number => h.received.filter((seq) => seq === 0).length;
    for (let i = 0; i < 2; i += 1) {
      h.links.sendMessages([SNAPSHOT]);
      await runFor(h, 10);
    }
    refuse = false;
    await runFor(h, 200);
    h.links.sendMessages([SNAPSHOT]);
    await runFor(h, 10);
    refuse = true;
    h.links.sendMessages([SNAPSHOT]);
    await runFor(h, 10);
    h.links.sendMessages([SNAPSHOT]);
    await runFor(h, 10);
    expect(h.results.map((r) => r.ok)).toEqual([false, false, true, false, false]);
    expect(streams()).toBe(5);
  });
});

describe("a snapshot waiting for a verified image (consistency monitor on)", () => {
  const waitForImage = (h: Harness): { verified: () => void } => {
    let ready = false;
    h.links.verifiedImages = {
      image: () =>
        ready ? { appliedIndex: 7, chunks: ["c0", "c1", "c2"], bytes: 6, schemaVersion: 1, schemaHash: "" } : null,
      built: () => 0,
    };
    return { verified: () => (ready = true) };
  };

  it("goes out once the image is verified", async () => {
    const h = harness({ answer: () => "ok" });
    const image = waitForImage(h);
    h.links.sendMessages([SNAPSHOT]);
    await runFor(h, 10);
    expect(h.received).toEqual([]);
    image.verified();
    h.links.retryAwaitingImages();
    await runFor(h, 100);
    expect(h.received).toEqual([0, 1, 2]);
    expect(h.results.map((r) => r.ok)).toEqual([true]);
  });

  it("is dropped when its peer leaves the cluster: no image goes to a former member", async () => {
    const h = harness({ answer: () => "ok" });
    const image = waitForImage(h);
    h.links.sendMessages([SNAPSHOT]);
    await runFor(h, 10);
    h.links.membershipApplied({ voters: ["n1"], learners: [] });
    image.verified();
    h.links.retryAwaitingImages();
    await runFor(h, 100);
    expect(h.received).toEqual([]);
    expect(h.results).toEqual([]);
  });
});

describe("a snapshot sent with an image taken after the last compaction", () => {
  const indexesSent = (h: Harness): (number | undefined)[] =>
    h.envelopes.map((envelope) => {
      const message = envelope.messages.find((m) => m.type === "snapshot");
      return (
        envelope.snapshotChunk?.snapshotIndex ?? (message?.type === "snapshot" ? message.snapshot.index : undefined)
      );
    });

  it("says the image's own index, in every chunk and in the snapshot message, so no entry goes twice", async () => {
    const h = harness({ answer: () => "ok", imageIndex: 9 });
    h.links.sendMessages([SNAPSHOT]);
    await runFor(h, 100);
    expect(indexesSent(h)).toEqual([9, 9, 9, 9]);
    expect(h.results.map((r) => r.ok)).toEqual([true]);
    expect(h.logs.find((line) => line.event === "snapshotSending")?.fields).toMatchObject({
      snapshotIndex: 9,
      compactedIndex: 7,
      appliedIndex: 9,
    });
  });

  it("names the image being streamed while it is, so that the leader's log is kept from it", async () => {
    const h = harness({ answer: (seq, copy) => (seq === 1 && copy === 1 ? "lost" : "ok"), imageIndex: 9 });
    expect(h.links.oldestImageInFlight()).toBeNull();
    h.links.sendMessages([SNAPSHOT]);
    await runFor(h, 10);
    expect(h.links.oldestImageInFlight()).toBe(9);
    await runFor(h, 1_000);
    expect(h.results.map((r) => r.ok)).toEqual([true]);
    expect(h.links.oldestImageInFlight()).toBeNull();
  });

  it("keeps the compaction's index when the core does not know the image's (not committed there)", async () => {
    const h = harness({ answer: () => "ok", imageIndex: 12 });
    h.links.sendMessages([SNAPSHOT]);
    await runFor(h, 100);
    expect(indexesSent(h)).toEqual([7, 7, 7, 7]);
  });
});
