// PeerTransport over real Durable Object RPC in workerd: what real answers and real errors look like.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { PeerTransport, type DeliveryFailure, type Delivery } from "../../src/objects/transport/index";
import type { Message } from "../../src/replication/types";

function heartbeat(term: number): Message {
  return { type: "heartbeat", from: "n1", to: "n2", term, commit: 0, readContext: null, round: 1 };
}

async function waitUntil(condition: () => boolean, what: string, deadlineMs = 5_000): Promise<void> {
  const giveUpAt = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() > giveUpAt) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("PeerTransport on workerd", () => {
  it("carries an envelope over real RPC and reads a real refusal (the peer was never started)", async () => {
    const failures: DeliveryFailure[] = [];
    const transport = new PeerTransport({
      cluster: "transport-rpc-1",
      self: "n1",
      peer: "n2",
      getStub: () => env.CLUSTER_NODE.getByName("transport-rpc-1/n2"),
      call: (stub, envelope) => stub.receive(envelope),
      onFailure: (_peer, failure) => failures.push(failure),
    });
    transport.send([heartbeat(1)]);
    await waitUntil(() => failures.length > 0, "the refusal");
    await transport.settled();
    expect(failures).toEqual([
      expect.objectContaining({ kind: "refused", refusal: "UNAVAILABLE", attempts: 1, messages: [heartbeat(1)] }),
    ]);
    expect(transport.stats()).toMatchObject({ stubsMade: 1, envelopesFailed: 1, breaker: "CLOSED" });
  });

  it("classifies calling a method the peer lacks as remote (workerd sets .remote), and makes a new stub afterwards", async () => {
    const failures: DeliveryFailure[] = [];
    const delivered: Delivery[] = [];
    let stubsMade = 0;
    const transport = new PeerTransport({
      cluster: "transport-rpc-2",
      self: "n1",
      peer: "n2",
      getStub: () => {
        stubsMade++;
        return env.CLUSTER_NODE.getByName("transport-rpc-2/n2");
      },
      // The first call goes to a method no ClusterNode has; later calls to one it has.
      call: async (stub, envelope) => {
        if (stubsMade === 1) {
          return (stub as unknown as { noSuchMethod(e: unknown): Promise<unknown> }).noSuchMethod(envelope);
        }
        await stub.ping();
        return { ok: true };
      },
      onDelivered: (_peer, delivery) => delivered.push(delivery),
      onFailure: (_peer, failure) => failures.push(failure),
    });
    transport.send([heartbeat(1)]);
    await waitUntil(() => failures.length > 0, "the failure");
    const failure = failures[0];
    expect(failure?.attempts).toBe(1);
    expect(failure?.kind).toBe("remote");
    expect(failure?.detail).toMatch(/noSuchMethod/);
    transport.send([heartbeat(2)]);
    await waitUntil(() => delivered.length > 0, "the delivery on a fresh stub");
    expect(stubsMade).toBe(2);
    expect(delivered[0]?.messages).toEqual([heartbeat(2)]);
  });

  it("times out a call that never answers with the real clock, leaving no timer behind", async () => {
    const failures: DeliveryFailure[] = [];
    const transport = new PeerTransport({
      cluster: "transport-rpc-3",
      self: "n1",
      peer: "n2",
      getStub: () => ({}),
      call: () => new Promise<never>(() => {}),
      onFailure: (_peer, failure) => failures.push(failure),
      config: { callTimeoutMs: 30, deadlineMs: 30 },
    });
    transport.send([heartbeat(1)]);
    await transport.settled();
    expect(failures).toEqual([expect.objectContaining({ kind: "timeout", attempts: 1 })]);
  });
});
