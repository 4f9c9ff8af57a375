// The nodes of a named database in workerd tests: its cluster configuration, a member added at run time that holds a
// row, its removal, what a wiped node holds, and the nodes as the worker reaches them with some calls failing.
import { expect, onTestFinished } from "vitest";
import { PROTOCOL_VERSION, type ClusterConfig, type ClusterNodeRpc } from "../../../src/objects/api";
import type { AppEnv } from "../../../src/worker/config";
import { durableObjectDirectory, type NodeDirectory } from "../../../src/worker/directory";
import { waitFor } from "./cluster";
import type { DeploymentHarness } from "./databases";

const T = "timeout=30s";

/** What a wiped node object holds: its tombstone and nothing else. */
export const WIPED = { keys: ["lifecycle/tombstone"], tables: [], alarm: null };

/** The cluster configuration the worker sends the nodes of one generation of a database (lifecycle.ts). */
export async function clusterConfigOf(h: DeploymentHarness, name: string): Promise<ClusterConfig> {
  const entry = (await h.untilDone("GET", `/api/v1/databases/${name}?${T}`)).json();
  return {
    name: h.clusterOf(name, entry.generation as number),
    members: entry.options.members,
    heartbeatIntervalMs: entry.options.heartbeatIntervalMs,
    electionTimeoutMs: entry.options.electionTimeoutMs,
  };
}

/** The voters and learners `node` reports; undefined when it does not answer. */
export async function membersOf(
  h: DeploymentHarness,
  config: ClusterConfig,
  node: string,
): Promise<string[] | undefined> {
  const status = await h.stub(config.name, node).status({ protocolVersion: PROTOCOL_VERSION, cluster: config, node });
  return status.ok ? [...status.value.voters, ...status.value.learners] : undefined;
}

/** n4's object is halted after the test, whatever became of it. */
export function haltN4After(h: DeploymentHarness, config: ClusterConfig): void {
  onTestFinished(() =>
    h
      .stub(config.name, "n4")
      .testHalt()
      .catch(() => undefined),
  );
}

/**
 * Adds n4 to database `name` at run time (halted after the test) and writes a row that n4 applies: the cluster
 * configuration of the database.
 */
export async function withN4HoldingARow(h: DeploymentHarness, name: string): Promise<ClusterConfig> {
  const config = await clusterConfigOf(h, name);
  haltN4After(h, config);
  const added = await h.untilDone("POST", `/databases/${name}/api/v1/cluster/members?${T}`, { json: { name: "n4" } });
  expect(added.status, added.text).toBe(200);
  const write = await h.untilDone("POST", `/databases/${name}/db/execute?${T}`, {
    headers: { "Idempotency-Key": `${name}-secret` },
    json: ["CREATE TABLE secrets (x)", "INSERT INTO secrets VALUES ('kept after the drop')"],
  });
  expect(write.status, write.text).toBe(200);
  await waitFor("n4 to apply the write", async () => {
    const status = await h
      .stub(config.name, "n4")
      .status({ protocolVersion: PROTOCOL_VERSION, cluster: config, node: "n4" });
    return status.ok && status.value.appliedIndex >= Number(write.headers.get("X-DHA-Raft-Index")) ? true : undefined;
  });
  return config;
}

/** Removes n4 from database `name` and waits until no remaining member lists it. */
export async function removeN4(h: DeploymentHarness, config: ClusterConfig, name: string): Promise<void> {
  const removed = await h.untilDone("DELETE", `/databases/${name}/api/v1/cluster/members/n4?${T}`);
  expect(removed.status, removed.text).toBe(200);
  await waitFor("the removal applied everywhere", async () => {
    for (const node of h.nodes) {
      const members = await membersOf(h, config, node);
      if (members === undefined || members.includes("n4")) {
        return undefined;
      }
    }
    return true;
  });
}

/** The RPC methods the worker calls on a node. */
const NODE_RPC_METHODS = [
  "start",
  "status",
  "execute",
  "query",
  "waitForLeader",
  "transferLeadership",
  "addMember",
  "removeMember",
  "repairMember",
  "backup",
  "metrics",
  "recentEvents",
  "drop",
] as const satisfies readonly (keyof ClusterNodeRpc)[];

/** One call the worker makes to a node. */
export interface NodeCallSeen {
  readonly config: ClusterConfig;
  readonly node: string;
  readonly method: (typeof NODE_RPC_METHODS)[number];
  readonly request: unknown;
}

/**
 * The nodes as the worker reaches them (the app's `directory`), except that a call `fail` names fails as an
 * unreachable node does.
 */
export function failingCalls(fail: (call: NodeCallSeen) => boolean) {
  return (env: AppEnv, config: ClusterConfig): NodeDirectory => {
    const real = durableObjectDirectory(env, config);
    return {
      config,
      node: (node) => {
        const stub = real.node(node) as unknown as Record<string, (request: unknown) => Promise<unknown>>;
        const rpc = Object.fromEntries(
          NODE_RPC_METHODS.map((method) => [
            method,
            (request: unknown) =>
              fail({ config, node, method, request })
                ? Promise.reject(new Error(`${node} cannot be reached`))
                : (stub[method] as (request: unknown) => Promise<unknown>)(request),
          ]),
        );
        return rpc as unknown as ClusterNodeRpc;
      },
    };
  };
}
