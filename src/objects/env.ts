// The deployment's bindings and variables (see wrangler.toml). A leaf: the node namespace's class is a parameter, so
// that neither the contract (api.ts, which hands this type to the worker) nor anything else imports back into
// cluster-node.ts, which declares Env = Bindings<ClusterNode>.
export interface Bindings<Node extends Rpc.DurableObjectBranded> {
  CLUSTER_NODE: DurableObjectNamespace<Node>;
  CLUSTER_NAME: string;
  CLUSTER_NODES: string;
  HEARTBEAT_INTERVAL_MS: string;
  ELECTION_TIMEOUT_MS: string;
  /** Secret: JSON mapping each bearer token to its roles, e.g. {"tok": ["read", "write", "admin"]}. */
  DHA_TOKENS?: string;
  /** Optional: comma-separated browser origins allowed to call the API (CORS). */
  DHA_CORS_ORIGINS?: string;
  /** Lowest structured-log level printed: debug, info (default), warn or error. */
  DHA_LOG_LEVEL?: string;
  /** Optional: the most rows all statements of one request may return (default 100000). */
  DHA_MAX_RESULT_ROWS?: string;
  /** Optional: the most bytes (approximate) all statements of one request may return (default 16777216). */
  DHA_MAX_RESULT_BYTES?: string;
  /** Optional: the consistency monitor ("on"/"off", every N entries / T ms, slice bounds, "auto"/"manual" repair). */
  DHA_CONSISTENCY_CHECKS?: string;
  DHA_CHECKPOINT_EVERY_ENTRIES?: string;
  DHA_CHECKPOINT_EVERY_MS?: string;
  DHA_CHECKPOINT_ROWS?: string;
  DHA_CHECKPOINT_BYTES?: string;
  DHA_CONSISTENCY_REPAIR?: string;
  /** Test configuration only: "1" lets tests inject network faults between nodes. */
  DHA_TEST_FAULTS?: string;
}
