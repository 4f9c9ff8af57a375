// The seam between the HTTP layer and the nodes: everything above it speaks ClusterNodeRpc, so tests can pass fakes.
import {
  objectName,
  PROTOCOL_VERSION,
  type ClusterConfig,
  type ClusterNodeRpc,
  type NodeAddress,
} from "../objects/api";
import type { AppEnv } from "./config";

/** Reaches the nodes of one cluster. */
export interface NodeDirectory {
  readonly config: ClusterConfig;
  /** A handle on the named node. Cheap; callers take a fresh one per call (an RPC stub is broken after a throw). */
  node(name: string): ClusterNodeRpc;
}

/**
 * The address every call carries: the cluster configuration parsed from env, so that a node reached for the first
 * time starts itself with exactly the configuration the worker runs with.
 */
export function nodeAddress(config: ClusterConfig, node: string): NodeAddress {
  return { protocolVersion: PROTOCOL_VERSION, cluster: config, node };
}

/** The Durable Object name of a node (the objects' own rule): ids derive from it, so it never changes. */
export function nodeObjectName(cluster: string, node: string): string {
  return objectName({ cluster, node });
}

/** Production: node objects of env.CLUSTER_NODE, placed by their configured location hints. */
export function durableObjectDirectory(env: AppEnv, config: ClusterConfig): NodeDirectory {
  const namespace = env.CLUSTER_NODE;
  const hints = new Map(config.members.map((member) => [member.name, member.locationHint]));
  return {
    config,
    node(name: string): ClusterNodeRpc {
      const id = namespace.idFromName(nodeObjectName(config.name, name));
      // Members added at run time have no hint here; their object already exists, so a hint would be ignored anyway.
      const locationHint = hints.get(name) as DurableObjectLocationHint | undefined;
      return locationHint === undefined ? namespace.get(id) : namespace.get(id, { locationHint });
    },
  };
}
