// The one Ready loop (src/replication/ready-loop.ts) that NodeRuntime and the core's tests share: it must hand each
// part of a Ready to its port in the contract's order, advance only a fully handled Ready, and stay bounded.
import { describe, expect, it } from "vitest";
import { handleReadies, MAX_READIES_PER_LOOP, type ReadyPorts, type ReadySource } from "../../src/replication/index.js";
import type { Ready } from "../../src/replication/types.js";

const MEMBERSHIP = { voters: ["a", "b", "c"], learners: [] };

/** A Ready with every part set, so that every step has something to do. */
const FULL_READY: Ready = {
  snapshot: { index: 4, term: 2, membership: MEMBERSHIP },
  truncateFrom: 5,
  entries: [{ index: 5, term: 3, kind: "normal", data: "x" }],
  hardState: { term: 3, vote: "a", commit: 5 },
  messages: [{ type: "heartbeatResponse", from: "b", to: "a", term: 3, readContext: null, round: 1 }],
  committedEntries: [{ index: 5, term: 3, kind: "normal", data: "x" }],
  compact: { index: 5, term: 3, membership: MEMBERSHIP },
  readStates: [{ context: "r1", index: 5 }],
  failedReads: [],
  events: [{ kind: "becameFollower", term: 3, leader: "a" }],
};

/** A core that hands out `readies` one at a time (or the same one forever), recording what the loop asks of it. */
function scriptedCore(readies: readonly Ready[] | "forever"): ReadySource & { calls: string[]; advanced: Ready[] } {
  const calls: string[] = [];
  const advanced: Ready[] = [];
  let next = 0;
  let out: Ready | null = null;
  return {
    calls,
    advanced,
    hasReady: () => out === null && (readies === "forever" || next < readies.length),
    ready: () => {
      calls.push("ready");
      out = readies === "forever" ? FULL_READY : (readies[next++] as Ready);
      return out;
    },
    advance: (ready) => {
      expect(ready).toBe(out);
      calls.push("advance");
      advanced.push(ready);
      out = null;
    },
  };
}

/** Ports that append their name to `calls`. */
function recordingPorts(calls: string[]): ReadyPorts {
  return {
    received: () => calls.push("received"),
    installSnapshot: () => calls.push("installSnapshot"),
    persist: () => calls.push("persist"),
    send: () => calls.push("send"),
    apply: () => calls.push("apply"),
    compact: () => calls.push("compact"),
    settleReads: () => calls.push("settleReads"),
    observeEvents: () => calls.push("observeEvents"),
  };
}

describe("the one Ready loop", () => {
  it("hands every part of a Ready to its port in the contract's order, then advances it", () => {
    const core = scriptedCore([FULL_READY, { ...FULL_READY, snapshot: null, compact: null }]);
    expect(handleReadies(core, recordingPorts(core.calls))).toBe(2);
    const everyStep = ["persist", "send", "apply"];
    expect(core.calls).toEqual([
      ...["ready", "received", "installSnapshot", ...everyStep, "compact", "settleReads", "observeEvents", "advance"],
      ...["ready", "received", ...everyStep, "settleReads", "observeEvents", "advance"],
    ]);
  });

  it("passes each port its part of the Ready", () => {
    const core = scriptedCore([FULL_READY]);
    const seen: Partial<Record<keyof ReadyPorts, unknown>> = {};
    handleReadies(core, {
      installSnapshot: (snapshot) => (seen.installSnapshot = snapshot),
      persist: (ready) => (seen.persist = [ready.truncateFrom, ready.entries, ready.hardState]),
      send: (messages) => (seen.send = messages),
      apply: (entries) => (seen.apply = entries),
      compact: (meta) => (seen.compact = meta),
      settleReads: (ready) => (seen.settleReads = [ready.readStates, ready.failedReads]),
      observeEvents: (events) => (seen.observeEvents = events),
    });
    expect(seen).toEqual({
      installSnapshot: FULL_READY.snapshot,
      persist: [FULL_READY.truncateFrom, FULL_READY.entries, FULL_READY.hardState],
      send: FULL_READY.messages,
      apply: FULL_READY.committedEntries,
      compact: FULL_READY.compact,
      settleReads: [FULL_READY.readStates, FULL_READY.failedReads],
      observeEvents: FULL_READY.events,
    });
  });

  it("never advances a Ready whose handling threw, and takes no other after it", () => {
    const core = scriptedCore([FULL_READY, FULL_READY]);
    const ports = recordingPorts(core.calls);
    ports.apply = () => {
      throw new Error("apply failed");
    };
    expect(() => handleReadies(core, ports)).toThrow("apply failed");
    expect(core.advanced).toEqual([]);
    expect(core.calls.filter((call) => call === "ready")).toHaveLength(1);
    expect(core.calls).not.toContain("compact");
  });

  it("stops after MAX_READIES_PER_LOOP Readys, leaving the rest for the next loop", () => {
    const core = scriptedCore("forever");
    expect(handleReadies(core, recordingPorts([]))).toBe(MAX_READIES_PER_LOOP);
    expect(core.advanced).toHaveLength(MAX_READIES_PER_LOOP);
    expect(core.hasReady()).toBe(true);
  });
});
