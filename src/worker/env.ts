import type { ClusterNode } from "../objects/cluster-node";

/** Bindings and variables the worker receives (see wrangler.toml). */
export interface Env {
  CLUSTER_NODE: DurableObjectNamespace<ClusterNode>;
  CLUSTER_NAME: string;
  CLUSTER_NODES: string;
  HEARTBEAT_INTERVAL_MS: string;
  ELECTION_TIMEOUT_MS: string;
}
