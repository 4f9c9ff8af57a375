// The background consistency monitor of one node (README "Consistency monitor"). On the leader: proposes a
// checkpoint every N applied entries or T ms, compares every node's digests at each checkpoint with the majority of
// voters', marks a replica that differs DIVERGED (alert line, event, verdict entry in the log), steps down when its
// own digest is the one that differs, and repairs diverged replicas by sending them its own state as a snapshot
// image (automatically, or when an admin asks). On every node: reports its digests to the leader in the answers to
// its envelopes, and refuses reads while its own DIVERGED flag is set (the flag is set by applying the verdict).
import { withDeadline } from "../deadline";
import type { SnapshotImage } from "../state-machine-port";
import { nodeError } from "../node-failure";
import type { RuntimeCore } from "./types";
import { encodeMonitorCommand } from "../monitor/command";
import { resolveConsistency, type ConsistencyConfig } from "../monitor/config";
import { describeSlice } from "../monitor/digest";
import type {
  CheckpointRecord,
  CheckpointSummary,
  DivergedFlag,
  NodeConsistency,
  PeerConsistencyReport,
  RepairOutcome,
  ReplicaConsistency,
  ReplicaConsistencyStatus,
} from "../monitor/types";

/** Checkpoints a node reports in each answer, and the leader keeps comparing. */
const REPORTED_CHECKPOINTS = 2;
const COMPARED_CHECKPOINTS = 8;
/** A failed repair is tried again after this long (automatic mode). */
const REPAIR_RETRY_MS = 5_000;
/** The most a repair may take end to end before it counts as failed. */
const REPAIR_TIMEOUT_MS = 120_000;

interface Comparison {
  readonly index: number;
  readonly digests: Map<string, CheckpointSummary>;
  /** The majority's summary, once a majority of voters agree. */
  decided: CheckpointSummary | null;
  readonly judged: Set<string>;
  verdictProposed: boolean;
}

interface PeerState {
  /** Found to differ at this checkpoint; confirmed once the replica itself reports its DIVERGED flag. */
  mark: { readonly index: number; readonly detail: string; readonly verdictAfter: number; confirmed: boolean } | null;
  checkedIndex: number | null;
  repairing: Promise<RepairOutcome> | null;
  lastRepairAtMs: number | null;
  repairs: number;
  lastRepairError: string | null;
}

/** What the monitor needs from PeerLinks: stream an image to a peer (as a repair); true once it was installed. */
export type SendRepairImage = (options: {
  readonly peer: string;
  readonly image: SnapshotImage;
  readonly snapshotTerm: number;
}) => Promise<{ readonly ok: true } | { readonly ok: false; readonly error: string }>;

export function summarize(record: CheckpointRecord): CheckpointSummary {
  return {
    index: record.index,
    schemaDigest: record.schemaDigest,
    rowsDigest: record.rowsDigest,
    table: record.table,
    after: record.after,
    end: record.end,
    rows: record.rows,
    complete: record.complete,
  };
}

function sameDigests(a: CheckpointSummary, b: CheckpointSummary): boolean {
  return a.schemaDigest === b.schemaDigest && a.rowsDigest === b.rowsDigest;
}

function keyOf(summary: CheckpointSummary): string {
  return `${summary.schemaDigest}/${summary.rowsDigest}`;
}

export class ConsistencyMonitor {
  readonly config: ConsistencyConfig;
  private own: { records: readonly CheckpointRecord[]; diverged: DivergedFlag | null };
  private readonly comparisons = new Map<number, Comparison>();
  private readonly peerStates = new Map<string, PeerState>();
  private lastCheckpointAtMs: number;
  private proposed: { readonly index: number; readonly term: number } | null = null;
  private lastStepDownAtMs: number | null = null;
  private mismatchesDetected = 0;
  private repairsSent = 0;
  private repairFailures = 0;
  private repairsInstalled = 0;

