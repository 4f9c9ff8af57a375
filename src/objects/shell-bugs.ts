// Bug-injection switches for the Durable Object shell: each one puts back one bug that review or use found (see the
// finding it is named after), so that tests and the simulator can show they catch it. Only tests set them
// (RuntimeDeps.bugs, or the test-only ClusterNode.testSetBugs when test configuration enabled faults); production
// never does, and with none set the shell runs the fixed code.

export interface ShellBugs {
  /** Finding 1: read contexts are built from counters that restart at 0 in a new runtime, so a restarted node can reuse an old read's context and take its (stale) index. */
  readonly readContextRestartsAtZero?: boolean;
  /** Finding 2: backup and dumpSql are served by any node, without checking leadership or confirming a read index. */
  readonly backupFromAnyNode?: boolean;
  /** Finding 3: a runtime stopped with writes pending answers them NOT_MEMBER (a definite failure) instead of outcome unknown. */
  readonly stoppedWritesAnsweredNotMember?: boolean;
  /** Finding 3: a Ready that failed after persisting answers the writes waiting on it 500 INTERNAL instead of outcome unknown. */
  readonly readyFailureAnsweredInternal?: boolean;
  /** Finding 3: write waiters are keyed by index alone, so a write proposed again at a truncated index collides ("already waiting on N"). */
  readonly writeWaitersKeyedByIndex?: boolean;
  /** Finding 4: a runtime that broke inside a background callback is not reported broken; it keeps answering RPCs. */
  readonly brokenRuntimeKeepsServing?: boolean;
  /** Finding 5: strong reads are remembered in the replicated dedup table like writes. */
  readonly strongReadsRemembered?: boolean;
  /** Finding 6: freshness counts any append/heartbeat as leader contact, even one of a deposed leader's stale term. */
  readonly freshnessCountsStaleTerm?: boolean;
  /** Finding 7: the entry size guard counts UTF-16 characters instead of UTF-8 bytes. */
  readonly entrySizeCountsChars?: boolean;
  /** Finding 8: a snapshot image that failed to send is rebuilt, synchronously, on every probe. */
  readonly snapshotRebuiltOnEveryProbe?: boolean;
  /** Finding 9: a node whose storage is new votes at once (no voting probation, no census): a wiped voter may vote twice in a term. */
  readonly wipedVoterVotesAtOnce?: boolean;
  /** Finding 11: a leader that steps down leaves its pending writes waiting for their whole deadline. */
  readonly pendingWritesWaitAfterStepDown?: boolean;
  /** Finding 11: a leader that has not heard from a quorum for a while still accepts proposals that cannot commit. */
  readonly leaderAcceptsWithoutQuorum?: boolean;
  /** Finding 11: a node cut off from every peer makes waitForLeader and forwarded reads wait their whole deadline. */
  readonly cutOffNodeWaits?: boolean;
  /** Issue 9 ("also"): a new leader serves weak reads before it applied an entry of its own term. */
  readonly weakReadBeforeOwnTermApplied?: boolean;
  /** Issue 9 (simulator): a snapshot chunk whose answer is lost stalls the transfer for a fixed 5 s, and is not sent again. */
  readonly snapshotChunkWaitsFixedTimeout?: boolean;
  /** Issue 11 (simulator bug B): a Ready's entries and hard state are persisted outside one transaction. */
  readonly persistNotAtomic?: boolean;
  /** Issue 11 (a leader's entries held in memory): held entries are written on ticks only, not before the writes that act on their commit. */
  readonly heldEntriesWrittenOnTicksOnly?: boolean;
  /** Issue 11 (review of a volatile commit index): a snapshot's image and its record in the Raft log are installed in two transactions. */
  readonly snapshotInstallNotAtomic?: boolean;
  /** Issue 14 (leader plant): the leader sends snapshot and repair images of its state unverified, so a leader whose database went wrong outside Raft spreads it. */
  readonly snapshotImageUnverified?: boolean;
}

/** The names of every switch, for validating what a test sends over RPC. */
export const SHELL_BUG_NAMES: readonly (keyof ShellBugs)[] = [
  "readContextRestartsAtZero",
  "backupFromAnyNode",
  "stoppedWritesAnsweredNotMember",
  "readyFailureAnsweredInternal",
  "writeWaitersKeyedByIndex",
  "brokenRuntimeKeepsServing",
  "strongReadsRemembered",
  "freshnessCountsStaleTerm",
  "entrySizeCountsChars",
  "snapshotRebuiltOnEveryProbe",
  "wipedVoterVotesAtOnce",
  "pendingWritesWaitAfterStepDown",
  "leaderAcceptsWithoutQuorum",
  "cutOffNodeWaits",
  "weakReadBeforeOwnTermApplied",
  "snapshotChunkWaitsFixedTimeout",
  "persistNotAtomic",
  "heldEntriesWrittenOnTicksOnly",
  "snapshotInstallNotAtomic",
  "snapshotImageUnverified",
];

/** Checks switches sent by a test: an object of known names with boolean values. */
export function parseShellBugs(input: unknown): ShellBugs {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new Error("shell bugs: expected an object of boolean switches");
  }
  const out: Record<string, boolean> = {};
  for (const [name, value] of Object.entries(input)) {
    if (!(SHELL_BUG_NAMES as readonly string[]).includes(name)) {
      throw new Error(`shell bugs: unknown switch "${name}"`);
    }
    if (typeof value !== "boolean") {
      throw new Error(`shell bugs: switch "${name}" must be a boolean`);
    }
    out[name] = value;
  }
  return out as ShellBugs;
}
