// Structural checks of incoming messages: the core ignores anything malformed rather than trusting the wire.
import type { LogEntry, Message, SnapshotMeta } from "./types.js";
import { membershipProblem } from "./membership.js";

const isIndex = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
const isId = (value: unknown): value is string => typeof value === "string" && value.length > 0;
const isNullableString = (value: unknown): boolean => value === null || typeof value === "string";

function isEntry(entry: unknown): entry is LogEntry {
  if (typeof entry !== "object" || entry === null) {
    return false;
  }
  const e = entry as Partial<LogEntry>;
  return (
    isIndex(e.index) &&
    e.index > 0 &&
    isIndex(e.term) &&
    e.term > 0 &&
    typeof e.data === "string" &&
    (e.kind === "normal" || e.kind === "noop" || e.kind === "config")
  );
}

function isSnapshotMeta(meta: unknown): meta is SnapshotMeta {
  if (typeof meta !== "object" || meta === null) {
    return false;
  }
  const m = meta as Partial<SnapshotMeta>;
  return isIndex(m.index) && isIndex(m.term) && membershipProblem(m.membership) === null;
}

/** True when `message` has every field its type needs, with sane values. */
export function isWellFormedMessage(message: unknown): message is Message {
  if (typeof message !== "object" || message === null) {
    return false;
  }
  const m = message as Record<string, unknown>;
  if (!isId(m.from) || !isId(m.to) || !isIndex(m.term)) {
    return false;
  }
  switch (m.type) {
    case "preVote":
    case "vote":
      return isIndex(m.lastLogIndex) && isIndex(m.lastLogTerm) && typeof m.transfer === "boolean";
    case "preVoteResponse":
    case "voteResponse":
      return typeof m.granted === "boolean";
    case "append":
      return (
        isIndex(m.prevLogIndex) &&
        isIndex(m.prevLogTerm) &&
        isIndex(m.commit) &&
        Array.isArray(m.entries) &&
        areContiguousEntries(m.entries, m.prevLogIndex, m.prevLogTerm, m.term)
      );
    case "appendResponse": {
      if (typeof m.success !== "boolean" || !isIndex(m.index)) {
        return false;
      }
      const hint = m.rejectHint as { index?: unknown; term?: unknown } | null | undefined;
      return (
        hint === null || (typeof hint === "object" && hint !== undefined && isIndex(hint.index) && isIndex(hint.term))
      );
    }
    case "heartbeat":
      return isIndex(m.commit) && isNullableString(m.readContext) && isIndex(m.round);
    case "heartbeatResponse":
      return isNullableString(m.readContext) && isIndex(m.round);
    case "snapshot":
      return isSnapshotMeta(m.snapshot);
    case "timeoutNow":
      return true;
    case "readIndex":
      return typeof m.context === "string";
    case "readIndexResponse":
      return typeof m.context === "string" && (m.index === null || isIndex(m.index));
    default:
      return false;
  }
}

/** Entries follow prevLogIndex one by one, with terms that never go down and never exceed the leader's term. */
function areContiguousEntries(
  entries: readonly unknown[],
  prevLogIndex: number,
  prevLogTerm: number,
  leaderTerm: number,
): boolean {
  let expectedIndex = prevLogIndex + 1;
  let previousTerm = prevLogTerm;
  for (const entry of entries) {
    if (!isEntry(entry) || entry.index !== expectedIndex || entry.term < previousTerm || entry.term > leaderTerm) {
      return false;
    }
    expectedIndex++;
    previousTerm = entry.term;
  }
  return true;
}
