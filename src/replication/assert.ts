// Invariant assertions of the Raft core. They stay on in production: a broken invariant means the log or the
// state machine could diverge, and stopping the node is far cheaper than serving wrong data.

/** Thrown when the core detects a state that Raft forbids (or a caller that breaks the driving contract). */
export class RaftInvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RaftInvariantError";
  }
}

/** Throws RaftInvariantError with `message` unless `condition` holds. */
export function invariant(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new RaftInvariantError(typeof message === "string" ? message : message());
  }
}
