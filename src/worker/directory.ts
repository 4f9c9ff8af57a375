// The seam between the HTTP layer and the nodes: everything above it speaks ClusterNodeRpc, so tests can pass fakes.
import { PROTOCOL_VERSION, type ClusterConfig, type ClusterNodeRpc, type NodeAddress } from "../objects/api";
import type { AppEnv } from "./config";

/** Reaches the nodes of one cluster. */
export interface NodeDirectory {
  readonly config: ClusterConfig;
  /** A handle on the named node. Cheap; callers take a fresh one per call (an RPC stub is broken after a throw). */
  node(name: string): ClusterNodeRpc;
}

/** The address every call carries: the node starts itself from this configuration if it never started. */
export function nodeAddress(config: ClusterConfig, node: string): NodeAddress {
  return { protocolVersion: PROTOCOL_VERSION, cluster: config, node };
}

/** The Durable Object name of a node: ids derive from it, so it must never change for a live cluster. */
export function nodeObjectName(cluster: string, node: string): string {
  return `${cluster}/${node}`;
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
      const stub = locationHint === undefined ? namespace.get(id) : namespace.get(id, { locationHint });
      // ClusterNode implements ClusterNodeRpc; the stub's methods are its RPC projections.
      return stub as unknown as ClusterNodeRpc;
    },
  };
}
