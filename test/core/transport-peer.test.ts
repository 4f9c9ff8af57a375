import { setImmediate as nextMacrotask } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import type { RaftEnvelope, ReceiveResult } from "../../src/objects/transport/envelope";
import type { FaultRules } from "../../src/objects/transport/fault-hook";
import { ManualClock } from "../../src/objects/transport/manual-clock";
import {
  PeerTransport,
  resolvePeerTransportConfig,
  type Delivery,
  type DeliveryFailure,
  type PeerTransportConfig,
  type PeerTransportEvent,
} from "../../src/objects/transport/peer-transport";
import type { Message } from "../../src/replication/types";
import { isRound } from "../../src/objects/runtime/peers";

const settle = async (): Promise<void> => {
  // Several macrotask turns: a delivery chains a few promises (withRetry, withTimeout, callbacks).
  for (let i = 0; i < 5; i++) {
    await nextMacrotask();
  }
};

function heartbeat(term: number, from = "n1", to = "n2"): Message {
  return { type: "heartbeat", from, to, term, commit: 0, readContext: null, round: term };
}

function append(term: number, dataChars: number): Message {
  return {
    type: "append",
    from: "n1",
    to: "n2",
    term,
    prevLogIndex: 0,
    prevLogTerm: 0,
    entries: [{ index: 1, term, kind: "normal", data: "x".repeat(dataChars) }],
    commit: 0,
  };
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function rpcError(flags: { retryable?: boolean; overloaded?: boolean; remote?: boolean }): Error {
  return Object.assign(new Error("rpc failed"), flags);
}

interface Call {
  readonly stub: number;
  readonly envelope: RaftEnvelope;
  readonly atMs: number;
  readonly answer: Deferred<unknown>;
}

/** A PeerTransport from n1 to n2 whose calls wait until the test answers them. */
function harness(
  options: {
    config?: Partial<PeerTransportConfig>;
    faultRules?: FaultRules;
    random?: () => number;
    isRound?: (messages: readonly Message[]) => boolean;
  } = {},
) {
  const clock = new ManualClock();
  let stubsMade = 0;
  const calls: Call[] = [];
  const delivered: Delivery[] = [];
  const failures: DeliveryFailure[] = [];
  const events: PeerTransportEvent[] = [];
  const transport = new PeerTransport<{ id: number }>({
    cluster: "c1",
    self: "n1",
    peer: "n2",
    getStub: () => ({ id: ++stubsMade }),
    call: (stub, envelope) => {
      const answer = deferred<unknown>();
      calls.push({ stub: stub.id, envelope, atMs: clock.now(), answer });
      return answer.promise;
    },
    onDelivered: (peer, delivery) => {
      expect(peer).toBe("n2");
      delivered.push(delivery);
    },
    onFailure: (peer, failure) => {
      expect(peer).toBe("n2");
      failures.push(failure);
    },
    onEvent: (event) => events.push(event),
    clock,
    random: options.random ?? (() => 0.5),
    config: { breaker: { failureThreshold: 3, successThreshold: 1, openTimeoutMs: 1_000 }, ...options.config },
    ...(options.faultRules === undefined ? {} : { faultRules: () => options.faultRules ?? null }),
    ...(options.isRound === undefined ? {} : { isRound: options.isRound }),
  });
  const ok: ReceiveResult = { ok: true };
  return { clock, calls, delivered, failures, events, transport, ok };
}

/** A harness whose breaker opened on one failed call, 200 ms ago (its open time): the next send is the probe. */
async function openedWithOneSecondCalls(): Promise<ReturnType<typeof harness>> {
  const h = harness({
    config: {
      callTimeoutMs: 1_000,
      deadlineMs: 1_000,
      maxAttempts: 1,
      breaker: { failureThreshold: 1, successThreshold: 1, openTimeoutMs: 200, probeTimeoutMs: 1_000 },
    },
  });
  h.transport.send([heartbeat(1)]);
  call(h.calls, 0).answer.reject(new Error("down"));
  await h.clock.advance(200, settle);
  return h;
}

function call(calls: readonly Call[], index: number): Call {
  const found = calls[index];
  if (found === undefined) {
    throw new Error(`no call #${index}; there were ${calls.length}`);
  }
  return found;
}

describe("PeerTransport: sending", () => {
  it("returns at once and delivers in the background, reporting afterwards", async () => {
    const h = harness();
    const messages = [heartbeat(1), heartbeat(2)];
    h.transport.send(messages);
    expect(h.calls).toHaveLength(1);
    expect(h.delivered).toHaveLength(0);
    const { envelope } = call(h.calls, 0);
    expect(envelope).toMatchObject({ cluster: "c1", from: "n1", to: "n2", messages });
    call(h.calls, 0).answer.resolve(h.ok);
    await settle();
    expect(h.delivered).toEqual([{ messages, attempts: 1 }]);
    expect(h.failures).toEqual([]);
    expect(h.transport.stats()).toMatchObject({ envelopesDelivered: 1, inFlight: 0, pendingMessages: 0, stubsMade: 1 });
    expect(h.clock.pendingTimers).toBe(0); // the call's timeout timer was cleared
  });

  it("reuses one stub while calls succeed", async () => {
    const h = harness();
    for (let term = 1; term <= 3; term++) {
      h.transport.send([heartbeat(term)]);
      call(h.calls, term - 1).answer.resolve(h.ok);
      await settle();
    }
    expect(h.calls.map((c) => c.stub)).toEqual([1, 1, 1]);
  });

  it("keeps at most maxInFlight calls and coalesces the rest into one pending batch", async () => {
    const h = harness({ config: { maxInFlight: 4 } });
    for (let term = 1; term <= 10; term++) {
      h.transport.send([heartbeat(term)]);
    }
    expect(h.calls).toHaveLength(4);
    expect(h.transport.stats()).toMatchObject({ inFlight: 4, pendingMessages: 6 });
    call(h.calls, 0).answer.resolve(h.ok);
    await settle();
    expect(h.calls).toHaveLength(5);
    expect(call(h.calls, 4).envelope.messages.map((m) => m.term)).toEqual([5, 6, 7, 8, 9, 10]);
    for (const c of h.calls.slice(1)) {
      c.answer.resolve(h.ok);
    }
    await settle();
    expect(h.delivered.flatMap((d) => d.messages.map((m) => m.term)).sort((a, b) => a - b)).toEqual([
      1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
    ]);
  });

  it("drops the OLDEST pending messages beyond maxPendingMessages and reports them", async () => {
    const h = harness({ config: { maxInFlight: 1, maxPendingMessages: 3 } });
    h.transport.send([heartbeat(1)]); // in flight
    h.transport.send([heartbeat(2), heartbeat(3), heartbeat(4)]);
    h.transport.send([heartbeat(5), heartbeat(6)]);
    expect(h.transport.stats().pendingMessages).toBe(3);
    await settle();
    expect(h.failures).toEqual([
      expect.objectContaining({ kind: "overflow", messages: [heartbeat(2), heartbeat(3)], attempts: 0 }),
    ]);
    call(h.calls, 0).answer.resolve(h.ok);
    await settle();
    expect(call(h.calls, 1).envelope.messages.map((m) => m.term)).toEqual([4, 5, 6]);
    expect(h.transport.stats().messagesDropped).toBe(2);
  });

  it("drops the oldest pending messages beyond maxPendingBytes, but always keeps the newest", async () => {
    const h = harness({ config: { maxInFlight: 1, maxPendingBytes: 50_000 } });
    h.transport.send([heartbeat(1)]);
    h.transport.send([append(2, 10_000), append(3, 10_000)]); // about 20 KB each
    expect(h.transport.stats().pendingMessages).toBe(2);
    h.transport.send([append(4, 10_000)]);
    expect(h.transport.stats().pendingMessages).toBe(2);
    h.transport.send([append(5, 40_000)]); // larger than the bound on its own: it alone stays
    expect(h.transport.stats().pendingMessages).toBe(1);
    await settle();
    expect(h.failures.flatMap((f) => f.messages.map((m) => m.term))).toEqual([2, 3, 4]);
  });

  it("splits a pending batch into envelopes by maxMessagesPerEnvelope and maxEnvelopeBytes", async () => {
    const h = harness({ config: { maxInFlight: 1, maxMessagesPerEnvelope: 2, maxEnvelopeBytes: 30_000 } });
    h.transport.send([heartbeat(1)]);
    h.transport.send([heartbeat(2), heartbeat(3), heartbeat(4), append(5, 10_000), append(6, 10_000)]);
    for (let i = 0; i < h.calls.length; i++) {
      call(h.calls, i).answer.resolve(h.ok);
      await settle();
    }
    // 2 messages per envelope at most; two ~20 KB appends do not fit in 30 KB together.
    expect(h.calls.map((c) => c.envelope.messages.map((m) => m.term))).toEqual([[1], [2, 3], [4, 5], [6]]);
    expect(h.delivered).toHaveLength(4);
  });

  it("reports a message that could never fit in one RPC as oversize", async () => {
    const h = harness();
    h.transport.send([append(1, 17 * 1024 * 1024)]);
    await settle();
    expect(h.calls).toHaveLength(0);
    expect(h.failures).toEqual([expect.objectContaining({ kind: "oversize" })]);
  });

  it("never calls back synchronously from send(), even for failures known at once", () => {
    const h = harness({ config: { maxInFlight: 1, maxPendingMessages: 1 } });
    h.transport.send([heartbeat(1)]);
    h.transport.send([heartbeat(2), heartbeat(3)]);
    expect(h.failures).toEqual([]);
    expect(h.delivered).toEqual([]);
  });

  it("throws on messages addressed elsewhere: a bug in the caller", () => {
    const h = harness();
    expect(() => h.transport.send([heartbeat(1, "n1", "n3")])).toThrow(
      "the transport from n1 to n2 was given a heartbeat message from n1 to n3",
    );
    expect(() => h.transport.send([heartbeat(1, "n3", "n2")])).toThrow(/from n3 to n2/);
    expect(h.calls).toHaveLength(0);
  });
});

describe("PeerTransport: rounds in flight (group commit)", () => {
  it("expects a round's answer only while a call whose batch is a round is in flight to a peer that answers", async () => {
    const h = harness({ isRound, config: { maxInFlight: 4 } });
    h.transport.send([heartbeat(1)]);
    expect(h.calls).toHaveLength(1);
    expect(h.transport.roundAnswerExpected).toBe(false);
    h.transport.send([append(1, 10)]);
    expect(h.calls).toHaveLength(2);
    expect(h.transport.roundAnswerExpected).toBe(true);
    call(h.calls, 1).answer.resolve(h.ok);
    await settle();
    expect(h.transport.roundAnswerExpected).toBe(false);
    // Not after a failure: a peer that stopped answering is expected to time out, not to answer.
    h.transport.send([append(1, 10)]);
    call(h.calls, 2).answer.reject(rpcError({ retryable: false }));
    await settle();
    h.transport.send([append(1, 10)]);
    expect(h.calls).toHaveLength(4);
    expect(h.transport.roundAnswerExpected).toBe(false);
  });

  it("counts every call as a round when no isRound is given", () => {
    const h = harness();
    h.transport.send([heartbeat(1)]);
    expect(h.transport.roundAnswerExpected).toBe(true);
  });

  it("isRound: entries, a read confirmation or a read index are rounds; heartbeats and commit notifications are not", () => {
    const commitOnly: Message = {
      type: "append",
      from: "n1",
      to: "n2",
      term: 1,
      prevLogIndex: 1,
      prevLogTerm: 1,
      entries: [],
      commit: 1,
    };
    expect(isRound([heartbeat(1)])).toBe(false);
    expect(isRound([commitOnly, heartbeat(1)])).toBe(false);
    expect(isRound([heartbeat(1), append(1, 10)])).toBe(true);
    expect(isRound([{ ...heartbeat(1), readContext: "r1" } as Message])).toBe(true);
    expect(isRound([{ type: "readIndex", from: "n1", to: "n2", term: 1, context: "r1" }])).toBe(true);
  });
});

describe("PeerTransport: failures, retries and stubs", () => {
  it("times out a hung call, replaces the stub, and reports a timeout", async () => {
    const h = harness({ config: { callTimeoutMs: 300, deadlineMs: 300 } });
    h.transport.send([heartbeat(1)]);
    await h.clock.advance(299, settle);
    expect(h.failures).toEqual([]);
    await h.clock.advance(1, settle);
    expect(h.failures).toEqual([
      expect.objectContaining({ kind: "timeout", attempts: 1, callsMade: 1, messages: [heartbeat(1)] }),
    ]);
    expect(h.events).toContainEqual({ kind: "stubReplaced", peer: "n2", after: "timeout" });
    h.transport.send([heartbeat(2)]);
    expect(call(h.calls, 1).stub).toBe(2);
    // The abandoned call answering late changes nothing.
    call(h.calls, 0).answer.resolve(h.ok);
    await settle();
    expect(h.delivered).toEqual([]);
  });

  it("retries a retryable error on a fresh stub after a jittered delay", async () => {
    const h = harness({ config: { backoff: { baseDelayMs: 100, maxDelayMs: 1_000 } } });
    h.transport.send([heartbeat(1)]);
    call(h.calls, 0).answer.reject(rpcError({ retryable: true }));
    await settle();
    expect(h.calls).toHaveLength(1);
    await h.clock.advance(50, settle); // random 0.5 * base 100
    expect(h.calls).toHaveLength(2);
    expect(call(h.calls, 1)).toMatchObject({ stub: 2, atMs: 50 });
    call(h.calls, 1).answer.resolve(h.ok);
    await settle();
    expect(h.delivered).toEqual([{ messages: [heartbeat(1)], attempts: 2 }]);
    expect(h.failures).toEqual([]);
  });

  it("gives up after maxAttempts retryable failures", async () => {
    const h = harness({ config: { maxAttempts: 3, deadlineMs: 10_000, backoff: { baseDelayMs: 10, maxDelayMs: 10 } } });
    h.transport.send([heartbeat(1)]);
    for (let i = 0; i < 3; i++) {
      await h.clock.advance(10, settle);
      call(h.calls, i).answer.reject(rpcError({ retryable: true }));
    }
    await h.clock.advance(100, settle);
    expect(h.calls).toHaveLength(3);
    expect(h.failures).toEqual([expect.objectContaining({ kind: "retryable", attempts: 3 })]);
  });

  it("does not retry overloaded, remote or unflagged errors", async () => {
    for (const [error, kind] of [
      [rpcError({ overloaded: true, retryable: true }), "overloaded"],
      [rpcError({ remote: true }), "remote"],
      [new Error("Network connection lost."), "broken"],
    ] as const) {
      const h = harness();
      h.transport.send([heartbeat(1)]);
      call(h.calls, 0).answer.reject(error);
      await h.clock.advance(10_000, settle);
      expect(h.calls).toHaveLength(1);
      expect(h.failures).toEqual([expect.objectContaining({ kind, attempts: 1 })]);
      expect(h.transport.stats().envelopesFailed).toBe(1);
    }
  });

  it("reports a refusal with its code and keeps the stub (the peer answered)", async () => {
    const h = harness();
    h.transport.send([heartbeat(1)]);
    call(h.calls, 0).answer.resolve({
      ok: false,
      error: { code: "PROTOCOL", message: "this node speaks protocol version 2" },
    });
    await settle();
    expect(h.failures).toEqual([
      expect.objectContaining({
        kind: "refused",
        refusal: "PROTOCOL",
        detail: "PROTOCOL: this node speaks protocol version 2",
        attempts: 1,
      }),
    ]);
    h.transport.send([heartbeat(2)]);
    expect(call(h.calls, 1).stub).toBe(1);
  });

  it("treats a malformed answer from a peer on other code as a refusal", async () => {
    const h = harness();
    h.transport.send([heartbeat(1)]);
    call(h.calls, 0).answer.resolve("ack");
    await settle();
    expect(h.failures).toEqual([expect.objectContaining({ kind: "refused", refusal: "MALFORMED" })]);
  });

  it("survives a getStub that throws, reporting the failure", async () => {
    let fail = true;
    const failures: DeliveryFailure[] = [];
    const transport = new PeerTransport<object>({
      cluster: "c1",
      self: "n1",
      peer: "n2",
      getStub: () => {
        if (fail) {
          throw new Error("no such namespace");
        }
        return {};
      },
      call: async () => ({ ok: true }),
      onFailure: (_peer, failure) => failures.push(failure),
      clock: new ManualClock(),
    });
    transport.send([heartbeat(1)]);
    await settle();
    expect(failures).toEqual([
      expect.objectContaining({ kind: "broken", detail: expect.stringContaining("no such namespace") }),
    ]);
    fail = false;
    transport.send([heartbeat(2)]);
    await transport.settled();
    expect(failures).toHaveLength(1);
  });
});

describe("PeerTransport: circuit breaker", () => {
  it("opens after consecutive failures, discards while open, probes once after openTimeoutMs, then recovers", async () => {
    const h = harness({ config: { breaker: { failureThreshold: 2, successThreshold: 1, openTimeoutMs: 1_000 } } });
    for (let term = 1; term <= 2; term++) {
      h.transport.send([heartbeat(term)]);
      call(h.calls, term - 1).answer.reject(new Error("down"));
      await settle();
    }
    expect(h.transport.stats()).toMatchObject({ breaker: "OPEN", consecutiveFailures: 2 });

    h.transport.send([heartbeat(3)]);
    await settle();
    expect(h.calls).toHaveLength(2);
    expect(h.failures.at(-1)).toMatchObject({
      kind: "circuitOpen",
      messages: [heartbeat(3)],
      attempts: 0,
      callsMade: 0,
    });

    await h.clock.advance(1_000, settle);
    h.transport.send([heartbeat(4)]);
    expect(h.calls).toHaveLength(3); // the probe
    expect(h.transport.stats().breaker).toBe("HALF_OPEN");
    h.transport.send([heartbeat(5)]);
    await settle();
    expect(h.calls).toHaveLength(3); // one probe at a time; what comes meanwhile waits for its result
    expect(h.transport.stats().pendingMessages).toBe(1);

    call(h.calls, 2).answer.resolve(h.ok);
    await settle();
    expect(h.transport.stats()).toMatchObject({ breaker: "CLOSED", reconnections: 1, consecutiveFailures: 0 });
    expect(call(h.calls, 3).envelope.messages).toEqual([heartbeat(5)]);
    h.transport.send([heartbeat(6)]);
    expect(h.calls).toHaveLength(5);
    const transitions = h.events.flatMap((e) =>
      e.kind === "breaker" ? [`${e.transition.from}->${e.transition.to}`] : [],
    );
    expect(transitions).toEqual(["CLOSED->OPEN", "OPEN->HALF_OPEN", "HALF_OPEN->CLOSED"]);
  });

  it("reopens when the probe fails, discarding what waited on it", async () => {
    const h = harness({ config: { breaker: { failureThreshold: 1, successThreshold: 1, openTimeoutMs: 500 } } });
    h.transport.send([heartbeat(1)]);
    call(h.calls, 0).answer.reject(new Error("down"));
    await h.clock.advance(500, settle);
    h.transport.send([heartbeat(2)]);
    h.transport.send([heartbeat(3)]);
    expect(h.calls).toHaveLength(2);
    call(h.calls, 1).answer.reject(new Error("still down"));
    await settle();
    expect(h.calls).toHaveLength(2);
    expect(h.transport.stats()).toMatchObject({
      breaker: "OPEN",
      reconnections: 0,
      consecutiveFailures: 2,
      pendingMessages: 0,
    });
    expect(h.failures.at(-1)).toMatchObject({ kind: "circuitOpen", messages: [heartbeat(3)] });
  });

  it("waits longer after each failed probe, and probes early once the peer called us", async () => {
    const h = harness({
      config: { breaker: { failureThreshold: 1, successThreshold: 1, openTimeoutMs: 200, maxOpenTimeoutMs: 1_000 } },
    });
    h.transport.send([heartbeat(1)]);
    call(h.calls, 0).answer.reject(new Error("down"));
    await h.clock.advance(200, settle);
    h.transport.send([heartbeat(2)]);
    call(h.calls, 1).answer.reject(new Error("still down"));
    await h.clock.advance(399, settle); // open for 400 ms now
    h.transport.send([heartbeat(3)]);
    expect(h.calls).toHaveLength(2);

    await h.clock.advance(1, settle);
    h.transport.send([heartbeat(4)]);
    call(h.calls, 2).answer.reject(new Error("still down")); // open for 800 ms now
    await h.clock.advance(300, settle);
    h.transport.peerHeardFrom();
    h.transport.send([heartbeat(5)]);
    expect(h.calls).toHaveLength(4); // the probe, 300 ms into an 800 ms wait
    call(h.calls, 3).answer.resolve(h.ok);
    await settle();
    expect(h.transport.stats().breaker).toBe("CLOSED");
  });

  it("sends a second probe when the peer calls us while the first hangs, and takes no notice of the first's timeout", async () => {
    const h = await openedWithOneSecondCalls();
    h.transport.send([heartbeat(2)]); // the probe: into a black hole
    expect(h.calls).toHaveLength(2);
    await h.clock.advance(100, settle);
    h.transport.send([heartbeat(3)]);
    expect(h.calls).toHaveLength(2); // it waits on the probe
    h.transport.peerHeardFrom(); // the peer is back
    expect(h.transport.probeWouldGoOut).toBe(true);
    h.transport.send([heartbeat(4)]);
    expect(h.calls).toHaveLength(3);
    expect(call(h.calls, 2).envelope.messages).toEqual([heartbeat(3), heartbeat(4)]);
    call(h.calls, 2).answer.resolve(h.ok);
    await settle();
    expect(h.transport.stats().breaker).toBe("CLOSED");
    await h.clock.advance(1_000, settle); // the first probe times out: stale, the breaker stays closed
    expect(h.failures.at(-1)).toMatchObject({ kind: "timeout", messages: [heartbeat(2)] });
    expect(h.transport.stats()).toMatchObject({ breaker: "CLOSED" });
  });

  it("counts refusals as failures: a peer on an unknown protocol version is left alone", async () => {
    const h = harness({ config: { breaker: { failureThreshold: 2, successThreshold: 1, openTimeoutMs: 1_000 } } });
    for (let term = 1; term <= 2; term++) {
      h.transport.send([heartbeat(term)]);
      call(h.calls, term - 1).answer.resolve({ ok: false, error: { code: "PROTOCOL", message: "v2" } });
      await settle();
    }
    expect(h.transport.stats().breaker).toBe("OPEN");
  });
});

describe("PeerTransport: fault injection", () => {
  it("drops envelopes across a partition without calling the peer", async () => {
    const h = harness({ faultRules: { partitions: [{ from: "n1", to: "n2" }] } });
    h.transport.send([heartbeat(1)]);
    await settle();
    expect(h.calls).toHaveLength(0);
    // An attempt, but no call: the envelope never left this node (a repair counts on it to answer NOT_REPAIRED).
    expect(h.failures).toEqual([
      expect.objectContaining({
        kind: "broken",
        detail: expect.stringContaining("fault injection dropped"),
        attempts: 1,
        callsMade: 0,
      }),
    ]);
  });

  it("leaves the other direction of a one-way partition alone", async () => {
    const h = harness({ faultRules: { partitions: [{ from: "n2", to: "n1" }] } });
    h.transport.send([heartbeat(1)]);
    expect(h.calls).toHaveLength(1);
  });

  it("delays envelopes, and a delay beyond the call timeout is a timeout", async () => {
    const slow = harness({ faultRules: { delayMs: 200 }, config: { callTimeoutMs: 1_000 } });
    slow.transport.send([heartbeat(1)]);
    await slow.clock.advance(199, settle);
    expect(slow.calls).toHaveLength(0);
    await slow.clock.advance(1, settle);
    expect(call(slow.calls, 0).atMs).toBe(200);

    const tooSlow = harness({ faultRules: { delayMs: 2_000 }, config: { callTimeoutMs: 1_000, deadlineMs: 1_000 } });
    tooSlow.transport.send([heartbeat(1)]);
    await tooSlow.clock.advance(1_000, settle);
    expect(tooSlow.failures).toEqual([expect.objectContaining({ kind: "timeout" })]);
  });

  it("drops with the configured probability, drawing from the injected randomness", async () => {
    const draws = [0.1, 0.9];
    const h = harness({ faultRules: { dropProbability: 0.5 }, random: () => draws.shift() ?? 0.99 });
    h.transport.send([heartbeat(1)]);
    await settle();
    h.transport.send([heartbeat(2)]);
    await settle();
    expect(h.failures.map((f) => f.messages.map((m) => m.term))).toEqual([[1]]);
    expect(h.calls.map((c) => c.envelope.messages.map((m) => m.term))).toEqual([[2]]);
  });
});

describe("PeerTransport: deliverNow", () => {
  const chunk = { snapshotIndex: 100, snapshotTerm: 2, seq: 0, last: false, data: "INSERT INTO t VALUES (1);" };

  it("sends a snapshot chunk at once, even while every background slot is busy, and resolves with the outcome", async () => {
    const h = harness({ config: { maxInFlight: 1 } });
    h.transport.send([heartbeat(1)]);
    const outcome = h.transport.deliverNow({ snapshotChunk: chunk });
    expect(h.calls).toHaveLength(2);
    expect(call(h.calls, 1).envelope).toMatchObject({ messages: [], snapshotChunk: chunk });
    call(h.calls, 1).answer.resolve(h.ok);
    await expect(outcome).resolves.toEqual({ ok: true, delivery: { messages: [], snapshotChunk: chunk, attempts: 1 } });
  });

  it("waits for the breaker's probe when asked to, then goes out, or is refused if the probe failed", async () => {
    const h = harness({
      config: { deadlineMs: 1_500, breaker: { failureThreshold: 1, successThreshold: 1, openTimeoutMs: 200 } },
    });
    const openAndProbe = async (term: number): Promise<Call> => {
      h.transport.send([heartbeat(term)]);
      call(h.calls, h.calls.length - 1).answer.reject(new Error("down"));
      await h.clock.advance(2_000, settle);
      h.transport.send([heartbeat(term + 1)]);
      return call(h.calls, h.calls.length - 1);
    };
    const probe = await openAndProbe(1);
    expect(await h.transport.deliverNow({ snapshotChunk: chunk })).toMatchObject({
      ok: false,
      failure: { kind: "circuitOpen" },
    }); // not asked to wait: refused at once, as ever
    const waiting = h.transport.deliverNow({ snapshotChunk: chunk, waitForProbe: true });
    await settle();
    const callsBefore = h.calls.length;
    probe.answer.resolve(h.ok);
    await settle();
    expect(h.calls).toHaveLength(callsBefore + 1);
    call(h.calls, callsBefore).answer.resolve(h.ok);
    expect((await waiting).ok).toBe(true);

    const failing = await openAndProbe(10);
    const refused = h.transport.deliverNow({ snapshotChunk: chunk, waitForProbe: true });
    failing.answer.reject(new Error("still down"));
    await settle();
    await expect(refused).resolves.toMatchObject({ ok: false, failure: { kind: "circuitOpen" } });

    await h.clock.advance(5_000, settle);
    h.transport.send([heartbeat(20)]); // a probe that never answers: the wait ends with its deadline
    const bounded = h.transport.deliverNow({ snapshotChunk: chunk, waitForProbe: true });
    await h.clock.advance(1_500, settle);
    await expect(bounded).resolves.toMatchObject({ ok: false, failure: { kind: "circuitOpen" } });
    expect(h.transport.stats().breaker).toBe("OPEN");
  });

  it("keeps waiting for the probe when another call of an earlier epoch ends first", async () => {
    const h = harness({
      config: { deadlineMs: 1_500, breaker: { failureThreshold: 1, successThreshold: 1, openTimeoutMs: 200 } },
    });
    h.transport.send([heartbeat(1)]);
    h.transport.send([heartbeat(2)]); // two calls in flight while CLOSED
    expect(h.calls).toHaveLength(2);
    call(h.calls, 0).answer.reject(new Error("down")); // opens the breaker; call 1 still hangs
    await h.clock.advance(200, settle);
    h.transport.send([heartbeat(3)]); // the probe
    expect(h.calls).toHaveLength(3);
    const waiting = h.transport.deliverNow({ snapshotChunk: chunk, waitForProbe: true });
    await settle();
    call(h.calls, 1).answer.resolve(h.ok); // the stale call of the CLOSED epoch ends: not the probe
    await settle();
    call(h.calls, 2).answer.resolve(h.ok); // now the probe is answered and closes the breaker
    await settle();
    expect(h.transport.stats().breaker).toBe("CLOSED");
    const chunkCall = h.calls[3];
    chunkCall?.answer.resolve(h.ok);
    expect((await waiting).ok).toBe(true);
  });

  it("keeps waiting for the newer probe when the superseded one ends first", async () => {
    const h = await openedWithOneSecondCalls();
    h.transport.send([heartbeat(2)]); // probe 1: into a black hole
    await h.clock.advance(100, settle);
    h.transport.peerHeardFrom();
    h.transport.send([heartbeat(3)]); // probe 2, on contact
    expect(h.calls).toHaveLength(3);
    const waiting = h.transport.deliverNow({ snapshotChunk: chunk, waitForProbe: true });
    await settle();
    call(h.calls, 1).answer.reject(new Error("black hole")); // probe 1 ends (stale)
    await settle();
    call(h.calls, 2).answer.resolve(h.ok); // probe 2 closes the breaker
    await settle();
    expect(h.transport.stats().breaker).toBe("CLOSED");
    h.calls[3]?.answer.resolve(h.ok);
    expect((await waiting).ok).toBe(true);
    expect(h.transport.stats().directInFlight).toBe(0);
  });

  it("refuses a second concurrent direct delivery as busy", async () => {
    const h = harness();
    const first = h.transport.deliverNow({ snapshotChunk: chunk });
    const second = await h.transport.deliverNow({ snapshotChunk: { ...chunk, seq: 1 } });
    expect(second).toMatchObject({ ok: false, failure: { kind: "busy", attempts: 0 } });
    call(h.calls, 0).answer.resolve(h.ok);
    expect((await first).ok).toBe(true);
  });

  it("resolves (never rejects) with the failure, honouring its own timeout", async () => {
    const h = harness();
    const outcome = h.transport.deliverNow({ snapshotChunk: chunk, timeoutMs: 5_000 });
    await h.clock.advance(4_999, settle);
    expect(h.failures).toEqual([]);
    await h.clock.advance(1, settle);
    await expect(outcome).resolves.toMatchObject({ ok: false, failure: { kind: "timeout", snapshotChunk: chunk } });
  });

  it("throws when given nothing to send", () => {
    const h = harness();
    expect(() => h.transport.deliverNow({})).toThrow(/neither messages nor a snapshot chunk/);
  });
});

describe("PeerTransport: lifecycle and robustness", () => {
  it("close() discards pending messages, waits for calls in flight, and then refuses sends", async () => {
    const h = harness({ config: { maxInFlight: 1 } });
    h.transport.send([heartbeat(1)]);
    h.transport.send([heartbeat(2)]);
    const closed = h.transport.close();
    expect(h.transport.stats().pendingMessages).toBe(0);
    call(h.calls, 0).answer.resolve(h.ok);
    await closed;
    expect(h.calls).toHaveLength(1);
    expect(h.delivered).toEqual([]); // no callbacks after close
    expect(() => h.transport.send([heartbeat(3)])).toThrow("the transport to n2 is closed");
  });

  it("keeps working when a callback throws, and reports it as an event", async () => {
    const events: PeerTransportEvent[] = [];
    const transport = new PeerTransport<object>({
      cluster: "c1",
      self: "n1",
      peer: "n2",
      getStub: () => ({}),
      call: async () => ({ ok: true }),
      onDelivered: () => {
        throw new Error("node bug");
      },
      onFailure: () => {},
      onEvent: (event) => events.push(event),
      clock: new ManualClock(),
    });
    transport.send([heartbeat(1)]);
    await transport.settled();
    transport.send([heartbeat(2)]);
    await transport.settled();
    expect(events.filter((e) => e.kind === "callbackFailed")).toHaveLength(2);
    expect(transport.stats().envelopesDelivered).toBe(2);
  });

  it("refuses a transport to itself and invalid configuration", () => {
    const base = { cluster: "c1", getStub: () => ({}), call: async () => ({ ok: true }), onFailure: () => {} };
    expect(() => new PeerTransport({ ...base, self: "n1", peer: "n1" })).toThrow(/to itself/);
    expect(() => resolvePeerTransportConfig({ maxInFlight: 0 })).toThrow(/maxInFlight must be an integer >= 1/);
    expect(() => resolvePeerTransportConfig({ maxEnvelopeBytes: 64 * 1024 * 1024 })).toThrow(
      /maxEnvelopeBytes must be <=/,
    );
    expect(() => resolvePeerTransportConfig({ callTimeoutMs: 2_000, deadlineMs: 1_000 })).toThrow(/deadlineMs/);
  });

  it("stays bounded under a long outage: calls, pending messages and timers never exceed their limits", async () => {
    const h = harness({ config: { maxInFlight: 4, maxPendingMessages: 64, callTimeoutMs: 100, deadlineMs: 100 } });
    for (let round = 0; round < 200; round++) {
      h.transport.send([heartbeat(round + 1), heartbeat(round + 1)]);
      const stats = h.transport.stats();
      expect(stats.inFlight).toBeLessThanOrEqual(4);
      expect(stats.pendingMessages).toBeLessThanOrEqual(64);
      expect(h.clock.pendingTimers).toBeLessThanOrEqual(4);
      await h.clock.advance(25, settle);
    }
    // Every message was either in a failed call or reported as not sent: nothing vanished silently.
    await h.clock.advance(5_000, settle);
    await h.transport.settled();
    const reported = h.failures.reduce((sum, f) => sum + f.messages.length, 0);
    const pending = h.transport.stats().pendingMessages;
    expect(reported + pending).toBe(400);
    expect(h.transport.stats().breaker).not.toBe("CLOSED");
  });
});
