// Durations derived from the cluster's timing (its heartbeat interval and election timeout), in one place, each with
// the reason for its ratio, so that a change to the configuration moves every one of them together and nobody
// multiplies the configuration on their own. The core counts ticks: one tick is one heartbeat interval (config.ts).

/** The two numbers every duration below derives from (a ClusterConfig has both). */
export interface ClusterTiming {
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
}

/**
 * How long an election normally takes to end: two election timeouts. A timer fires after one to one and a half
 * timeouts (randomized), and a split vote costs one more round; voters that cannot reach each other stay leaderless
 * longer.
 * Health stops counting a leaderless voter after it; a client told to retry after an election waits this long.
 */
export function electionWindowMs(timing: ClusterTiming): number {
  return 2 * timing.electionTimeoutMs;
}

/** Retry-After of an election-related 503: one election window, in whole seconds (at least 1). */
export function electionRetryAfterSeconds(timing: ClusterTiming): number {
  return Math.max(1, Math.ceil(electionWindowMs(timing) / 1000));
}

/**
 * A node is in touch with its leader when it heard from it within one election timeout: the same bound after which
 * a follower would campaign, so a node past it may be about to lose that leader.
 */
export function isInTouchWithLeader(timing: ClusterTiming, lastLeaderContactMs: number): boolean {
  return lastLeaderContactMs <= timing.electionTimeoutMs;
}

/**
 * A leader counts a voter as able to acknowledge writes while it heard from it less than this long ago: one election
 * timeout in whole ticks, CheckQuorum's own bound (a leader that heard from fewer voters than a quorum within it steps
 * down). A replica whose deliveries fail now and then (RECONNECTING after one lost message) still answers within it.
 */
export function checkQuorumWindowMs(timing: ClusterTiming): number {
  return electionTimeoutTicks(timing) * tickMs(timing);
}

/**
 * After a restart a node stays quiet (no stale-contact findings) for one election window plus a tick: long enough
 * for the cluster to elect a leader and for that leader's first heartbeat to arrive.
 */
export function startupQuietWindowMs(timing: ClusterTiming): number {
  return electionWindowMs(timing) + timing.heartbeatIntervalMs;
}

/**
 * "Recently" heard from a quorum, in ticks: three quarters of an election timeout (at least two ticks). Shorter than
 * CheckQuorum's full timeout, so a cut-off leader lets go of its writes before it steps down; long enough that a busy
 * machine's late heartbeats are not taken for a cut.
 */
export function recentContactTicks(timing: ClusterTiming): number {
  return Math.max(2, Math.ceil((timing.electionTimeoutMs * 3) / 4 / timing.heartbeatIntervalMs));
}

/**
 * The node-to-node transport's bounds. One call may take an election timeout (within 50 ms to 1 s): a peer slower
 * than that is as good as gone for Raft, and waiting longer only delays the retry. A delivery, retries included, may
 * take one and a half (75 ms to 1.5 s): one retry fits, and a message older than that is superseded by the next
 * heartbeat. The breaker leaves a failing peer alone for half a heartbeat interval, each time, so that the next
 * heartbeat finds it past its open period and goes out as the probe: a peer gone for good gets one probe per
 * heartbeat, as a live one gets a heartbeat, and never more than one call at a time, which is what the breaker saves
 * (no pile of calls into a peer that does not answer). Not longer: after a cut heals, both sides' breakers are open,
 * and the first probe of either starts the catch-up (the other side takes the call as contact); a cut-off follower
 * sends little, so the wait is mostly what is left of the leader's open period. In the benchmark's catch-ups heal to
 * first contact took 67 to 574 ms with open periods of up to half an election timeout, 12 to 248 ms (median 128, nine
 * catch-ups) with up to a quarter, 22 to 192 ms (median 45, fifteen) with one heartbeat interval (a probe that just
 * missed a heartbeat waited for the next), and 8 to 87 ms (median 22, eight) with half of one, against 200 to 430 ms
 * for streaming and installing the image of a 25,000-row table. A probe may stay unanswered as long as one delivery
 * may take with its retry (deadlineMs) before it counts as failed: a slow peer is not taken for a dead one.
 */
