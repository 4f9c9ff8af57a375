// The pure Raft core: what the simulator and the Durable Object shell import.
import { RaftNode, type RaftNodeOptions } from "./raft-node.js";
import type { PersistedState, RaftNodeApi } from "./types.js";

export type * from "./types.js";
export type { RaftNodeOptions } from "./raft-node.js";
export { RaftInvariantError, invariant } from "./assert.js";
export { RaftConfigError, validateRaftConfig, resolveRaftConfig, type ResolvedRaftConfig } from "./config.js";
export { SeededRandom } from "./random.js";
export {
  EMPTY_MEMBERSHIP,
  applyConfigChange,
  decodeMembership,
  encodeMembership,
  isLearner,
  isMember,
  isVoter,
  membershipProblem,
  validateBootstrapMembership,
} from "./membership.js";
export {
  REPLICA_STATUS_TRANSITIONS,
  assertReplicaStatusTransition,
  isValidReplicaStatusTransition,
  targetReplicaStatus,
} from "./replica-status.js";
export { isWellFormedMessage } from "./messages.js";
export { handleReadies, MAX_READIES_PER_LOOP, type ReadyPorts, type ReadySource } from "./ready-loop.js";
export { quorumSize } from "../quorum/quorum.js";

/** Creates a Raft node from its configuration and what the shell loaded from storage. */
export function createRaftNode(options: RaftNodeOptions): RaftNodeApi {
  return new RaftNode(options);
}

/** The persisted state of a node that has never stored anything. */
export function emptyPersistedState(): PersistedState {
  return { hardState: { term: 0, vote: null, commit: 0 }, snapshot: null, entries: [], applied: 0 };
}
