// The background consistency monitor of one node (README "Consistency monitor"). On the leader: proposes a
// checkpoint every N applied entries or T ms, compares every node's digests at each checkpoint with the majority of
// voters', marks a replica that differs DIVERGED (alert line, event, verdict entry in the log), steps down when its
// own digest is the one that differs, and repairs diverged replicas by sending them its own state as a snapshot
// image (automatically, or when an admin asks). On every node: reports its digests to the leader in the answers to
// its envelopes, and refuses reads while its own DIVERGED flag is set (the flag is set by applying the verdict).
import { withDeadline } from "../deadline";
import type { NodeStatus } from "../../replication/types";
import type { SnapshotImage } from "../state-machine-port";
import { nodeError } from "../node-failure";
import type { RuntimeCore } from "./types";
import { imageCheckpointDeadlineMs, tickMs, uncheckedImageAfterMs } from "../timing";
import { encodeMonitorCommand } from "../monitor/command";
import { resolveConsistency, type ConsistencyConfig } from "../monitor/config";
import { describeSlice } from "../monitor/digest";
import type {
  CheckpointRecord,
  CheckpointSummary,
  DivergedFlag,
  NodeConsistency,
  PeerConsistencyReport,
  RepairImageSent,
  RepairOutcome,
  ReplicaConsistency,
  ReplicaConsistencyStatus,
  UndecidedImage,
} from "../monitor/types";

/** Checkpoints a node reports in each answer, and the leader keeps comparing. */
const REPORTED_CHECKPOINTS = 2;
const COMPARED_CHECKPOINTS = 8;
/** A failed repair is tried again after this long (automatic mode). */
const REPAIR_RETRY_MS = 5_000;
/** The most a repair may take end to end before it counts as failed. */
const REPAIR_TIMEOUT_MS = 120_000;
/**
 * Image checkpoints (see ImageCheckpoint). Each digests every row on every node, so they are spaced: at least
 * IMAGE_CHECKPOINT_MIN_INTERVAL_MS apart and at least IMAGE_CHECKPOINT_CPU_SHARE times the leader's last whole-database
 * digest time apart (so they take at most a tenth of the CPU however large the database); each one that fails
 * (refused, undecided, expired) doubles the spacing, up to IMAGE_CHECKPOINT_MAX_BACKOFF_MS.
 */
export const IMAGE_CHECKPOINT_LIMITS = {
  minIntervalMs: 1_000,
  cpuShare: 10,
  maxBackoffMs: 300_000,
  /** A verified image is handed out for this long, then the next one is verified afresh. */
  reuseMs: 60_000,
  /**
   * A replica the log was compacted past is prepared an image for (see prepareImageForAbsentReplicas) while it was
   * heard from within this long: a brief absence is the common one, and each preparation digests every row on every
   * node (spaced as above), which a replica gone for good should not keep costing.
   */
  prepareForAbsentMs: 30_000,
} as const;

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
  /**
   * The last index the replica said its log no longer holds (or, from an older node, what it had applied): a repair
   * image must be at least as recent, since the replica replays its own log after the image.
   */
  compactedThrough: number;
}

/** What the monitor needs from PeerLinks: stream an image to a peer (as a repair); ok once it was installed. */
export type SendRepairImage = (options: {
  readonly peer: string;
  readonly image: SnapshotImage;
  readonly snapshotTerm: number;
}) => Promise<RepairImageSent>;

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
    ...(record.whole === true ? { whole: true } : {}),
  };
}

function sameDigests(a: CheckpointSummary, b: CheckpointSummary): boolean {
  return a.schemaDigest === b.schemaDigest && a.rowsDigest === b.rowsDigest;
}

function keyOf(summary: CheckpointSummary): string {
  return `${summary.schemaDigest}/${summary.rowsDigest}`;
}