export function peerTransportTiming(timing: ClusterTiming): {
  readonly callTimeoutMs: number;
  readonly deadlineMs: number;
  readonly breakerMinOpenMs: number;
  readonly breakerMaxOpenMs: number;
  readonly breakerProbeTimeoutMs: number;
} {
  const breakerMaxOpenMs = Math.max(1, Math.round(timing.heartbeatIntervalMs / 2));
  const deadlineMs = Math.max(75, Math.min(1500, timing.electionTimeoutMs * 1.5));
  return {
    callTimeoutMs: Math.max(50, Math.min(1000, timing.electionTimeoutMs)),
    deadlineMs,
    breakerMinOpenMs: breakerMaxOpenMs,
    breakerMaxOpenMs,
    breakerProbeTimeoutMs: deadlineMs,
  };
}

/**
 * The timeout to hand a node that the caller waits `callerTimeoutMs` for: shorter by a margin of at least one
 * heartbeat interval (the step in which nodes wait), so that the node answers TIMEOUT itself, a definite answer,
 * before the caller stops listening. At least 1 ms.
 */
export function nodeTimeoutWithinMs(
  timing: Pick<ClusterTiming, "heartbeatIntervalMs">,
  options: { readonly callerTimeoutMs: number; readonly minMarginMs: number },
): number {
  const marginMs = Math.max(options.minMarginMs, timing.heartbeatIntervalMs);
  return Math.max(1, Math.floor(options.callerTimeoutMs - marginMs));
}

/**
 * How long one node may spend on a read that another node could serve: `electionTimeouts` election timeouts (at least
 * 1 ms). A node cut off from the majority cannot confirm a read index, and within a few election timeouts a connected
 * node can: past that, another node is the better bet.
 */
export function readElsewhereAfterMs(
  timing: Pick<ClusterTiming, "electionTimeoutMs">,
  options: { readonly electionTimeouts: number },
): number {
  return Math.max(1, options.electionTimeouts * timing.electionTimeoutMs);
}

/**
 * How often to ask a node whether it has applied up to an index: once a heartbeat interval. Followers learn of new
 * commits with the leader's heartbeats (or appends), so asking more often learns nothing new.
 */
export function appliedPollIntervalMs(timing: Pick<ClusterTiming, "heartbeatIntervalMs">): number {
  return timing.heartbeatIntervalMs;
}

/** One core tick is one heartbeat interval: the leader heartbeats every tick, and the core counts in ticks. */
export function tickMs(timing: ClusterTiming): number {
  return timing.heartbeatIntervalMs;
}

/**
 * The fewest ticks an election timeout may span: with fewer, one late heartbeat would start an election (config.ts
 * refuses such a configuration).
 */
export const MIN_ELECTION_TICKS = 3;

/** The election timeout in ticks, rounded (validation already keeps it at MIN_ELECTION_TICKS or more). */
export function electionTimeoutTicks(timing: ClusterTiming): number {
  return Math.max(MIN_ELECTION_TICKS, Math.round(timing.electionTimeoutMs / timing.heartbeatIntervalMs));
}

/**
 * A leader reports a replica OFFLINE after three election timeouts without an answer from it: a replica only slowed
 * by an election or a lost heartbeat or two answers well within that, so the flag means it is really gone.
 */
export function offlineAfterTicks(timing: ClusterTiming): number {
  return 3 * electionTimeoutTicks(timing);
}

/**
 * The timing a node assumes before it knows its cluster's (no identity stored yet, or it could not be read): the
 * deployment's usual heartbeat and election timeout, so that retries neither spin nor stall.
 */
