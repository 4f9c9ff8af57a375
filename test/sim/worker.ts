// The simulated worker: the clients' requests go through the worker's own data service (src/worker/data/service.ts)
// and router (src/worker/routing: leader cache, retries with backoff inside the deadline, one request id per write,
// outcome-unknown classification), over a directory whose node stubs carry each RPC through the simulation to the
// node's NodeHost. The router's clock (now, backoff sleeps, the deadline of each node call) is simulated time.
import {
  sleep as sleepOn,
  type BackupValue as NodeBackupValue,
  type ClusterConfig,
  type ClusterNodeRpc,
  type NodeResult,
  type ScheduleTimer,
} from "../../src/objects/api.js";
import type { NodeHost } from "../../src/objects/node-host.js";
import { DEFAULT_LIMITS } from "../../src/shared/sql-text/limits.js";
import { backupFromLeader, executeStatements, queryStatements } from "../../src/worker/data/service.js";
import { RecentWrites, recentWritesTiming } from "../../src/worker/data/recent-writes.js";
import { LeaderCache } from "../../src/worker/routing/leader-cache.js";
import {
  ClusterRouter,
  DEFAULT_ROUTING_POLICY,
  type RouteOutcome,
  type RouterBugs,
} from "../../src/worker/routing/router.js";
import type { Runtime } from "../../src/worker/runtime.js";
import type { Prng } from "./prng.js";
import type { BackupValue, ClientOutcome, ClientRequest } from "./workload.js";

/** What the simulated worker reaches. */
export interface WorkerEnvironment {
  readonly config: ClusterConfig;
  readonly random: Prng;
  nowMs(): number;
  /** Runs `fn` as a worker event after `delayMs` of simulated time; returns a cancel function. */
  readonly timer: ScheduleTimer;
  /**
   * Carries one RPC of `clientId` to node `to` and its answer back (or rejects as a failed RPC: the node was down
   * or crashed with the call in flight). `servedByLeader` in the answer: whether the node led the highest term.
   */
  callNode<T>(
    clientId: number,
    to: string,
    invoke: (node: NodeHost) => Promise<NodeResult<T>>,
  ): Promise<{ readonly answer: NodeResult<T>; readonly servedByLeader: boolean }>;
  readonly bugs: RouterBugs;
}

/** The simulation's databases are small: a node sends their dumps inline (a large one comes as a stream). */
function inlineDump(outcome: RouteOutcome<NodeBackupValue>): RouteOutcome<BackupValue> {
  if (!outcome.ok) {
    return outcome;
  }
  const value = outcome.value;
  if (!("sql" in value)) {
    throw new Error(`a simulated backup of ${value.sqlBytes} bytes came as a stream`);
  }
  return { ...outcome, value };
}

export class SimWorker {
  /** One isolate: every request shares what the others learned about the leader. */
  private readonly leaders = new LeaderCache();
  /** Per client: whether the node that last answered its query led the highest term then. */
  private readonly lastQueryFromLeader = new Map<number, boolean>();
  /** One isolate: the writes it acknowledged give its level-none reads a floor, and the nodes behind it go last. */
  private readonly recentWrites: RecentWrites;

  constructor(private readonly env: WorkerEnvironment) {
    this.recentWrites = new RecentWrites(recentWritesTiming(env.config));
  }

  forgetLeader(): void {
    const cached = this.leaders.get(this.env.config.name);
    if (cached !== undefined) {
      this.leaders.forget(this.env.config.name, cached);
    }
  }

  async route(clientId: number, request: ClientRequest, deadlineAt: number): Promise<ClientOutcome> {
    const runtime = this.runtimeFor(clientId);
    this.lastQueryFromLeader.set(clientId, false);
    switch (request.kind) {
      case "execute":
        return {
          outcome: await executeStatements(runtime, {
            statements: request.statements,
            transaction: false,
            requestId: request.requestId,
            deadlineAt,
          }),
          servedByLeader: false,
        };
      case "query": {
        const outcome = await queryStatements(runtime, {
          statements: request.statements,
          level: request.level,
          ...(request.minRaftIndex === undefined ? {} : { minRaftIndex: request.minRaftIndex }),
          transaction: false,
          deadlineAt,
        });
        return { outcome, servedByLeader: this.lastQueryFromLeader.get(clientId) === true };
      }
      case "backup":
        return {
          outcome: inlineDump(
            await backupFromLeader(runtime, { deadlineAt, maxDumpBytes: DEFAULT_LIMITS.maxBackupDumpBytes }),
          ),
          servedByLeader: false,
        };
    }
  }

  /** The worker's Runtime for one client's requests: the shared leader cache, simulated time and randomness. */
  private runtimeFor(clientId: number): Runtime {
    const env = this.env;
    const random = (): number => env.random.nextUint32() / 2 ** 32;
    const now = (): number => env.nowMs();
    const sleep = (ms: number): Promise<void> => sleepOn(ms, { schedule: env.timer });
    const policy = DEFAULT_ROUTING_POLICY;
    const router = new ClusterRouter({
      directory: { config: env.config, node: (name) => this.stub(clientId, name) },
      leaders: this.leaders,
      policy,
      random,
      now,
      sleep,
      timer: env.timer,
      bugs: env.bugs,
    });
    const recentWrites = this.recentWrites;
    return { config: env.config, router, limits: DEFAULT_LIMITS, policy, now, random, sleep, recentWrites };
  }

  /** A node stub: each worker-facing RPC runs the NodeHost method ClusterNode's RPC method runs. */
  private stub(clientId: number, to: string): ClusterNodeRpc {
    const call = async <T>(invoke: (node: NodeHost) => Promise<NodeResult<T>>): Promise<NodeResult<T>> =>
      (await this.env.callNode(clientId, to, invoke)).answer;
    const unsupported = (what: string) => (): Promise<never> => Promise.reject(new Error(`${what} is not simulated`));
    return {
      start: (address) => call((node) => node.status(address, null)),
      status: (address) => call((node) => node.status(address, null)),
      execute: (request) => call((node) => node.execute(request)),
      query: async (request) => {
        const { answer, servedByLeader } = await this.env.callNode(clientId, to, (node) => node.query(request));
        this.lastQueryFromLeader.set(clientId, answer.ok && servedByLeader);
        return answer;
      },
      waitForLeader: (request) => call((node) => node.waitForLeader(request)),
      transferLeadership: (request) => call((node) => node.transferLeadership(request)),
      backup: (address) => call((node) => node.backup(address)),
      addMember: unsupported("addMember"),
      removeMember: unsupported("removeMember"),
    };
  }
}