/**
 * Verified images. A snapshot image replaces a replica's whole state, so a leader whose own database went wrong
 * outside Raft would spread the damage with it: to a lagging follower, which then sides with it at the next
 * checkpoint and out-votes the healthy replica (which the monitor would then "repair", losing acknowledged writes).
 * So, while the monitor is enabled, the leader sends an image (a snapshot or a repair) only once it was verified:
 * the leader proposes an image checkpoint, every node digests its whole database at that index, the leader builds
 * its image at exactly that index (right after applying it), and hands the image out only once a majority of voters
 * (itself included) reported the same digests. Otherwise the image is refused and nothing is sent:
 * - a majority differs from the leader: the leader is the odd one out and steps down (as at any checkpoint);
 * - no majority either way (a tie: in a cluster of three with one follower lagging, only two voters can digest):
 *   nobody can tell which state is right, so the leader raises an undecided consistencyAlert, flags it in its
 *   status (consistency.undecided), keeps serving writes through its majority, and retries with back-off; an
 *   operator decides (transfer leadership to the node they trust, then repair the other by hand: a repair asked
 *   for by an operator goes out unverified when the verification is undecided).
 * Not covered: when too few voters can apply an image checkpoint for a while (the others are out of reach, or need an
 * image themselves), the image goes out unchecked (logged): no image checkpoint could commit, so waiting would only
 * keep the cluster down. The digests cover the schema and the rows of user tables, not the replicated request-dedup
 * records.
 */
interface ImageCheckpoint {
  readonly index: number;
  readonly term: number;
  readonly proposedAtMs: number;
  /** The leader's image at `index`, built right after applying it (null until then, or if building failed). */
  image: SnapshotImage | null;
  builtAtMs: number | null;
  outcome: "pending" | "verified" | "refused";
}

/** This node's own checkpoint records and DIVERGED flag, as last read from storage. */
interface OwnRecords {
  readonly records: readonly CheckpointRecord[];
  readonly diverged: DivergedFlag | null;
}

export class ConsistencyMonitor {
  readonly config: ConsistencyConfig;
  private imageCheckpoint: ImageCheckpoint | null = null;
  /** Image checkpoints that failed in a row (the back-off's exponent) and when the next may be proposed. */
  private imageBackoff = { failures: 0, notBeforeMs: 0 };
  /** Called when an image checkpoint is verified or refused (snapshots waiting for it go out or give up at once). */
  onImageSettled: (() => void) | null = null;
  /** Whether snapshots and repairs take only verified images (node-runtime.ts): then images are prepared ahead. */
  imagesVerified = false;
  private undecided: UndecidedImage | null = null;
  /** Since when too few voters could apply an image checkpoint (null while enough can). */
  private shortOfVotersSinceMs: number | null = null;
  private imagesBuilt = 0;
  private uncheckedLoggedAtMs: number | null = null;
  private own: OwnRecords;
  private ownVersion = 0;
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

