// The invariants, checked from outside the code under test: only what the runtime persisted (its KV store), applied
// (its SQL state machine) and reports through its public API counts. Raft's Figure 3 properties, plus what a client
// is promised.

import type { HardState, LogEntry, NodeId, NodeStatus, SnapshotMeta } from "../../src/replication/types.js";

/** A node as the checkers see it: its persisted log and hard state, and its state machine's user data. */
export interface NodeView {
  readonly id: NodeId;
  /** The in-memory incarnation: a restarted node may legitimately forget its volatile state. */
  readonly incarnation: number;
  readonly store: {
    readonly hardState: HardState;
    readonly snapshot: { readonly meta: Pick<SnapshotMeta, "index" | "term"> } | null;
    readonly entries: readonly LogEntry[];
    readonly kv: ReadonlyMap<string, string>;
  };
  lastIndex(): number;
  entryAt(index: number): LogEntry | null;
  termAt(index: number): number | null;
}

export interface Violation {
  readonly kind: string;
  readonly detail: string;
  readonly atMs: number;
}

interface RegisteredEntry {
  readonly content: string;
  readonly previousTerm: number;
  readonly node: NodeId;
}

interface CommittedEntry {
  readonly term: number;
  readonly content: string;
  /**
   * An upper bound on the term in which the entry became committed: the term of the first node seen treating it
   * as committed (it learned that from a leader of that term or an earlier one). Leader Completeness binds the
   * leaders of later terms only: a leader of an earlier term, still in office, may rightly lack it.
   */
  knownCommittedByTerm: number;
}

function entryContent(entry: LogEntry): string {
  return `${entry.kind}|${entry.data}`;
}

/** A digest of the key-value state machine: the sorted pairs, hashed. */
export function stateDigest(kv: ReadonlyMap<string, string>): string {
  const keys = [...kv.keys()].sort();
  let hash = 0x811c9dc5;
  for (const key of keys) {
    const text = `${key}=${kv.get(key) ?? ""};`;
    for (let i = 0; i < text.length; i += 1) {
      hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
    }
  }
  return `${keys.length}:${(hash >>> 0).toString(16)}`;
}

export class Checkers {
  readonly violations: Violation[] = [];
  /** Every (index, term) any node ever persisted: its content and the term before it (Log Matching, inductively). */
  private readonly registry = new Map<string, RegisteredEntry>();
  /** "node term" -> the candidate it voted for (see checkVote). */
  private readonly votesGranted = new Map<string, NodeId>();
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly committed = new Map<number, CommittedEntry>();
  private readonly stateAtIndex = new Map<number, string>();
  /** Per node: the highest index already folded into `committed` from its hard state. */
  private readonly commitMarked = new Map<NodeId, number>();
  /** Per node: the (role, term) seen last in this incarnation. */
  private readonly lastSeen = new Map<NodeId, { role: NodeStatus["role"]; term: number; incarnation: number }>();
  private readonly currentLeaders = new Map<NodeId, number>();
  checksRun = 0;

  constructor(private readonly nowMs: () => number) {}

  fail(kind: string, detail: string): void {
    this.violations.push({ kind, detail, atMs: this.nowMs() });
  }

  get committedCount(): number {
    return this.committed.size;
  }

