// A per-peer circuit breaker: after `failureThreshold` consecutive failures the peer is left alone for `openTimeoutMs`,
// then one probe at a time is let through (two at most, see below); `successThreshold` probe successes close it again
// and a probe failure reopens it, for twice as long each time up to `maxOpenTimeoutMs`. This keeps a dead or overloaded
// peer from absorbing every heartbeat, while a peer that was gone only briefly is tried again soon. A peer we hear from
// (noteContact: it called us) is alive and reaching us: the next request goes out as a probe at once rather than at the
// end of a long wait (no sooner than `openTimeoutMs` after opening, and only until a probe so let through fails: then
// contact is not taken as a sign again until the breaker closes). Contact while a probe is out, from after that probe
// went (a call from the peer, not its answer to ours, which may be the probe's own), lets one more probe through at
// once: the first may hang (a call into a black hole lasts until its timeout) while the peer, back meanwhile, is
// plainly up. A superseded probe's failure is stale; its success still closes the breaker.
//
// Results are matched to the permit that admitted the request: a call admitted before the breaker last changed
// state (e.g. one of several in flight when it opened) reports a stale result, which is counted in the
// statistics but moves no state — only a probe can close an open breaker.

export type BreakerState = "CLOSED" | "OPEN" | "HALF_OPEN";

export interface CircuitBreakerConfig {
  /** Consecutive failures in CLOSED that open the breaker. */
  readonly failureThreshold: number;
  /** Consecutive probe successes in HALF_OPEN that close it. */
  readonly successThreshold: number;
  /** How long it stays OPEN the first time (after being CLOSED) before letting a probe through. */
  readonly openTimeoutMs: number;
  /**
   * Each failed probe doubles the time OPEN, up to this (at least openTimeoutMs; openTimeoutMs when absent: no growth).
   * Also how long a probe may stay unanswered, unless probeTimeoutMs says otherwise.
   */
  readonly maxOpenTimeoutMs?: number;
  /** How long a probe may stay unanswered before it counts as failed (maxOpenTimeoutMs when absent). */
  readonly probeTimeoutMs?: number;
}

export interface BreakerTransition {
  readonly from: BreakerState;
  readonly to: BreakerState;
  readonly atMs: number;
  readonly consecutiveFailures: number;
  readonly reason: string;
}

/** Proof that a request was admitted, handed back with its result. */
export interface BreakerPermit {
  /** The breaker's epoch (number of transitions so far) when the request was admitted. */
  readonly epoch: number;
  /** True when this request is a HALF_OPEN probe. */
  readonly probe: boolean;
  /** Which probe of this epoch it is (0 when not a probe): a later probe supersedes it. */
  readonly probeSeq: number;
}

/** What a recorded result did: moved or kept the state, or was stale (admitted in an earlier epoch). */
export type RecordOutcome = "applied" | "stale";

const ALLOWED_TRANSITIONS: Readonly<Record<BreakerState, readonly BreakerState[]>> = {
  CLOSED: ["OPEN"],
  OPEN: ["HALF_OPEN"],
  HALF_OPEN: ["CLOSED", "OPEN"],
};

/** Throws unless `from -> to` is one of CLOSED->OPEN, OPEN->HALF_OPEN, HALF_OPEN->CLOSED, HALF_OPEN->OPEN. */
export function assertBreakerTransition(from: BreakerState, to: BreakerState, reason = ""): void {
  if (!ALLOWED_TRANSITIONS[from].includes(to)) {
    throw new Error(`circuit breaker: invalid transition ${from} -> ${to}${reason === "" ? "" : ` (${reason})`}`);
  }
}

export function assertCircuitBreakerConfig(config: CircuitBreakerConfig): void {
  for (const key of ["failureThreshold", "successThreshold"] as const) {
    const value = config[key];
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`${key} must be an integer >= 1, got ${value}`);
    }
  }
  if (!Number.isFinite(config.openTimeoutMs) || config.openTimeoutMs <= 0) {
    throw new RangeError(`openTimeoutMs must be a finite number > 0, got ${config.openTimeoutMs}`);
  }
  const max = config.maxOpenTimeoutMs;
  if (max !== undefined && (!Number.isFinite(max) || max < config.openTimeoutMs)) {
    throw new RangeError(`maxOpenTimeoutMs must be a finite number >= openTimeoutMs, got ${max}`);
  }
  const probe = config.probeTimeoutMs;
  if (probe !== undefined && (!Number.isFinite(probe) || probe <= 0)) {
    throw new RangeError(`probeTimeoutMs must be a finite number > 0, got ${probe}`);
  }
}