  private readOwn(): OwnRecords {
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

  /** Changes whenever what peerReport() says may have changed, but for compactedThrough (a peer-report cache key). */
  get ownRecordsVersion(): number {
    return this.ownVersion;
  }

  private setOwn(own: OwnRecords): void {
    this.own = own;
    this.ownVersion += 1;
  }

  /** What this node tells the leader in its answers. */
  peerReport(): PeerConsistencyReport {
    return {
      checkpoints: this.own.records.slice(-REPORTED_CHECKPOINTS).map(summarize),
      diverged: this.own.diverged,
      compactedThrough: this.core.raft.status().firstIndex - 1,
    };
  }

  /** A monitor entry was applied at `index` (checkpoint or verdict): re-read this node's records and flag. */
  entryApplied(index: number): void {
    const before = this.own.diverged;
    this.setOwn(this.readOwn());
    this.lastCheckpointAtMs = this.core.deps.clock.now();
    if (this.proposed !== null && index >= this.proposed.index) {
      this.proposed = null;
    }
    if (before === null && this.own.diverged !== null) {
      this.core.log("error", "nodeDiverged", { ...this.own.diverged });
    }
    const record = this.own.records.find((r) => r.index === index);
    if (record !== undefined && this.isLeader()) {
      if (record.whole === true) {
        this.buildImageAt(index);
      }
      this.compare(this.core.identity.node, summarize(record));
    }
  }

  /** Builds the image of this leader's image checkpoint right after applying it, so the image is the state digested. */
  private buildImageAt(index: number): void {
    const checkpoint = this.imageCheckpoint;
    if (checkpoint === null || checkpoint.index !== index || checkpoint.outcome !== "pending") {
      return;
    }
    try {
      this.imagesBuilt++;
      const image = this.core.sm.createSnapshotImage();
      if (image.appliedIndex !== index) {
        throw new Error(`the image reflects index ${image.appliedIndex}, not the image checkpoint's ${index}`);
      }
      checkpoint.image = image;
      checkpoint.builtAtMs = this.core.deps.clock.now();
    } catch (err) {
      this.settleImageCheckpoint(checkpoint, "refused");
      this.core.log("error", "snapshotFailed", {
        imageCheckpoint: index,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }

  /** This node's state was replaced (a snapshot or a repair): its records and flag went with it. */
  stateReplaced(options: { readonly repair: boolean; readonly imageIndex: number }): void {
    const wasDiverged = this.own.diverged;
    this.setOwn(this.readOwn());
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
      undecided: this.undecidedImage(),
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
      this.forgetImages();
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
    this.dropExpiredImage(nowMs);
    this.prepareImageForAbsentReplicas(status);
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

  /**
   * Leader: a replica whose next entry the log no longer holds will need a snapshot, and only a verified image may go
   * (verifiedImage). Verifying takes a round of the cluster and a digest of every row on every node: about 0.5 s of a
   * 1.6 s catch-up of a 50,000-row table in the benchmark. Start it now, while the replica is away, so that the image
   * is ready when it comes back (verifiedImage proposes an image checkpoint unless a fresh verified image covers the
   * log's start, one is pending, or the spacing says wait). A later compaction needs a later image: prepared again
   * while the replica was heard from within prepareForAbsentMs.
   */
  private prepareImageForAbsentReplicas(status: NodeStatus): void {
    if (!this.imagesVerified || this.imageCheckpoint?.outcome === "pending") {
      return;
    }
    const compactedIndex = status.firstIndex - 1;
    const tickIntervalMs = tickMs(this.core.identity.cluster);
    const cluster = this.core.identity.cluster;
    // Away: silent for an election timeout at least (a replica whose answer is merely in flight is not), and matched
    // by this leader before (a new leader knows no replica's log yet, nor whether a silent one was ever back).
    const needsImage = status.replicas.some((replica) => {
      const silentMs = replica.ticksSinceContact * tickIntervalMs;
      return (
        replica.matchedOnce &&
        replica.matchIndex < compactedIndex &&
        silentMs >= cluster.electionTimeoutMs &&
        silentMs <= IMAGE_CHECKPOINT_LIMITS.prepareForAbsentMs
      );
    });
    if (needsImage) {
      this.verifiedImage(compactedIndex);
    }
  }

  /**
   * Leader: while a replica that needs an image waits for the image checkpoint's image (being verified, or verified and
   * not yet sent), the log should not be compacted past the checkpoint (node-runtime.ts hands this to
   * RaftNode.holdCompaction, bounded there): a compaction past it would leave the image short of the log's start, to be
   * verified again at a later index, and under steady writes on a large database (a digest of several seconds against
   * a compaction every few seconds) that could go on for as long as the writes do. Null when nothing is waited for.
   */
  compactionHold(): number | null {
    const status = this.core.raft.status();
    const checkpoint = this.imageCheckpoint;
    const compactedIndex = status.firstIndex - 1;
    const nowMs = this.core.deps.clock.now();
    const usable =
      status.role === "leader" &&
      this.imagesVerified &&
      checkpoint !== null &&
      checkpoint.index >= compactedIndex &&
      (checkpoint.outcome === "pending" ||
        (checkpoint.outcome === "verified" &&
          checkpoint.image !== null &&
          nowMs - (checkpoint.builtAtMs ?? 0) < IMAGE_CHECKPOINT_LIMITS.reuseMs));
    const awaited =
      usable &&
      status.replicas.some(
        (replica) => replica.progress === "snapshot" || (replica.matchedOnce && replica.matchIndex < compactedIndex),
      );
    return awaited ? checkpoint.index : null;
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
    state.compactedThrough = report.compactedThrough ?? appliedIndex;
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
        compactedThrough: 0,
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
    this.judgeMajority(comparison);
    const checkpoint = this.imageCheckpoint;
    if (checkpoint?.index === comparison.index && checkpoint.outcome === "pending" && checkpoint.image !== null) {
      this.judgeImage(comparison, checkpoint);
    }
  }

  private judgeMajority(comparison: Comparison): void {
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

  // ---------------------------------------------------------------------------------------------------------
  // Verified images (see ImageCandidate)

  /**
   * Leader only: an image a majority verified, at `minIndex` or later; null while there is none (an image checkpoint
   * is then pending or proposed now, within IMAGE_CHECKPOINT_LIMITS); "unchecked" when none could ever commit.
   */
  verifiedImage(minIndex: number, options: { readonly byOperator?: boolean } = {}): SnapshotImage | null | "unchecked" {
    const status = this.core.raft.status();
    if (status.role !== "leader" || this.own.diverged !== null) {
      return null;
    }
    const nowMs = this.core.deps.clock.now();
    if (this.tooFewVotersFor(status, nowMs)) {
      return "unchecked";
    }
    const checkpoint = this.imageCheckpoint;
    if (
      checkpoint !== null &&
      checkpoint.outcome === "pending" &&
      nowMs >= this.imageCheckpointDeadlineMs(checkpoint)
    ) {
      this.expireImageCheckpoint(checkpoint);
    }
    if (checkpoint !== null && checkpoint.outcome === "pending") {
      return null;
    }
    if (
      checkpoint !== null &&
      checkpoint.outcome === "verified" &&
      checkpoint.image !== null &&
      checkpoint.index >= minIndex &&
      nowMs - (checkpoint.builtAtMs ?? 0) < IMAGE_CHECKPOINT_LIMITS.reuseMs
    ) {
      return checkpoint.image;
    }
    if (nowMs >= this.imageBackoff.notBeforeMs || (options.byOperator === true && checkpoint?.outcome !== "verified")) {
      this.proposeImageCheckpoint(status.term, nowMs);
    }
    return null;
  }

  /**
   * Whether too few voters (this leader included) can take entries from the log for an image checkpoint to commit,
   * and have been for uncheckedImageAfterMs (timing.ts; a node that just came back is not
   * counted until it answers: the wait keeps its silence from letting an unchecked image out).
   */
  private tooFewVotersFor(status: ReturnType<RuntimeCore["raft"]["status"]>, nowMs: number): boolean {
    const voters = status.membership.voters;
    const timeoutMs = this.core.identity.cluster.electionTimeoutMs;
    const able = status.replicas.filter(
      (replica) =>
        voters.includes(replica.id) &&
        replica.progress !== "snapshot" &&
        replica.nextIndex >= status.firstIndex &&
        replica.ticksSinceContact * this.core.tickIntervalMs < timeoutMs,
    ).length;
    if (able + (voters.includes(this.core.identity.node) ? 1 : 0) >= majorityOf(voters)) {
      this.shortOfVotersSinceMs = null;
      return false;
    }
    this.shortOfVotersSinceMs ??= nowMs;
    if (nowMs - this.shortOfVotersSinceMs < uncheckedImageAfterMs(this.core.identity.cluster)) {
      return false;
    }
    if (
      this.uncheckedLoggedAtMs === null ||
      nowMs - this.uncheckedLoggedAtMs >= IMAGE_CHECKPOINT_LIMITS.minIntervalMs * 10
    ) {
      this.uncheckedLoggedAtMs = nowMs;
      this.core.log("warn", "snapshotImageUnchecked", {
        reason: "too few voters can apply an image checkpoint",
        voters: voters.length,
        able: able + 1,
      });
    }
    return true;
  }

  /** How many images this runtime built for image checkpoints (each one reads the whole database). */
  imageCheckpointImagesBuilt(): number {
    return this.imagesBuilt;
  }

  private imageCheckpointDeadlineMs(checkpoint: ImageCheckpoint): number {
    return checkpoint.proposedAtMs + imageCheckpointDeadlineMs(this.core.identity.cluster);
  }

  private proposeImageCheckpoint(term: number, nowMs: number): void {
    const proposal = this.core.raft.propose(
      encodeMonitorCommand({
        dha: "checkpoint",
        table: null,
        after: null,
        maxRows: this.config.sliceRows,
        maxBytes: this.config.sliceBytes,
        whole: true,
      }),
    );
    if (!proposal.ok) {
      return;
    }
    this.imageCheckpoint = {
      index: proposal.index,
      term,
      proposedAtMs: nowMs,
      image: null,
      builtAtMs: null,
      outcome: "pending",
    };
    // Spaced by the last whole digest's cost as well as by failures (IMAGE_CHECKPOINT_LIMITS).
    const lastWholeMs = [...this.own.records].reverse().find((record) => record.whole === true)?.tookMs ?? 0;
    const spacingMs = Math.max(IMAGE_CHECKPOINT_LIMITS.minIntervalMs, IMAGE_CHECKPOINT_LIMITS.cpuShare * lastWholeMs);
    this.imageBackoff.notBeforeMs =
      nowMs + Math.min(IMAGE_CHECKPOINT_LIMITS.maxBackoffMs, spacingMs * 2 ** this.imageBackoff.failures);
    // No processReady here: the snapshot path calls this from inside a Ready; the proposal goes out with the next.
    this.core.log("info", "imageCheckpointProposed", {
      index: proposal.index,
      failuresInARow: this.imageBackoff.failures,
    });
  }

  /** Where the voters stand at an image checkpoint, from the leader's point of view. */
  private imageVotes(comparison: Comparison): { agreeing: string[]; differing: string[]; stillAble: number } | null {
    const self = this.core.identity.node;
    const own = comparison.digests.get(self);
    if (own === undefined) {
      return null;
    }
    const status = this.core.raft.status();
    const voters = status.membership.voters;
    const agreeing: string[] = [];
    const differing: string[] = [];
    for (const [node, summary] of comparison.digests) {
      if (voters.includes(node)) {
        (sameDigests(summary, own) ? agreeing : differing).push(node);
      }
    }
    // Voters yet to report that still can: those that take entries from the log (one waiting for an image cannot).
    const stillAble = status.replicas.filter(
      (replica) =>
        voters.includes(replica.id) && !comparison.digests.has(replica.id) && replica.progress !== "snapshot",
    ).length;
    return { agreeing, differing, stillAble };
  }

  /** Verified once a majority of voters (the leader included) agree; refused once they no longer can. */
  private judgeImage(comparison: Comparison, checkpoint: ImageCheckpoint): void {
    const votes = this.imageVotes(comparison);
    if (votes === null) {
      return;
    }
    const majority = majorityOf(this.core.raft.status().membership.voters);
    if (votes.agreeing.length >= majority) {
      this.settleImageCheckpoint(checkpoint, "verified");
      this.core.log("info", "snapshotImageVerified", { imageIndex: checkpoint.index, agreeing: votes.agreeing });
      return;
    }
    if (votes.agreeing.length + votes.stillAble < majority) {
      this.refuseImage(comparison, checkpoint, votes, "no majority can agree with the leader");
    }
  }

  /** A pending image checkpoint ran out of time: refused (undecided when voters disagreed and none won). */
  private expireImageCheckpoint(checkpoint: ImageCheckpoint): void {
    const comparison = this.comparisons.get(checkpoint.index);
    const votes = comparison === undefined ? null : this.imageVotes(comparison);
    if (comparison !== undefined && votes !== null && votes.differing.length > 0) {
      this.refuseImage(comparison, checkpoint, votes, "not verified in time");
      return;
    }
    this.settleImageCheckpoint(checkpoint, "refused");
    this.core.log("warn", "snapshotImageRefused", {
      imageIndex: checkpoint.index,
      reason: "not verified in time",
      agreeing: votes?.agreeing ?? [],
      failuresInARow: this.imageBackoff.failures,
    });
  }

  private refuseImage(
    comparison: Comparison,
    checkpoint: ImageCheckpoint,
    votes: { readonly agreeing: string[]; readonly differing: string[] },
    reason: string,
  ): void {
    this.settleImageCheckpoint(checkpoint, "refused");
    this.core.log("warn", "snapshotImageRefused", {
      imageIndex: checkpoint.index,
      reason,
      agreeing: votes.agreeing,
      differing: votes.differing,
      failuresInARow: this.imageBackoff.failures,
    });
    if (comparison.decided !== null || votes.differing.length === 0) {
      // A majority decided: against the leader, which then steps down (mismatch()); nothing undecided to report.
      return;
    }
    // No majority either way: nobody can tell which state is right, so no image goes out (an operator decides).
    this.mismatchesDetected++;
    this.undecided = {
      checkpointIndex: comparison.index,
      agreeing: votes.agreeing,
      differing: votes.differing,
      atMs: this.core.deps.clock.now(),
    };
    this.core.log("error", "consistencyAlert", {
      replica: null,
      leader: true,
      undecided: true,
      checkpointIndex: comparison.index,
      agreeing: votes.agreeing,
      differing: votes.differing,
      detail:
        `the whole database differs between ${votes.agreeing.join(", ")} and ${votes.differing.join(", ")} at ` +
        `image checkpoint ${comparison.index} and no majority agrees: no snapshot image is sent until an operator ` +
        `decides (transfer leadership to the node holding the right state, then repair the others)`,
    });
  }

  private settleImageCheckpoint(checkpoint: ImageCheckpoint, outcome: "verified" | "refused"): void {
    checkpoint.outcome = outcome;
    this.onImageSettled?.();
    if (outcome === "verified") {
      this.imageBackoff.failures = 0;
      this.undecided = null;
      return;
    }
    checkpoint.image = null;
    this.imageBackoff.failures = Math.min(this.imageBackoff.failures + 1, 30);
  }

  /** The tie the leader last found at an image checkpoint (null once an image was verified since). */
  undecidedImage(): UndecidedImage | null {
    return this.isLeader() ? this.undecided : null;
  }

  /** A verified image is handed out for reuseMs, no longer: then its memory (up to 64 MiB) is let go. */
  private dropExpiredImage(nowMs: number): void {
    const checkpoint = this.imageCheckpoint;
    if (
      checkpoint !== null &&
      checkpoint.image !== null &&
      nowMs - (checkpoint.builtAtMs ?? 0) >= IMAGE_CHECKPOINT_LIMITS.reuseMs
    ) {
      checkpoint.image = null;
    }
  }

  private forgetImages(): void {
    this.imageCheckpoint = null;
    this.imageBackoff = { failures: 0, notBeforeMs: 0 };
    this.undecided = null;
    this.shortOfVotersSinceMs = null;
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
  repair(peer: string, options: { readonly byOperator?: boolean } = {}): Promise<RepairOutcome> {
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
    const run = async (): Promise<RepairOutcome> => {
      const image = await this.repairImage(peer, state, {
        deadlineMs: startedAtMs + REPAIR_TIMEOUT_MS,
        byOperator: options.byOperator === true,
      });
      this.core.log("warn", "repairStarted", {
        peer,
        imageIndex: image.appliedIndex,
        chunks: image.chunks.length,
        ...(state.mark === null ? {} : { divergedAtCheckpoint: state.mark.index }),
      });
      const sent = await this.sendRepairImage({ peer, image, snapshotTerm: status.term });
      if (!sent.ok) {
        this.noteRepairFailure(peer, state, sent.error);
        throw sent.mayHaveInstalled
          ? nodeError("TIMEOUT", `repairing ${peer}: ${sent.error}; it may have installed the image all the same`, {
              retryable: true,
            })
          : nodeError(
              "NOT_REPAIRED",
              `${peer} was NOT repaired: the image did not reach it (${sent.error}); nothing was installed: ` +
                `ask again once it is reachable (GET /api/v1/cluster/health)`,
              { retryable: true },
            );
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

  /**
   * The image a repair sends: a verified one (see ImageCheckpoint), waited for until `deadlineMs`, polling every
   * tick; with the monitor off (or the snapshotImageUnverified bug switch) the leader's state as it is now. A repair
   * an operator asked for takes the leader's state unverified when the verification was undecided (a tie): the
   * operator chose this leader's state.
   */
  private async repairImage(
    peer: string,
    state: PeerState,
    options: { readonly deadlineMs: number; readonly byOperator: boolean },
  ): Promise<SnapshotImage> {
    const imageNow = (): SnapshotImage => {
      try {
        return this.core.sm.createSnapshotImage();
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.noteRepairFailure(peer, state, message);
        throw nodeError("INTERNAL", `the leader could not image its state: ${message}`, { retryable: true });
      }
    };
    if (!this.config.enabled || this.core.bugs.snapshotImageUnverified === true) {
      return imageNow();
    }
    const undecidedBefore = this.undecided;
    for (let polls = 0; ; polls++) {
      // At least as recent as the replica's compacted log: it replays its own log after the image.
      const image = this.verifiedImage(state.compactedThrough, { byOperator: options.byOperator && polls === 0 });
      if (image === "unchecked") {
        return imageNow();
      }
      if (image !== null) {
        return image;
      }
      if (options.byOperator && this.undecided !== null && this.undecided !== undecidedBefore) {
        this.core.log("warn", "repairUnverified", { peer, undecidedAtCheckpoint: this.undecided.checkpointIndex });
        return imageNow();
      }
      this.core.processReady();
      const status = this.core.raft.status();
      if (status.role !== "leader" || this.core.isStopped()) {
        this.noteRepairFailure(peer, state, "leadership was lost before a verified image was ready");
        throw nodeError("NOT_LEADER", `${this.core.identity.node} is no longer the leader`, { leader: status.leader });
      }
      const nowMs = this.core.deps.clock.now();
      if (nowMs >= options.deadlineMs) {
        const message = "no snapshot image was verified by a majority in time";
        this.noteRepairFailure(peer, state, message);
        throw nodeError("TIMEOUT", `repairing ${peer} failed: ${message}`, { retryable: true });
      }
      await new Promise<void>((resolve) => {
        this.core.deps.clock.schedule(resolve, Math.min(this.core.tickIntervalMs, options.deadlineMs - nowMs));
      });
    }
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
    this.forgetImages();
    this.lastCheckpointAtMs = this.core.deps.clock.now();
  }
}

function majorityOf(voters: readonly string[]): number {
  return Math.floor(voters.length / 2) + 1;
}

function divergedDetail(flag: DivergedFlag): string {
  return flag.schemaDiffers ? "the schema differs" : `rows differ in ${flag.slice}`;
}
