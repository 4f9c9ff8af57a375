// What a routed call that did not succeed answers: the HTTP status and the code, chosen in one place, so that a
// write that may have been applied is never reported as a definite failure and every code says what happened.

export type FailureStatus = 400 | 404 | 409 | 410 | 413 | 422 | 500 | 503 | 504;

export interface RouteFailure {
  readonly ok: false;
  readonly status: FailureStatus;
  /** A NodeErrorCode, or one of the router's own codes (README, "Error shapes"). */
  readonly code: string;
  readonly message: string;
  readonly retryAfterSeconds?: number;
  readonly node?: string;
  /** A write may or may not have been applied: resend it with the same request id. */
  readonly outcomeUnknown: boolean;
}

/** The last thing that went wrong, remembered for the answer when the router gives up. */
export interface LastFailure {
  readonly code: string;
  readonly message: string;
  readonly node: string;
  /** NOT_LEADER: the leader the node named, if any. */
  readonly leaderHint?: string;
}

export function routeFailure(
  status: FailureStatus,
  code: string,
  message: string,
  extra: { node?: string | undefined; outcomeUnknown: boolean; retryAfterSeconds?: number | undefined },
): RouteFailure {
  return {
    ok: false,
    status,
    code,
    message,
    outcomeUnknown: extra.outcomeUnknown,
    ...(extra.node === undefined ? {} : { node: extra.node }),
    ...(extra.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: extra.retryAfterSeconds }),
  };
}

/**
 * Answers after which a write cannot have been applied: the node refused it before proposing. Every other answer
 * (TIMEOUT, INTERNAL, NOT_MEMBER from a runtime stopped with writes pending, an "outcome unknown" answer, a code
 * this worker does not know yet, a lost answer) leaves the outcome unknown.
 */
const REFUSED_BEFORE_PROPOSING: ReadonlySet<string> = new Set([
  "NOT_LEADER",
  "NO_LEADER",
  "QUEUE_FULL",
  "INVALID_REQUEST",
  "IDEMPOTENCY_KEY_REUSED",
  "PROTOCOL",
  "TRANSFER_IN_PROGRESS",
  "CONFIG_CHANGE_IN_PROGRESS",
  "STALE",
  // Refused by the lifecycle gate: the database is dropped or being dropped (a write whose lease a drop broke may
  // have been applied, but its database is gone with it).
  "DROPPED",
  // The answer would be too large (a backup's dump): refused before anything was proposed.
  "TOO_LARGE",
]);

export function writeMayHaveApplied(code: string): boolean {
  return !REFUSED_BEFORE_PROPOSING.has(code);
}

/** Node answers that say, whatever their exact code, that the node cannot tell whether a write was applied. */
export function isOutcomeUnknownCode(code: string): boolean {
  return code === "TIMEOUT" || code.startsWith("OUTCOME_UNKNOWN") || code === "LEADER_CHANGED";
}

/** What a client of the data routes does with a write whose outcome is unknown. */
export const RESEND_ADVICE = "resend it with the same request id (X-DHA-Request-Id as Idempotency-Key)";

/** A write whose outcome is unknown: 504, so that the client resends it under the same request id. */
export function outcomeUnknownFailure(reason: string, node: string | undefined): RouteFailure {
  return routeFailure(
    504,
    "OUTCOME_UNKNOWN",
    `${reason}; the write may or may not have been applied: ${RESEND_ADVICE}`,
    { node, outcomeUnknown: true },
  );
}

/** A cluster with no members: a configuration error, never the client's. */
export function noMembersFailure(): RouteFailure {
  return routeFailure(500, "INTERNAL", "the cluster has no members", { outcomeUnknown: false });
}

/**
 * An admin call whose node could not say whether the change happened (it timed out, or answered "outcome unknown"):
 * 504, and the client checks the cluster rather than resend a change that may be under way.
 */
export function adminMayCompleteFailure(
  code: "TIMEOUT" | "OUTCOME_UNKNOWN",
  message: string,
  node: string | undefined,
): RouteFailure {
  return routeFailure(504, code, `${message}; the change may still complete: check GET /api/v1/cluster`, {
    node,
    outcomeUnknown: true,
  });
}

/**
 * A repair whose image surely did not reach the replica (it could not be reached, or refused before installing):
 * 503, nothing changed; ask again later.
 */
export function notRepairedFailure(
  message: string,
  extra: { readonly node: string; readonly retryAfterSeconds: number },
): RouteFailure {
  return routeFailure(503, "NOT_REPAIRED", message, { ...extra, outcomeUnknown: false });
}