  committedTermAt(index: number): number | null {
    return this.committed.get(index)?.term ?? null;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Persisted logs.

  /** After a node persisted: Log Matching over everything ever persisted, terms never decrease along a log. */
  checkPersistedLog(node: NodeView, touchedFromIndex: number | null): void {
    this.checksRun += 1;
    const entries = node.store.entries;
    const first = entries[0];
    if (first === undefined || touchedFromIndex === null) {
      return;
    }
    const snapshot = node.store.snapshot?.meta ?? null;
    const expectedFirst = (snapshot?.index ?? 0) + 1;
    if (first.index !== expectedFirst) {
      this.fail(
        "log continuity",
        `${node.id}'s log starts at ${first.index}, right after its snapshot it should start at ${expectedFirst}`,
      );
      return;
    }
    const start = Math.max(0, touchedFromIndex - first.index - 1);
    for (let position = start; position < entries.length; position += 1) {
      const entry = entries[position] as LogEntry;
      const previous = position === 0 ? null : (entries[position - 1] as LogEntry);
      const previousTerm = previous?.term ?? snapshot?.term ?? 0;
      if (previous !== null && entry.index !== previous.index + 1) {
        this.fail("log continuity", `${node.id}'s log jumps from ${previous.index} to ${entry.index}`);
        return;
      }
      if (entry.term < previousTerm) {
        this.fail(
          "log matching",
          `${node.id}'s log has term ${entry.term} at ${entry.index} after term ${previousTerm}: a conflicting suffix survived`,
        );
        return;
      }
      this.registerEntry(node, entry, previousTerm);
    }
  }

  private registerEntry(node: NodeView, entry: LogEntry, previousTerm: number): void {
    const key = `${entry.index}:${entry.term}`;
    const content = entryContent(entry);
    const known = this.registry.get(key);
    if (known === undefined) {
      this.registry.set(key, { content, previousTerm, node: node.id });
      return;
    }
    if (known.content !== content) {
      this.fail(
        "log matching",
        `entry ${key} differs between ${known.node} (${known.content}) and ${node.id} (${content})`,
      );
    } else if (known.previousTerm !== previousTerm) {
      this.fail(
        "log matching",
        `entry ${key} follows term ${known.previousTerm} on ${known.node} but term ${previousTerm} on ${node.id}: the logs differ before a matching entry`,
      );
    }
  }

  /** Leader Append-Only: a leader never truncates or overwrites its own log. */
  checkLeaderAppendOnly(
    node: NodeView,
    leaderTermBefore: number | null,
    ready: { truncateFrom: number | null; firstNewIndex: number | null; installsSnapshot: boolean },
    lastIndexBefore: number,
  ): void {
    if (leaderTermBefore === null) {
      return;
    }
    const { truncateFrom, firstNewIndex } = ready;
    if (ready.installsSnapshot) {
      this.fail(
        "leader append-only",
        `${node.id}, leader of term ${leaderTermBefore}, installs a snapshot over its log`,
      );
    }
    if (truncateFrom !== null && truncateFrom <= lastIndexBefore) {
      this.fail(
        "leader append-only",
        `${node.id}, leader of term ${leaderTermBefore}, truncates its log from ${truncateFrom} (last index ${lastIndexBefore})`,
      );
    }
    if (firstNewIndex !== null && firstNewIndex <= lastIndexBefore) {
      this.fail(
        "leader append-only",
        `${node.id}, leader of term ${leaderTermBefore}, overwrites index ${firstNewIndex} (last index ${lastIndexBefore})`,
      );
    }
  }

  /** Folds a node's persisted commit index into the committed set. */
  noteCommitIndex(node: NodeView): void {
    const commit = node.store.hardState.commit;
    const from = (this.commitMarked.get(node.id) ?? 0) + 1;
    const upTo = Math.min(commit, node.lastIndex());
    for (let index = Math.max(from, (node.store.snapshot?.meta.index ?? 0) + 1); index <= upTo; index += 1) {
      const entry = node.entryAt(index);
      if (entry === null) {
        this.fail("commit", `${node.id} persisted commit ${commit} but has no entry at ${index}`);
        return;
      }
      this.markCommitted(node, entry.index, entry.term, entryContent(entry));
    }
    if (upTo >= from) {
      this.commitMarked.set(node.id, upTo);
    }
  }

  private markCommitted(
    node: NodeView,
    index: number,
    term: number,
    content: string | null,
    knownByTerm?: number,
  ): void {
    const knownBy = knownByTerm ?? node.store.hardState.term;
    const known = this.committed.get(index);
    if (known !== undefined) {
      if (known.term !== term || (content !== null && known.content !== "" && known.content !== content)) {
        this.fail(
          "state machine safety",
          `index ${index} committed with term ${known.term} (${known.content}), but ${node.id} has it committed with term ${term} (${content ?? "snapshot"})`,
        );
        return;
      }
      if (knownBy >= known.knownCommittedByTerm) {
        return;
      }
      known.knownCommittedByTerm = knownBy;
    } else {
      this.committed.set(index, {
        term,
        content: content ?? this.registry.get(`${index}:${term}`)?.content ?? "",
        knownCommittedByTerm: knownBy,
      });
    }
    // Leader Completeness, for leaders already in office when this commitment became known.
    for (const [leader, leaderTerm] of this.currentLeaders) {
      if (leaderTerm > knownBy) {
        this.expectInLeaderLog(leader, leaderTerm, index, term);
      }
    }
  }

  private leaderNodes = new Map<NodeId, NodeView>();

  private expectInLeaderLog(leaderId: NodeId, leaderTerm: number, index: number, term: number): void {
    const leader = this.leaderNodes.get(leaderId);
    if (leader === undefined) {
      return;
    }
    const snapshotIndex = leader.store.snapshot?.meta.index ?? 0;
    if (index < snapshotIndex) {
      return;
    }
    const have = leader.termAt(index);
    if (have !== term) {
      this.fail(
        "leader completeness",
        `${leaderId}, leader of term ${leaderTerm}, has ${have === null ? "no entry" : `term ${have}`} at ${index}, committed with term ${term}`,
      );
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Roles.

  /** After every step that touched a node: Election Safety, term monotonicity, Leader Completeness at election. */
  observeStatus(node: NodeView, status: NodeStatus): void {
    this.checksRun += 1;
    this.checkVote(node, status);
    if (status.id !== node.id) {
      this.fail("status", `${node.id} reports id ${status.id}`);
    }
    const seen = this.lastSeen.get(node.id);
    if (seen !== undefined && seen.incarnation === node.incarnation && status.term < seen.term) {
      this.fail("term monotonicity", `${node.id}'s term went from ${seen.term} back to ${status.term}`);
    }
    const becameLeader =
      status.role === "leader" &&
      !(seen?.role === "leader" && seen.term === status.term && seen.incarnation === node.incarnation);
    this.lastSeen.set(node.id, { role: status.role, term: status.term, incarnation: node.incarnation });
    if (status.role !== "leader") {
      this.currentLeaders.delete(node.id);
      this.leaderNodes.delete(node.id);
      return;
    }
    const holder = this.leaderOfTerm.get(status.term);
    if (holder !== undefined && holder !== node.id) {
      this.fail("election safety", `${node.id} and ${holder} both lead term ${status.term}`);
    }
    if (!becameLeader) {
      return;
    }
    this.leaderOfTerm.set(status.term, node.id);
    this.currentLeaders.set(node.id, status.term);
    this.leaderNodes.set(node.id, node);
    for (const [index, entry] of this.committed) {
      if (entry.knownCommittedByTerm < status.term) {
        this.expectInLeaderLog(node.id, status.term, index, entry.term);
      }
    }
  }

  /**
   * One vote per node and term, across restarts and storage wipes: the persisted vote of a node in a term never
   * changes to another candidate. A vote for itself counts only while it campaigns or leads in that term (a node with
   * new storage marks its vote in the highest term it heard of as spent with one; see src/objects/runtime/census.ts).
   */
  private checkVote(node: NodeView, status: NodeStatus): void {
    const { term, vote } = node.store.hardState;
    const campaigning = status.term === term && (status.role === "candidate" || status.role === "leader");
    if (vote === null || (vote === node.id && !campaigning)) {
      return;
    }
    const key = `${node.id} ${term}`;
    const earlier = this.votesGranted.get(key);
    if (earlier === undefined) {
      this.votesGranted.set(key, vote);
    } else if (earlier !== vote) {
      this.fail("double vote", `${node.id} voted for ${earlier} and then for ${vote} in term ${term}`);
    }
  }

  /**
   * A wiped node's votes for itself die with its candidacy: the tally that could have made it leader was in the lost
   * memory, so no grant to that candidacy, even one still in flight, is ever counted. (A candidacy that had already won
   * had a grant persisted with its term, and the census's term floor keeps the new incarnation out of that term: see
   * src/objects/runtime/census.ts.) Its votes for others stay recorded: a second, different one is the double vote
   * finding 9 is about. Two leaders in a term are still caught by election safety.
   */
  forgetOwnCandidacies(node: NodeId): void {
    for (const [key, vote] of this.votesGranted) {
      if (vote === node && key.startsWith(`${node} `)) {
        this.votesGranted.delete(key);
      }
    }
  }

  forgetNode(node: NodeView): void {
    this.currentLeaders.delete(node.id);
    this.leaderNodes.delete(node.id);
  }

  // -------------------------------------------------------------------------------------------------------------
  // State machines.

  /**
   * State Machine Safety: every node applies the same entry at each index, and reaches the same state. Captured when
   * the apply happens, recorded by the returned function once the event it happened in committed (an apply inside
   * an event the node crashed in never happened: a one-node leader commits and applies inside one event).
   */
  captureApplied(node: NodeView, entry: LogEntry, applied: boolean): () => void {
    const persisted = node.entryAt(entry.index);
    const knownBy = node.store.hardState.term;
    // A state machine ahead of its log (it installed a later image) skips the entry: its state is not the one at it.
    const digest = applied ? stateDigest(node.store.kv) : null;
    return () => {
      this.checksRun += 1;
      if (persisted === null || persisted.term !== entry.term || entryContent(persisted) !== entryContent(entry)) {
        this.fail(
          "apply",
          `${node.id} applies ${entry.index}:${entry.term} which is not the entry in its persisted log (${persisted === null ? "none" : `${persisted.index}:${persisted.term}`})`,
        );
      }
      this.markCommitted(node, entry.index, entry.term, entryContent(entry), knownBy);
      if (digest !== null) {
        this.expectState(node, entry.index, digest, "after applying");
      }
    };
  }

  /** Like captureApplied, for a snapshot image swapped in. */
  captureSnapshotInstalled(
    node: NodeView,
    meta: { readonly index: number; readonly term: number; readonly appliedIndex: number },
  ): () => void {
    const knownBy = node.store.hardState.term;
    const digest = stateDigest(node.store.kv);
    return () => {
      this.markCommitted(node, meta.index, meta.term, null, knownBy);
      // The image may be later than the snapshot's index: the state is the one at the image's applied index.
      this.expectState(node, meta.appliedIndex, digest, "after installing a snapshot");
      const marked = this.commitMarked.get(node.id) ?? 0;
      if (meta.index > marked) {
        this.commitMarked.set(node.id, meta.index);
      }
    };
  }

  private expectState(node: NodeView, index: number, digest: string, when: string): void {
    const known = this.stateAtIndex.get(index);
    if (known === undefined) {
      this.stateAtIndex.set(index, digest);
    } else if (known !== digest) {
      this.fail(
        "state machine safety",
        `${node.id}'s state at ${index} ${when} is ${digest}, another node had ${known}`,
      );
    }
  }

  /**
   * The end of a run: every acknowledged write is in the committed log. An entry carries its request id, so a
   * write is found by it (a retry answered from the dedup table names no index of its own). The same id may be
   * committed twice (a resend proposed before the first copy committed): applying deduplicates it, and the
   * linearizability check sees any second effect.
   */
  checkAcknowledged(
    acknowledged: readonly { readonly requestId: string; readonly what: string }[],
    entryIds: (content: string) => readonly string[],
  ): void {
    const committedIds = new Set<string>();
    for (const entry of this.committed.values()) {
      for (const id of entryIds(entry.content)) {
        committedIds.add(id);
      }
    }
    for (const ack of acknowledged) {
      if (!committedIds.has(ack.requestId)) {
        this.fail(
          "acknowledged write lost",
          `${ack.what} (request ${ack.requestId}) was acknowledged but no committed entry carries it`,
        );
      }
    }
  }

  /** The first committed index of every request id (a resent request takes effect at its first copy). */
  private firstCommittedIndexById(entryIds: (content: string) => readonly string[]): Map<string, number> {
    const byId = new Map<string, number>();
    for (const [index, entry] of [...this.committed.entries()].sort((a, b) => a[0] - b[0])) {
      for (const id of entryIds(entry.content)) {
        if (!byId.has(id)) {
          byId.set(id, index);
        }
      }
    }
    return byId;
  }

  /**
   * A read at level none with X-DHA-Raft-Index r (the client's own write) sees state at an applied index >= r, so
   * the value it reads was written at or after the client's own write: never an older value, never nothing.
   */
  checkReadYourWrites(
    reads: readonly {
      readonly opId: number;
      readonly key: string;
      readonly value: string | null;
      readonly own: { readonly requestId: string; readonly value: string };
    }[],
    writerOf: ReadonlyMap<string, string>,
    entryIds: (content: string) => readonly string[],
  ): void {
    if (reads.length === 0) {
      return;
    }
    const indexOf = this.firstCommittedIndexById(entryIds);
    for (const read of reads) {
      const ownIndex = indexOf.get(read.own.requestId);
      if (ownIndex === undefined || read.value === read.own.value) {
        continue;
      }
      const writer = read.value === null ? undefined : writerOf.get(read.value);
      const valueIndex = writer === undefined ? undefined : indexOf.get(writer);
      if (read.value === null || (valueIndex !== undefined && valueIndex < ownIndex)) {
        this.fail(
          "read your writes",
          `op ${read.opId} read ${read.key} = ${read.value ?? "nothing"} (written at ${valueIndex ?? "-"}) after the client's own write of ${read.own.value} at ${ownIndex}`,
        );
      }
    }
  }
}
