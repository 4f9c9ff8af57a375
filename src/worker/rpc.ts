// DurableHaApi: the API for other Workers through a service binding. In the caller's wrangler config:
//   [[services]]
//   binding = "DB"
//   service = "durable-ha"
//   entrypoint = "DurableHaApi"
// then `await env.DB.execute(["INSERT ..."], { transaction: true })`, `await env.DB.query(["SELECT ..."])`.
// Service bindings are granted by the account owner in configuration, so these calls need no token.
import { WorkerEntrypoint } from "cloudflare:workers";
import type { AppEnv } from "./config";
import { createApp } from "./app";
import type { ClusterHealth } from "./cluster/health";
import {
  rpcExecute,
  rpcHealth,
  rpcQuery,
  type RpcExecuteOptions,
  type RpcQueryOptions,
  type RpcResult,
  type StatementInput,
} from "./data/rpc-api";
import { runtimeFactory, type Runtime } from "./runtime";

export type { RpcExecuteOptions, RpcQueryOptions, RpcResult, StatementInput } from "./data/rpc-api";
export type { ClusterHealth } from "./cluster/health";

const runtimeOf = runtimeFactory({});
const httpApp = createApp();

export class DurableHaApi extends WorkerEntrypoint<AppEnv> {
  /** Executes statements through the log, on the leader; the result carries the write's raft index. */
  async execute(statements: readonly StatementInput[], options?: RpcExecuteOptions): Promise<RpcResult> {
    return withRuntime(this.env, (runtime) => rpcExecute(runtime, statements, options));
  }

  /** Reads at the requested consistency level (default weak). */
  async query(statements: readonly StatementInput[], options?: RpcQueryOptions): Promise<RpcResult> {
    return withRuntime(this.env, (runtime) => rpcQuery(runtime, statements, options));
  }

  /** The same aggregate as GET /api/v1/cluster/health. */
  async health(): Promise<ClusterHealth> {
    return rpcHealth(runtimeOf(this.env));
  }

  /** The whole HTTP API, for callers that prefer fetch (credentials are then required as over HTTP). */
  override async fetch(request: Request): Promise<Response> {
    return httpApp.fetch(request, this.env, this.ctx);
  }
}

async function withRuntime(env: AppEnv, run: (runtime: Runtime) => Promise<RpcResult>): Promise<RpcResult> {
  let runtime: Runtime;
  try {
    runtime = runtimeOf(env);
  } catch (error) {
    return { ok: false, status: 500, code: "CONFIG", error: (error as Error).message, outcomeUnknown: false };
  }
  return run(runtime);
}