/** The node's object refused the call without running it: 503, retry later. */
export function overloadedFailure(
  node: string,
  message: string,
  extra: { outcomeUnknown: boolean; retryAfterSeconds: number },
): RouteFailure {
  return routeFailure(503, "OVERLOADED", `node ${node} is overloaded: ${message}`, { node, ...extra });
}

/** Refusals that every node would repeat, so they are answered at once with a status of their own. */
const DEFINITE_REFUSAL_STATUS = {
  INVALID_REQUEST: 400,
  // The request id (Idempotency-Key) is remembered for another request: this one was applied nowhere, in any attempt.
  IDEMPOTENCY_KEY_REUSED: 422,
  DROPPED: 410,
  // The answer would exceed a size limit (a backup's dump): every node would build it and refuse it again.
  TOO_LARGE: 413,
} as const satisfies Record<string, FailureStatus>;

export type DefiniteRefusalCode = keyof typeof DEFINITE_REFUSAL_STATUS;

/**
 * A refusal that proves nothing was applied: a bad request (400), a drop (410), an answer too large (413), a reused
 * Idempotency-Key (422).
 */
export function definiteRefusalFailure(code: DefiniteRefusalCode, message: string, node: string): RouteFailure {
  return routeFailure(DEFINITE_REFUSAL_STATUS[code], code, message, { node, outcomeUnknown: false });
}

/**
 * A read bounded by freshness that every node answered STALE (or left unanswered): 503 STALE at once, naming each
 * node's reason. The data routes answer it as rqlite does, 200 "stale read" (routes/data.ts).
 */
export function everyNodeStaleFailure(
  stale: ReadonlyMap<string, string>,
  unreached: ReadonlySet<string>,
): RouteFailure {
  const reasons = [
    ...[...stale].map(([node, message]) => `${node}: ${message}`),
    ...[...unreached].filter((node) => !stale.has(node)).map((node) => `${node}: not reached`),
  ];
  const last = [...stale.keys()].at(-1);
  return routeFailure(503, "STALE", `stale read: no node could serve it within the freshness (${reasons.join("; ")})`, {
    node: last,
    outcomeUnknown: false,
  });
}

/** Refusals that say a change is already under way: nothing was proposed, and they clear by themselves. */
export type ConflictCode = "TRANSFER_IN_PROGRESS" | "CONFIG_CHANGE_IN_PROGRESS";

export function isConflictCode(code: string): code is ConflictCode {
  return code === "TRANSFER_IN_PROGRESS" || code === "CONFIG_CHANGE_IN_PROGRESS";
}

/**
 * What stopped the router asking again: the deadline, too little time left before it to confirm a change (half an
 * election timeout), or the cap on calls per request.
 */
export type AskingEndedBy = "deadline" | "tooLittleTime" | "attemptCap";

const ASKING_ENDED_BY: Readonly<Record<AskingEndedBy, string>> = {
  deadline: "until the deadline",
  tooLittleTime: "until less than half an election timeout was left before the deadline",
  attemptCap: "the most one request may make, before the deadline",
};

/**
 * An admin change refused as a conflict on every attempt until the router stopped asking (`endedBy`): 409 with the
 * node's last reason. Nothing was applied; the client may send it again later.
 */
export function persistentConflictFailure(
  code: ConflictCode,
  last: {
    readonly message: string;
    readonly node: string;
    readonly attempts: number;
    readonly elapsedMs: number;
    readonly endedBy: AskingEndedBy;
  },
): RouteFailure {
  return routeFailure(
    409,
    code,
    `${last.message} (still refused after ${last.attempts} call${last.attempts === 1 ? "" : "s"} in ` +
      `${Math.round(last.elapsedMs)} ms, ` +
      `${ASKING_ENDED_BY[last.endedBy]}; nothing was applied)`,
    { node: last.node, outcomeUnknown: false },
  );
}

/** An error the router does not retry (INTERNAL, or a code this worker does not know, on a read or admin call). */
export function unretriedErrorFailure(
  code: string,
  message: string,
  extra: { node: string; outcomeUnknown: boolean },
): RouteFailure {
  return routeFailure(500, code, message, extra);
}

