// A follower's own stall (its thread busy, its alarm late) is not its leader's silence: after one it catches up to
// one tick short of its election timeout (src/objects/node-runtime.ts, ticksAfterStall), so that a heartbeat queued
// behind the stall is handled before it campaigns. On a shared thread every node stalls at once, and elections the
// leader's heartbeats would have prevented raised the term of a healthy cluster.
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { noopEntry, ScriptedNode, scriptedObject, yieldToEvents } from "./helpers/scripted-runtime";

async function withFollower(prefix: string, body: (node: ScriptedNode) => Promise<void>): Promise<void> {
  const { stub, cluster } = scriptedObject(prefix);
  await runInDurableObject(stub, async (_instance, state) => {
    const node = new ScriptedNode(state, cluster, { prefix, nodes: ["n1", "n2", "n3"], self: "n2" });
    try {
      await node.endVotingProbation();
      // n1 leads term 2, and n2 has just heard from it.
      node.deliver("n1", [
        { type: "append", term: 2, prevLogIndex: 0, prevLogTerm: 0, entries: [noopEntry(1, 2)], commit: 1 },
      ]);
      await body(node);
    } finally {
      await node.runtime.stop("test finished").catch(() => undefined);
    }
  });
}

/** Pre-votes n2 sent after the first `after` messages, once the transport had its turn. */
async function preVotesSince(node: ScriptedNode, after: number): Promise<number> {
  await yieldToEvents();
  return node.sent.slice(after).filter((message) => message.type === "preVote").length;
}

describe("a follower's own stall", () => {
  it("is not taken for its leader's silence: the heartbeat that waited behind it goes first", async () => {
    await withFollower("stall-heartbeat", async (node) => {
      const before = node.sent.length;
      // Three election timeouts pass in one go, then the heartbeat that was queued behind them arrives.
      node.nowMs += 3_000;
      node.deliver("n1", [{ type: "heartbeat", term: 2, commit: 1, readContext: null, round: 9 }]);
      node.advance(100);
      expect(await preVotesSince(node, before)).toBe(0);
      expect(node.runtime.status()).toMatchObject({ role: "follower", term: 2, leader: "n1" });
    });
  });

  it("delays a campaign by one tick only: with no word from the leader, the next tick times out", async () => {
    await withFollower("stall-silent", async (node) => {
      const before = node.sent.length;
      node.advance(3_000);
      expect(await preVotesSince(node, before)).toBe(0);
      node.advance(100);
      const preVote = await node.nextSent("preVote", { after: before });
      expect(preVote.term).toBe(3);
    });
  });
});