export class CircuitBreaker {
  private readonly config: CircuitBreakerConfig;
  private readonly now: () => number;
  private readonly onTransition: (transition: BreakerTransition) => void;
  private currentState: BreakerState = "CLOSED";
  private currentEpoch = 0;
  private failuresInARow = 0;
  private probeSuccessesInARow = 0;
  private reconnectionCount = 0;
  private openedAtMs = 0;
  /** How long this OPEN period lasts (openTimeoutMs, doubled by each failed probe, at most maxOpenMs). */
  private openForMs: number;
  private readonly maxOpenMs: number;
  private readonly probeTimeoutMs: number;
  /** When the peer was last heard from (noteContact); null when never. */
  private contactAtMs: number | null = null;
  /**
   * How many times the peer called us (not counting answers to our calls): orders contact and probes exactly, even
   * within one millisecond.
   */
  private contactCount = 0;
  /** contactCount when the probe in flight was admitted: later contact lets a second probe through. */
  private contactCountAtProbe = 0;
  /** Probes admitted in this epoch; the newest is the one in flight. */
  private probesAdmitted = 0;
  /** A probe let through early on contact failed: contact is no sign the peer is reachable until it closes. */
  private contactDisregarded = false;
  /** When the HALF_OPEN probe in flight was admitted; null when none is. */
  private probeAdmittedAtMs: number | null = null;
  /** Whether that probe was let through early because the peer was heard from. */
  private probeOnContact = false;

  constructor(options: {
    config: CircuitBreakerConfig;
    now: () => number;
    onTransition?: (transition: BreakerTransition) => void;
  }) {
    assertCircuitBreakerConfig(options.config);
    this.config = options.config;
    this.openForMs = options.config.openTimeoutMs;
    this.maxOpenMs = options.config.maxOpenTimeoutMs ?? options.config.openTimeoutMs;
    this.probeTimeoutMs = options.config.probeTimeoutMs ?? this.maxOpenMs;
    this.now = options.now;
    this.onTransition = options.onTransition ?? (() => {});
  }

  get state(): BreakerState {
    return this.currentState;
  }

  /** Failures since the last success (or since the breaker last closed), including those while OPEN. */
  get consecutiveFailures(): number {
    return this.failuresInARow;
  }

  /** How many times the breaker closed again after having been OPEN. */
  get reconnections(): number {
    return this.reconnectionCount;
  }

  /** Incremented on every transition; results of requests admitted in an earlier epoch are stale. */
  get epoch(): number {
    return this.currentEpoch;
  }

  /** How long the current (or, when not OPEN, the next) OPEN period lasts. */
  get openTimeoutMs(): number {
    return this.openForMs;
  }

  /** Whether a HALF_OPEN probe is in flight: its result decides whether requests go out or are refused. */
  get probeInFlight(): boolean {
    return this.currentState === "HALF_OPEN" && this.probeAdmittedAtMs !== null;
  }

  /**
   * The peer was heard from (it called us, or answered a call of ours): an OPEN breaker lets the next request through
   * as a probe without waiting out its time (but not within `openTimeoutMs` of opening); a call, not an answer, while a
   * probe is out lets one more through. Moves no state by itself.
   */
  noteContact(how: { readonly answer?: boolean } = {}): void {
    this.contactAtMs = this.now();
    // The probe's own answer arrives before its result is recorded: it must not let a second probe through.
    if (how.answer !== true) {
      this.contactCount++;
    }
  }

  /**
   * Admits a request, or returns null. CLOSED admits everything. OPEN admits nothing until its time passed (or the
   * peer was heard from since it opened, see noteContact), then moves to HALF_OPEN and admits this request as the
   * probe. HALF_OPEN admits one probe at a time (one more on contact, see noteContact); a probe unanswered for
   * `probeTimeoutMs` counts as failed (so a lost result cannot wedge the breaker).
   */
  tryAcquire(): BreakerPermit | null {
    const nowMs = this.now();
    switch (this.currentState) {
      case "CLOSED":
        return { epoch: this.currentEpoch, probe: false, probeSeq: 0 };
      case "OPEN": {
        const openMs = nowMs - this.openedAtMs;
        const onContact = openMs < this.openForMs && this.heardFromSinceOpening(openMs);
        if (openMs < this.openForMs && !onContact) {
          return null;
        }
        this.transition("HALF_OPEN", `open for ${openMs} ms${onContact ? ", peer heard from" : ""}: probing`, nowMs);
        return this.admitProbe(nowMs, onContact);
      }
      case "HALF_OPEN":
        if (this.probeAdmittedAtMs === null) {
          return this.admitProbe(nowMs, false);
        }
        if (this.contactSupersedesProbe()) {
          return this.admitProbe(nowMs, true);
        }
        if (nowMs - this.probeAdmittedAtMs < this.probeTimeoutMs) {
          return null;
        }
        this.failuresInARow++;
        this.reopen(`probe unanswered for ${nowMs - this.probeAdmittedAtMs} ms`, nowMs);
        return null;
    }
  }

