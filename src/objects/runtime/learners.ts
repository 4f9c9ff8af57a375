// A replica's JOINING -> ONLINE on the leader: a learner is promoted to voter once its log and its schema caught up
// (a voter whose schema lags would answer reads with the wrong tables; see ARCHITECTURE.md, "Membership").
import type { PeerLinks } from "./peers";
import { LIMITS, type RuntimeCore } from "./types";

/** Proposes the promotion of the first learner whose log and schema caught up with the leader's. */
export function maybePromoteLearners(core: RuntimeCore, peers: PeerLinks): void {
  const status = core.raft.status();
  if (status.role !== "leader" || status.membership.learners.length === 0) {
    return;
  }
  const ownSchema = core.sm.schemaInfo().hash;
  for (const replica of status.replicas) {
    if (!replica.isLearner) {
      continue;
    }
    const info = peers.info(replica.id);
    // ONLINE already means: log within the lagging threshold and schema equal to ours (ReplicaReady).
    const logCaughtUp = replica.status === "ONLINE";
    const schemaMatches = info?.schemaHash === ownSchema;
    if (!logCaughtUp || !schemaMatches) {
      if (core.ticks() % LIMITS.statusSummaryEveryTicks === 0) {
        core.log("info", "learnerCatchingUp", {
          peer: replica.id,
          matchIndex: replica.matchIndex,
          commit: status.commit,
          schemaMatches,
        });
      }
      continue;
    }
    const proposal = core.raft.proposeConfigChange({ kind: "promote", node: replica.id });
    if (proposal.ok) {
      core.log("info", "learnerPromoting", { peer: replica.id, index: proposal.index, schemaHash: ownSchema });
      return;
    }
  }
}