export const UNKNOWN_CLUSTER_TIMING: ClusterTiming = { heartbeatIntervalMs: 100, electionTimeoutMs: 1_000 };

/** A runtime the core refused is discarded and the node reloads from storage one tick later: soon, not in a spin. */
export function failedRuntimeRetryMs(timing: ClusterTiming | undefined): number {
  return tickMs(timing ?? UNKNOWN_CLUSTER_TIMING);
}

/**
 * While a node's instance lives, an in-memory timer drives its ticks; the object's alarm is only the watchdog that
 * brings back an instance that was evicted (in-memory timers do not survive it). An evicted node that has a leader is
 * woken by that leader's next message; the alarm matters when there is none, and a node that restarts campaigns one
 * election timeout or more later anyway. So the watchdog is set at the node's next deadline but no sooner than one
 * election timeout from now, plus half an election timeout: a leader, or a follower that keeps hearing from one, sets
 * its alarm about once an election timeout instead of every tick (setting the alarm is a storage write, and each
 * firing is a billed request).
 */
export function watchdogAlarmAtMs(
  timing: Pick<ClusterTiming, "electionTimeoutMs">,
  options: { readonly nowMs: number; readonly nextWakeAtMs: number },
): number {
  return Math.ceil(
    Math.max(options.nextWakeAtMs, options.nowMs + timing.electionTimeoutMs) + timing.electionTimeoutMs / 2,
  );
}

/**
 * The watchdog alarm is set again once it is due within half an election timeout, so that it does not fire while the
 * in-memory timer drives the node (the node's events come far more often than that: a heartbeat every tick).
 */
export function watchdogRenewWithinMs(timing: Pick<ClusterTiming, "electionTimeoutMs">): number {
  return Math.floor(timing.electionTimeoutMs / 2);
}

/** Failed starts in a row back off up to this many election timeouts between tries. */
const START_RETRY_MAX_ELECTION_TIMEOUTS = 3;

/**
 * How long to wait before starting again after `failures` failed starts in a row: a tick, doubling, at most three
 * election timeouts. A start that fails every time (a full database) must not reload the node every tick, and a
 * node that comes back is in its cluster's next election at the latest.
 */
export function startRetryDelayMs(timing: ClusterTiming | undefined, failures: number): number {
  const known = timing ?? UNKNOWN_CLUSTER_TIMING;
  return doublingDelayMs({
    firstMs: tickMs(known),
    doublings: failures - 1,
    maxMs: START_RETRY_MAX_ELECTION_TIMEOUTS * known.electionTimeoutMs,
  });
}

/**
 * Snapshot chunks. One chunk's call may take a few heartbeat intervals (four, within 50 ms to 5 s), so that a lost
 * answer costs about that, not seconds; on top of it an allowance that grows with the chunk (1 ms per KiB, i.e. the
 * call must move at least 1 MiB/s: a full 512 KiB chunk gets half a second more), since sending it and the receiver's
 * staging write take longer as it grows while the base covers a small call's round trip. A transfer that failed waits
 * before the next one to that peer (snapshotRetryDelayMs), at most 30 s.
 */
export const SNAPSHOT_CHUNK_TIMING = {
  heartbeatsPerChunk: 4,
  minChunkTimeoutMs: 50,
  maxChunkTimeoutMs: 5_000,
  allowanceMsPerKiB: 1,
  maxRetryDelayMs: 30_000,
} as const;

/**
 * How long one snapshot chunk's call may take: the base from the cluster's timing, plus the allowance for its size
 * (`chunkChars`: characters of chunk data; the stream format is JSON text, nearly all ASCII, so about its bytes).
 */