  /**
   * Whether the breaker, not CLOSED, would let a probe through now (tryAcquire would admit one), without changing
   * anything: false while OPEN and neither its time passed nor contact counts yet, and while a probe is out.
   */
  wouldAdmitProbe(): boolean {
    const nowMs = this.now();
    switch (this.currentState) {
      case "CLOSED":
        return false;
      case "OPEN": {
        const openMs = nowMs - this.openedAtMs;
        return openMs >= this.openForMs || this.heardFromSinceOpening(openMs);
      }
      case "HALF_OPEN":
        return this.probeAdmittedAtMs === null || this.contactSupersedesProbe();
    }
  }

  /** tryAcquire() for callers that record results without a permit. */
  allowRequest(): boolean {
    return this.tryAcquire() !== null;
  }

  /** Records a success. Without a permit, it applies to the current state (and the probe in flight, if any). */
  recordSuccess(permit?: BreakerPermit): RecordOutcome {
    if (permit !== undefined && permit.epoch !== this.currentEpoch) {
      return "stale";
    }
    const nowMs = this.now();
    switch (this.currentState) {
      case "CLOSED":
        this.failuresInARow = 0;
        return "applied";
      case "OPEN":
        // Only possible without a permit: OPEN admits nothing, so a permit of this epoch cannot exist.
        return "stale";
      case "HALF_OPEN":
        // A superseded probe's success counts, but the newer probe is still out.
        if (permit === undefined || !permit.probe || permit.probeSeq === this.probesAdmitted) {
          this.probeAdmittedAtMs = null;
        }
        this.probeSuccessesInARow++;
        if (this.probeSuccessesInARow >= this.config.successThreshold) {
          this.failuresInARow = 0;
          this.reconnectionCount++;
          this.openForMs = this.config.openTimeoutMs;
          this.contactDisregarded = false;
          this.transition("CLOSED", `${this.probeSuccessesInARow} probe(s) succeeded`, nowMs);
        }
        return "applied";
    }
  }

  /**
   * Records a failure. Stale failures (of an earlier epoch, or of a probe superseded since) still count towards
   * consecutiveFailures but move no state.
   */
  recordFailure(permit?: BreakerPermit): RecordOutcome {
    this.failuresInARow++;
    if (permit !== undefined && permit.epoch !== this.currentEpoch) {
      return "stale";
    }
    if (permit !== undefined && permit.probe && permit.probeSeq !== this.probesAdmitted) {
      return "stale";
    }
    const nowMs = this.now();
    switch (this.currentState) {
      case "CLOSED":
        if (this.failuresInARow >= this.config.failureThreshold) {
          this.openedAtMs = nowMs;
          this.transition("OPEN", `${this.failuresInARow} consecutive failure(s)`, nowMs);
        }
        return "applied";
      case "OPEN":
        return "stale";
      case "HALF_OPEN":
        this.reopen("probe failed", nowMs);
        return "applied";
    }
  }

  /** Contact after the breaker opened, at least `openTimeoutMs` into the period, and not disregarded. */
  private heardFromSinceOpening(openMs: number): boolean {
    return (
      !this.contactDisregarded &&
      this.contactAtMs !== null &&
      this.contactAtMs >= this.openedAtMs &&
      openMs >= this.config.openTimeoutMs
    );
  }

  /**
   * The peer was heard from after the probe in flight went out, and that probe was not itself let through on
   * contact (at most one probe more per probe that may hang), nor is contact disregarded.
   */
  private contactSupersedesProbe(): boolean {
    return !this.probeOnContact && !this.contactDisregarded && this.contactCount > this.contactCountAtProbe;
  }

  private admitProbe(nowMs: number, onContact: boolean): BreakerPermit {
    this.probeAdmittedAtMs = nowMs;
    this.probeOnContact = onContact;
    this.contactCountAtProbe = this.contactCount;
    this.probesAdmitted++;
    return { epoch: this.currentEpoch, probe: true, probeSeq: this.probesAdmitted };
  }

  /** A probe failed: OPEN again, for twice as long as last time (at most maxOpenTimeoutMs). */
  private reopen(reason: string, nowMs: number): void {
    if (this.probeOnContact) {
      this.contactDisregarded = true;
    }
    this.openForMs = Math.min(this.maxOpenMs, this.openForMs * 2);
    this.openedAtMs = nowMs;
    this.transition("OPEN", `${reason}; open for ${this.openForMs} ms`, nowMs);
  }

  private transition(to: BreakerState, reason: string, nowMs: number): void {
    const from = this.currentState;
    assertBreakerTransition(from, to, reason);
    this.currentState = to;
    this.currentEpoch++;
    this.probeAdmittedAtMs = null;
    this.probeOnContact = false;
    this.probesAdmitted = 0;
    this.probeSuccessesInARow = 0;
    this.onTransition({ from, to, atMs: nowMs, consecutiveFailures: this.failuresInARow, reason });
  }
}
