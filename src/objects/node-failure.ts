// The one error a node request fails with: a NodeError (./cluster-types.ts) carried as an exception, so that every
// layer of the node (the runtime, the SQL port, the monitor, the host) throws the same thing and the host answers it.
// A leaf: it imports only the plain shapes.
import type { NodeError, NodeErrorCode } from "./cluster-types";

export class NodeFailure extends Error {
  constructor(readonly error: NodeError) {
    super(error.message);
    this.name = "NodeFailure";
  }
}

export function nodeError(
  code: NodeErrorCode,
  message: string,
  extra: { leader?: string | null; retryable?: boolean } = {},
): NodeFailure {
  const retryable =
    extra.retryable ??
    (code === "NOT_LEADER" || code === "NO_LEADER" || code === "QUEUE_FULL" || code === "TRANSFER_IN_PROGRESS");
  return new NodeFailure({ code, message, retryable, ...(extra.leader === undefined ? {} : { leader: extra.leader }) });
}