/** The old router's answer when a wait saw no leader elected (bug `fixedRetryBudget`): it stopped there. */
export function legacyNoLeaderFailure(
  waitMessage: string,
  extra: { node: string; outcomeUnknown: boolean; retryAfterSeconds: number },
): RouteFailure {
  if (extra.outcomeUnknown) {
    return outcomeUnknownFailure(`no leader (${waitMessage}) after an earlier attempt may have applied it`, extra.node);
  }
  return routeFailure(503, "NO_LEADER", `no leader: ${waitMessage}`, {
    node: extra.node,
    outcomeUnknown: false,
    retryAfterSeconds: extra.retryAfterSeconds,
  });
}

/**
 * The answer a routed call ends with. A write that may have been applied (`writeMayHaveApplied`: an earlier attempt
 * left its outcome unknown) is never answered as a definite failure, whatever ended it.
 */
export function finalOutcome<S extends { readonly ok: true }>(
  outcome: S | RouteFailure,
  writeMayHaveApplied: boolean,
): S | RouteFailure {
  if (outcome.ok || !writeMayHaveApplied) {
    return outcome;
  }
  if (outcome.status === 504 && outcome.code === "OUTCOME_UNKNOWN") {
    return outcome;
  }
  if (outcome.code === "INVALID_REQUEST" || outcome.code === "DROPPED" || outcome.code === "IDEMPOTENCY_KEY_REUSED") {
    // The same request is refused the same way everywhere: no earlier attempt can have been applied either.
    return { ...outcome, outcomeUnknown: false };
  }
  return outcomeUnknownFailure(`${outcome.code}: ${outcome.message}`, outcome.node);
}

export interface GiveUpContext {
  readonly attempts: number;
  readonly elapsedMs: number;
  readonly deadlinePassed: boolean;
  readonly outcomeUnknown: boolean;
  readonly last: LastFailure | undefined;
  readonly retryAfterSeconds: number;
}

/** The answer when the deadline (or the call guard) ends the retries. */
export function giveUpFailure(context: GiveUpContext): RouteFailure {
  const { last } = context;
  const ranOut = context.deadlinePassed
    ? `the deadline passed after ${context.attempts} calls in ${Math.round(context.elapsedMs)} ms`
    : `gave up after ${context.attempts} calls (the most one request may make) in ${Math.round(context.elapsedMs)} ms`;
  if (context.outcomeUnknown) {
    return outcomeUnknownFailure(`${ranOut} before the write was confirmed (${describeLast(last)})`, last?.node);
  }
  const retry = { node: last?.node, outcomeUnknown: false, retryAfterSeconds: context.retryAfterSeconds };
  if (last === undefined) {
    return routeFailure(503, "UNAVAILABLE", `${ranOut}; no node was reached`, retry);
  }
  switch (last.code) {
    case "NO_LEADER":
      // Only NO_LEADER answers and failed waits land here: none of them names a leader.
      return routeFailure(503, "NO_LEADER", `no leader: ${last.message} (${ranOut})`, retry);
    case "NOT_LEADER":
      return routeFailure(
        503,
        "LEADER_CHANGING",
        `leadership was moving: ${last.node} last pointed to ${last.leaderHint ?? "another node"}, which did not serve the request in time (${ranOut})`,
        retry,
      );
    default:
      return routeFailure(503, last.code, `${ranOut} (${describeLast(last)})`, retry);
  }
}

/** The old router's answer when it gave up (bug `fixedRetryBudget`): NO_LEADER quoting a node that names the leader. */
export function legacyGiveUpFailure(context: GiveUpContext): RouteFailure {
  const { last } = context;
  const reason =
    last === undefined ? "no node was tried" : `last error from ${last.node}: ${last.code}: ${last.message}`;
  const ranOut = context.deadlinePassed ? "the deadline passed" : `${context.attempts} attempts failed`;
  if (context.outcomeUnknown) {
    return routeFailure(
      504,
      "OUTCOME_UNKNOWN",
      `${ranOut} before the write was confirmed; it may or may not have been applied (${reason})`,
      {
        node: last?.node,
        outcomeUnknown: true,
      },
    );
  }
  const code = last?.code === "NO_LEADER" || last?.code === "NOT_LEADER" ? "NO_LEADER" : (last?.code ?? "UNAVAILABLE");
  return routeFailure(503, code, `${ranOut} (${reason})`, {
    node: last?.node,
    outcomeUnknown: false,
    retryAfterSeconds: context.retryAfterSeconds,
  });
}

function describeLast(last: LastFailure | undefined): string {
  return last === undefined ? "no node answered" : `last: ${last.node} answered ${last.code}: ${last.message}`;
}
