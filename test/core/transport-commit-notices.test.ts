import { describe, expect, it } from "vitest";
import { CommitNotices, isCommitNotice } from "../../src/objects/transport/commit-notices";
import { ManualClock } from "../../src/objects/transport/manual-clock";
import type { AppendEntries, Message } from "../../src/replication/types";

const route = { from: "n1", to: "n2" };

function notice(commit: number, term = 2): AppendEntries {
  return { ...route, term, type: "append", prevLogIndex: commit, prevLogTerm: term, entries: [], commit };
}

function append(index: number, commit: number, term = 2): AppendEntries {
  return {
    ...route,
    term,
    type: "append",
    prevLogIndex: index - 1,
    prevLogTerm: term,
    entries: [{ index, term, kind: "normal", data: "{}" }],
    commit,
  };
}

const heartbeat: Message = { ...route, term: 2, type: "heartbeat", commit: 5, readContext: null, round: 3 };

/** Nothing to settle between timers: the notices send synchronously. */
const settle = (): Promise<void> => Promise.resolve();

function setup(holdMs = 10) {
  const clock = new ManualClock();
  const sent: { peer: string; messages: readonly Message[] }[] = [];
  const notices = new CommitNotices({ holdMs, timers: clock, send: (peer, messages) => sent.push({ peer, messages }) });
  return { clock, sent, notices };
}

describe("CommitNotices", () => {
  it("knows a notice: an append without entries", () => {
    expect(isCommitNotice(notice(3))).toBe(true);
    expect(isCommitNotice(append(4, 3))).toBe(false);
    expect(isCommitNotice(heartbeat)).toBe(false);
  });

  it("holds a batch of notices only, and sends the newest alone once the hold is over", async () => {
    const { clock, sent, notices } = setup(10);
    expect(notices.route("n2", [notice(3)])).toEqual([]);
    expect(notices.route("n2", [notice(4)])).toEqual([]);
    expect(notices.heldCount).toBe(1);
    await clock.advance(9, settle);
    expect(sent).toEqual([]);
    await clock.advance(1, settle);
    expect(sent).toEqual([{ peer: "n2", messages: [notice(4)] }]);
    expect(notices.heldCount).toBe(0);
    await clock.advance(100, settle);
    expect(sent).toHaveLength(1);
  });

  it("drops a held notice when the next append in its term carries at least its commit", async () => {
    const { clock, sent, notices } = setup();
    notices.route("n2", [notice(5)]);
    expect(notices.route("n2", [append(6, 5)])).toEqual([append(6, 5)]);
    await clock.advance(100, settle);
    expect(sent).toEqual([]);
  });

  it("sends a held notice first with any other message that does not make it redundant", async () => {
    const { clock, sent, notices } = setup();
    notices.route("n2", [notice(5)]);
    expect(notices.route("n2", [heartbeat])).toEqual([notice(5), heartbeat]);
    notices.route("n2", [notice(7)]);
    expect(notices.route("n2", [append(8, 6)])).toEqual([notice(7), append(8, 6)]);
    notices.route("n2", [notice(9, 2)]);
    expect(notices.route("n2", [append(10, 9, 3)])).toEqual([notice(9, 2), append(10, 9, 3)]);
    await clock.advance(100, settle);
    expect(sent).toEqual([]);
  });

  it("drops a notice in a batch with an append that makes it redundant, keeps it otherwise", () => {
    const { notices } = setup();
    expect(notices.route("n2", [append(6, 5), notice(5)])).toEqual([append(6, 5)]);
    expect(notices.route("n2", [heartbeat, notice(5)])).toEqual([heartbeat, notice(5)]);
    expect(notices.heldCount).toBe(0);
  });

  it("holds per peer, and forgets a peer's notice (and its timer) on request", async () => {
    const { clock, sent, notices } = setup();
    notices.route("n2", [notice(5)]);
    notices.route("n3", [{ ...notice(5), to: "n3" }]);
    expect(notices.heldCount).toBe(2);
    notices.forget("n3");
    await clock.advance(10, settle);
    expect(sent).toEqual([{ peer: "n2", messages: [notice(5)] }]);
    notices.route("n2", [notice(6)]);
    notices.clear();
    await clock.advance(10, settle);
    expect(sent).toHaveLength(1);
  });

  it("sends what it holds at once when told to, and holds nothing after (no timer left for an eviction)", async () => {
    const { clock, sent, notices } = setup();
    notices.route("n2", [notice(5)]);
    notices.sendAtOnce();
    expect(sent).toEqual([{ peer: "n2", messages: [notice(5)] }]);
    expect(notices.heldCount).toBe(0);
    expect(notices.route("n2", [notice(6)])).toEqual([notice(6)]);
    expect(notices.heldCount).toBe(0);
    await clock.advance(100, settle);
    expect(sent).toHaveLength(1);
  });

  it("passes every batch through unchanged with a hold of 0", () => {
    const { notices } = setup(0);
    expect(notices.route("n2", [notice(5)])).toEqual([notice(5)]);
    expect(notices.heldCount).toBe(0);
    expect(() => setup(-1)).toThrow(RangeError);
  });
});