  constructor(
    private readonly core: RuntimeCore,
    private readonly sendRepairImage: SendRepairImage,
  ) {
    this.config = resolveConsistency(core.identity.cluster.consistency);
    this.own = this.readOwn();
    this.lastCheckpointAtMs = core.deps.clock.now();
  }

  private readOwn(): { records: readonly CheckpointRecord[]; diverged: DivergedFlag | null } {
    const state = this.core.sm.consistencyState();
    return { records: state.records, diverged: state.diverged };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Every node

  /** Why this node must not serve reads now (it diverged), or null. */
  readRefusal(): string | null {
    const flag = this.own.diverged;
    if (flag === null) {
      return null;
    }
    return (
      `${this.core.identity.node} diverged from the majority at checkpoint ${flag.checkpointIndex} ` +
      `(${divergedDetail(flag)}); it serves no reads until it is repaired`
    );
  }

  /** What this node tells the leader in its answers. */
  peerReport(): PeerConsistencyReport {
    return {
      checkpoints: this.own.records.slice(-REPORTED_CHECKPOINTS).map(summarize),
      diverged: this.own.diverged,
    };
  }

  /** A monitor entry was applied at `index` (checkpoint or verdict): re-read this node's records and flag. */
  entryApplied(index: number): void {
    const before = this.own.diverged;
    this.own = this.readOwn();
    this.lastCheckpointAtMs = this.core.deps.clock.now();
    if (this.proposed !== null && index >= this.proposed.index) {
      this.proposed = null;
    }
    if (before === null && this.own.diverged !== null) {
      this.core.log("error", "nodeDiverged", { ...this.own.diverged });
    }
    const record = this.own.records.find((r) => r.index === index);
    if (record !== undefined && this.isLeader()) {
      this.compare(this.core.identity.node, summarize(record));
    }
  }

  /** This node's state was replaced (a snapshot or a repair): its records and flag went with it. */
  stateReplaced(options: { readonly repair: boolean; readonly imageIndex: number }): void {
    const wasDiverged = this.own.diverged;
    this.own = this.readOwn();
    if (options.repair) {
      this.repairsInstalled++;
      this.core.log("warn", "repairInstalled", {
        imageIndex: options.imageIndex,
        wasDiverged: wasDiverged !== null,
        ...(wasDiverged === null ? {} : { divergedAtCheckpoint: wasDiverged.checkpointIndex }),
      });
    }
  }

  status(): NodeConsistency {
    const last = this.own.records[this.own.records.length - 1];
    return {
      enabled: this.config.enabled,
      repair: this.config.repair,
      status: this.own.diverged === null ? "OK" : "DIVERGED",
      diverged: this.own.diverged,
      lastCheckpoint:
        last === undefined
          ? null
          : { index: last.index, slice: describeSlice(last), rows: last.rows, digestMs: last.tookMs },
      mismatchesDetected: this.mismatchesDetected,
      repairsSent: this.repairsSent,
      repairFailures: this.repairFailures,
      repairsInstalled: this.repairsInstalled,
    };
  }

  // ---------------------------------------------------------------------------------------------------------
  // The leader

  private isLeader(): boolean {
    return this.core.raft.status().role === "leader";
  }

  /** On every tick: a diverged leader hands over; a leader proposes a checkpoint when one is due; repairs retry. */
  ticked(): void {
    const status = this.core.raft.status();
    if (status.role !== "leader") {
      this.proposed = null;
      return;
    }
    const nowMs = this.core.deps.clock.now();
    if (this.own.diverged !== null) {
      this.stepDownDiverged(nowMs);
      return;
    }
    if (this.config.repair === "auto") {
      for (const [peer, state] of this.peerStates) {
        if (this.wantsAutomaticRepair(state, nowMs)) {
          void this.repair(peer).catch(() => undefined);
        }
      }
    }
    if (!this.config.enabled) {
      return;
    }
    if (this.proposed !== null && (this.proposed.term !== status.term || status.applied >= this.proposed.index)) {
      this.proposed = null;
    }
    if (this.proposed !== null) {
      return;
    }
    const last = this.own.records[this.own.records.length - 1];
    const entriesSince = status.applied - (last?.index ?? 0);
    if (entriesSince < this.config.everyEntries && nowMs - this.lastCheckpointAtMs < this.config.everyMs) {
      return;
    }
    const next = last?.next ?? { table: null, after: null };
    const proposal = this.core.raft.propose(
      encodeMonitorCommand({
        dha: "checkpoint",
        table: next.table,
        after: next.after,
        maxRows: this.config.sliceRows,
        maxBytes: this.config.sliceBytes,
      }),
    );
    if (proposal.ok) {
      this.proposed = { index: proposal.index, term: proposal.term };
      this.lastCheckpointAtMs = nowMs;
    }
  }

  private wantsAutomaticRepair(state: PeerState, nowMs: number): boolean {
    return (
      state.mark !== null &&
      state.mark.confirmed &&
      state.repairing === null &&
      (state.lastRepairAtMs === null || nowMs - state.lastRepairAtMs >= REPAIR_RETRY_MS)
    );
  }

  private stepDownDiverged(nowMs: number): void {
    const timeoutMs = this.core.identity.cluster.electionTimeoutMs;
    if (this.lastStepDownAtMs !== null && nowMs - this.lastStepDownAtMs < timeoutMs) {
      return;
    }
    this.lastStepDownAtMs = nowMs;
    this.core.log("error", "divergedLeaderSteppingDown", { ...this.own.diverged });
    this.core.raft.stepDown();
  }

  /** The leader heard from `peer`: its checkpoints and its own DIVERGED flag. */
  recordPeerReport(peer: string, report: PeerConsistencyReport | undefined, appliedIndex: number): void {
    if (report === undefined || !this.isLeader()) {
      return;
    }
    const state = this.peerState(peer);
    if (report.diverged !== null) {
      if (state.mark === null) {
        // Found by an earlier leader: the replica applied the verdict and says so itself.
        state.mark = {
          index: report.diverged.checkpointIndex,
          detail: divergedDetail(report.diverged),
          verdictAfter: report.diverged.verdictIndex,
          confirmed: true,
        };
        this.core.log("warn", "replicaDiverged", { peer, source: "selfReport", ...report.diverged });
      }
      state.mark.confirmed = true;
    } else if (state.mark !== null && (state.mark.confirmed || appliedIndex > state.mark.verdictAfter)) {
      // It carried the flag and no longer does (its state was replaced), or it applied past the verdict without
      // taking the flag (it holds no record of that checkpoint any more): no longer DIVERGED; the next checkpoint
      // checks it again.
      this.core.log("info", "replicaDivergenceCleared", { peer, checkpointIndex: state.mark.index });
      state.mark = null;
      state.checkedIndex = null;
    }
    for (const summary of report.checkpoints) {
      this.compare(peer, summary);
    }
  }

  private peerState(peer: string): PeerState {
    let state = this.peerStates.get(peer);
    if (state === undefined) {
      state = {
        mark: null,
        checkedIndex: null,
        repairing: null,
        lastRepairAtMs: null,
        repairs: 0,
        lastRepairError: null,
      };
      this.peerStates.set(peer, state);
    }
    return state;
  }

  private compare(node: string, summary: CheckpointSummary): void {
    let comparison = this.comparisons.get(summary.index);
    if (comparison === undefined) {
      if (this.comparisons.size > 0 && summary.index < Math.min(...this.comparisons.keys())) {
        return;
      }
      comparison = {
        index: summary.index,
        digests: new Map(),
        decided: null,
        judged: new Set(),
        verdictProposed: false,
      };
      this.comparisons.set(summary.index, comparison);
      while (this.comparisons.size > COMPARED_CHECKPOINTS) {
        this.comparisons.delete(Math.min(...this.comparisons.keys()));
      }
    }
    if (!comparison.digests.has(node)) {
      comparison.digests.set(node, summary);
    }
    this.judge(comparison);
  }

  private judge(comparison: Comparison): void {
    const voters = this.core.raft.status().membership.voters;
    if (comparison.decided === null) {
      const counts = new Map<string, { count: number; summary: CheckpointSummary }>();
      for (const [node, summary] of comparison.digests) {
        if (!voters.includes(node)) {
          continue;
        }
        const entry = counts.get(keyOf(summary)) ?? { count: 0, summary };
        entry.count++;
        counts.set(keyOf(summary), entry);
      }
      const majority = Math.floor(voters.length / 2) + 1;
      for (const { count, summary } of counts.values()) {
        if (count >= majority) {
          comparison.decided = summary;
        }
      }
    }
    const decided = comparison.decided;
    if (decided === null) {
      return;
    }
    for (const [node, summary] of comparison.digests) {
      if (comparison.judged.has(node)) {
        continue;
      }
      comparison.judged.add(node);
      if (sameDigests(summary, decided)) {
        if (node !== this.core.identity.node) {
          const state = this.peerState(node);
          state.checkedIndex = Math.max(state.checkedIndex ?? 0, comparison.index);
        }
        continue;
      }
      this.mismatch(node, comparison, summary, decided);
    }
  }

  private mismatch(node: string, comparison: Comparison, theirs: CheckpointSummary, majority: CheckpointSummary): void {
    this.mismatchesDetected++;
    const schemaDiffers = theirs.schemaDigest !== majority.schemaDigest;
    const detail = schemaDiffers
      ? `the schema differs (and ${describeSlice(majority)} was digested)`
      : `rows differ in ${describeSlice(majority)}; the replica digested ${describeSlice(theirs)}`;
    const self = node === this.core.identity.node;
    // The alert line operators page on: one JSON line naming the node, the checkpoint, the table and the range.
    this.core.log("error", "consistencyAlert", {
      replica: node,
      leader: self,
      checkpointIndex: comparison.index,
      schemaDiffers,
      table: majority.table,
      after: majority.after,
      through: majority.end,
      rows: majority.rows,
      detail,
    });
    if (!comparison.verdictProposed) {
      const proposal = this.core.raft.propose(
        encodeMonitorCommand({
          dha: "verdict",
          index: comparison.index,
          schemaDigest: majority.schemaDigest,
          rowsDigest: majority.rowsDigest,
        }),
      );
      comparison.verdictProposed = proposal.ok;
    }
    if (self) {
      // Its own database is the odd one out: it must not lead (its answers come from that database).
      this.core.log("error", "divergedLeaderSteppingDown", { checkpointIndex: comparison.index, detail });
      this.lastStepDownAtMs = this.core.deps.clock.now();
      this.core.raft.stepDown();
    } else {
      const state = this.peerState(node);
      state.mark = {
        index: comparison.index,
        detail,
        verdictAfter: this.core.raft.status().lastIndex,
        confirmed: false,
      };
      this.core.log("warn", "replicaDiverged", {
        peer: node,
        source: "checkpoint",
        checkpointIndex: comparison.index,
        detail,
      });
    }
    this.core.processReady();
  }

  /** The leader's view of a replica, for the status report. */
  replicaConsistency(peer: string): ReplicaConsistency {
    const state = this.peerStates.get(peer);
    if (state === undefined) {
      return {
        status: "UNCHECKED",
        checkedIndex: null,
        divergedAtIndex: null,
        detail: null,
        repairs: 0,
        lastRepairError: null,
      };
    }
    const status: ReplicaConsistencyStatus =
      state.mark !== null
        ? state.repairing !== null
          ? "REPAIRING"
          : "DIVERGED"
        : state.checkedIndex === null
          ? "UNCHECKED"
          : "CONSISTENT";
    return {
      status,
      checkedIndex: state.checkedIndex,
      divergedAtIndex: state.mark?.index ?? null,
      detail: state.mark?.detail ?? null,
      repairs: state.repairs,
      lastRepairError: state.lastRepairError,
    };
  }

  /**
   * Leader only: replaces `peer`'s state with this node's (a snapshot image streamed as a repair) and resolves once
   * the peer installed it. One repair per peer at a time: a second call joins the first.
   */
  repair(peer: string): Promise<RepairOutcome> {
    const status = this.core.raft.status();
    if (status.role !== "leader") {
      return Promise.reject(
        nodeError("NOT_LEADER", `${this.core.identity.node} is not the leader`, { leader: status.leader }),
      );
    }
    if (peer === this.core.identity.node) {
      return Promise.reject(
        nodeError(
          "INVALID_REQUEST",
          `${peer} is the leader: a leader is never repaired from itself; transfer leadership first, then repair it`,
          { retryable: false },
        ),
      );
    }
    if (!status.membership.voters.includes(peer) && !status.membership.learners.includes(peer)) {
      return Promise.reject(
        nodeError("NOT_MEMBER", `${peer} is not a member of cluster ${this.core.identity.cluster.name}`, {
          retryable: false,
        }),
      );
    }
    const state = this.peerState(peer);
    if (state.repairing !== null) {
      return state.repairing;
    }
    const startedAtMs = this.core.deps.clock.now();
    state.lastRepairAtMs = startedAtMs;
    let image: SnapshotImage;
    try {
      image = this.core.sm.createSnapshotImage();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.noteRepairFailure(peer, state, message);
      return Promise.reject(
        nodeError("INTERNAL", `the leader could not image its state: ${message}`, { retryable: true }),
      );
    }
    this.core.log("warn", "repairStarted", {
      peer,
      imageIndex: image.appliedIndex,
      chunks: image.chunks.length,
      ...(state.mark === null ? {} : { divergedAtCheckpoint: state.mark.index }),
    });
    const run = async (): Promise<RepairOutcome> => {
      const sent = await this.sendRepairImage({ peer, image, snapshotTerm: status.term });
      if (!sent.ok) {
        this.noteRepairFailure(peer, state, sent.error);
        throw nodeError("TIMEOUT", `repairing ${peer} failed: ${sent.error}`, { retryable: true });
      }
      const durationMs = this.core.deps.clock.now() - startedAtMs;
      state.repairs++;
      state.lastRepairError = null;
      state.checkedIndex = null;
      this.repairsSent++;
      this.core.log("warn", "replicaRepaired", { peer, imageIndex: image.appliedIndex, durationMs });
      return { node: peer, imageIndex: image.appliedIndex, durationMs };
    };
    const running = withDeadline(run(), {
      timeoutMs: REPAIR_TIMEOUT_MS,
      what: `the repair of ${peer}`,
      timers: this.core.deps.clock,
      onTimeout: () =>
        nodeError("TIMEOUT", `the repair did not finish within ${REPAIR_TIMEOUT_MS} ms`, { retryable: true }),
    }).finally(() => {
      state.repairing = null;
    });
    state.repairing = running;
    return running;
  }

  private noteRepairFailure(peer: string, state: PeerState, error: string): void {
    this.repairFailures++;
    state.lastRepairError = error;
    this.core.log("error", "repairFailed", { peer, error });
  }

  /** Forgets what it knew of peers that left the membership. */
  membershipChanged(members: ReadonlySet<string>): void {
    for (const peer of [...this.peerStates.keys()]) {
      if (!members.has(peer)) {
        this.peerStates.delete(peer);
      }
    }
  }

  /** Became leader: a fresh view (digests are compared from the next reports on); the period restarts now. */
  becameLeader(): void {
    this.comparisons.clear();
    this.peerStates.clear();
    this.proposed = null;
    this.lastCheckpointAtMs = this.core.deps.clock.now();
  }
}

function divergedDetail(flag: DivergedFlag): string {
  return flag.schemaDiffers ? "the schema differs" : `rows differ in ${flag.slice}`;
}