export function snapshotChunkTimeoutMs(
  timing: Pick<ClusterTiming, "heartbeatIntervalMs">,
  chunk: { readonly chunkChars: number },
): number {
  const { heartbeatsPerChunk, minChunkTimeoutMs, maxChunkTimeoutMs, allowanceMsPerKiB } = SNAPSHOT_CHUNK_TIMING;
  const baseMs = Math.max(
    minChunkTimeoutMs,
    Math.min(maxChunkTimeoutMs, heartbeatsPerChunk * timing.heartbeatIntervalMs),
  );
  return baseMs + Math.ceil((chunk.chunkChars / 1024) * allowanceMsPerKiB);
}

/**
 * How long to wait before streaming to a peer again after `failures` transfers to it failed in a row: none after
 * one (a lost message), then from a heartbeat interval doubling up to two election timeouts (one election window:
 * by then the peer may have a new leader to ask) and at most 30 s, so that a peer that can never install is not
 * streamed the whole image again on every probe.
 */
export function snapshotRetryDelayMs(timing: ClusterTiming, failures: number): number {
  if (failures <= 1) {
    return 0;
  }
  return doublingDelayMs({
    firstMs: timing.heartbeatIntervalMs,
    doublings: failures - 2,
    maxMs: Math.min(SNAPSHOT_CHUNK_TIMING.maxRetryDelayMs, electionWindowMs(timing)),
  });
}

/**
 * A node with new storage asks a member for its census answer (runtime/census.ts) again after `failures` failed asks
 * in a row: from a heartbeat interval, doubling, up to one election timeout (a member that was restarting has had
 * time to start by then, and the census must not wait much longer than an election would).
 */
export function censusAskRetryDelayMs(timing: ClusterTiming, failures: number): number {
  return doublingDelayMs({ firstMs: timing.heartbeatIntervalMs, doublings: failures, maxMs: timing.electionTimeoutMs });
}

/**
 * A re-admitted node that still applies no configuration listing it is fenced again after one election window
 * without a proof: by then a leader has been elected that would have sent it such a configuration.
 */
export function readmissionGraceMs(timing: ClusterTiming): number {
  return electionWindowMs(timing);
}

/**
 * The consistency monitor's image checkpoint (runtime/consistency-monitor.ts) expires, counted as failed, when a
 * majority has not verified it within four election timeouts: two election windows, time for the checkpoint to
 * commit through one change of leader.
 */
export function imageCheckpointDeadlineMs(timing: ClusterTiming): number {
  return 2 * electionWindowMs(timing);
}

/**
 * When too few voters can take entries from the log for any image checkpoint to commit, and have been for three
 * election timeouts (longer than a leader change, so a node that is only restarting is not given up on), an image
 * goes out unchecked (logged).
 */
export function uncheckedImageAfterMs(timing: ClusterTiming): number {
  return 3 * timing.electionTimeoutMs;
}

/** `firstMs` doubled `doublings` times (none when it is zero or less; at most 20), capped at `maxMs`. */
function doublingDelayMs(options: {
  readonly firstMs: number;
  readonly doublings: number;
  readonly maxMs: number;
}): number {
  return Math.min(options.maxMs, options.firstMs * 2 ** Math.min(Math.max(0, options.doublings), 20));
}

/**
 * The hold as a fraction of the heartbeat interval. A quarter (25 ms by default) covers the gap from one write's
 * commit to the next write's append from a client writing one after another, without making a read-your-writes read
 * on a follower wait long; a whole interval also removed the notices of slower clients but added up to 100 ms there.
 */
const COMMIT_NOTICE_HOLD_HEARTBEATS = 0.25;

/**
 * How long a commit notice (an append without entries) waits for the next message to the same peer before it goes
 * alone. A follower learns the commit that much later at worst (a read on it with a read-your-writes floor waits for
 * it), while the notice usually rides with, or is made redundant by, the next write's append.
 */
export function commitNoticeHoldMs(timing: { readonly heartbeatIntervalMs: number }): number {
  return Math.round(timing.heartbeatIntervalMs * COMMIT_NOTICE_HOLD_HEARTBEATS);
}
