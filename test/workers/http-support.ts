// Fake nodes implementing ClusterNodeRpc, and helpers to call the app with a hand-built env (http-*.test.ts); and
// the production app over real clusters of ClusterNode objects (http-real-*.test.ts).
import type {
  BackupRequest,
  BackupValue,
  ClusterConfig,
  ClusterNodeRpc,
  ExecuteRequest,
  ExecuteValue,
  MemberChangeRequest,
  RepairOutcome,
  RepairRequest,
  NodeAddress,
  NodeError,
  NodeErrorCode,
  NodeResult,
  NodeStatusReport,
  QueryRequest,
  QueryValue,
  ReplicaReport,
  TransferRequest,
  WaitForLeaderRequest,
} from "../../src/objects/api";
import { env as testEnv } from "cloudflare:test";
import type { Statement, StatementResult } from "../../src/shared/sql";
import { createApp, type AppOptions } from "../../src/worker/app";
import type { AppEnv } from "../../src/worker/config";
import { durableObjectDirectory, type NodeDirectory } from "../../src/worker/directory";
import { LeaderCache } from "../../src/worker/routing/leader-cache";
import type { TestCluster } from "./helpers/cluster";

export const TOKENS = {
  admin: "test-admin-token-0001",
  writer: "test-write-token-0002",
  reader: "test-read-token-00003",
} as const;

export const TOKENS_JSON = JSON.stringify({
  [TOKENS.admin]: ["read", "write", "admin"],
  [TOKENS.writer]: ["read", "write"],
  [TOKENS.reader]: ["read"],
});

type Method = keyof ClusterNodeRpc;
type Membership = { readonly voters: readonly string[]; readonly learners: readonly string[] };

export interface Call {
  readonly node: string;
  readonly method: Method;
  readonly request: unknown;
}

/** A behaviour override: return a result, or undefined to fall through to the default behaviour. */
export type Override = (
  request: never,
  node: FakeNode,
) => Promise<NodeResult<unknown> | undefined> | NodeResult<unknown> | undefined;

let clusterCounter = 0;

/** A cluster of fake nodes whose leader, replicas and failures the test controls. */
export class FakeCluster {
  readonly name: string;
  readonly nodes = new Map<string, FakeNode>();
  readonly calls: Call[] = [];
  leader: string | null;
  term = 1;
  raftIndex = 10;
  /** Applied index per node (defaults to raftIndex). */
  readonly applied = new Map<string, number>();
  readonly replicas = new Map<string, Partial<ReplicaReport>>();
  readonly schemaHashes = new Map<string, string>();
  /** Per node: milliseconds since it heard from a leader (defaults: 0 on the leader, 40 on followers, null without one). */
  readonly leaderContactMs = new Map<string, number | null>();
  voters: string[];
  learners: string[] = [];
  /** Per node and method: overrides tried before the default behaviour, first registered first. */
  private readonly overrides = new Map<string, Override[]>();
  private readonly leaderWaiters: (() => void)[] = [];
  /** Every execute the leader applied, by request id (the leader deduplicates). */
  readonly applied_requests = new Map<string, ExecuteValue>();
  executeResult: (statement: Statement, index: number) => StatementResult = () => ({
    lastInsertId: 1,
    rowsAffected: 1,
  });
  queryResult: (statement: Statement) => StatementResult = () => ({
    columns: ["id", "name"],
    types: ["integer", "text"],
    rows: [[1, "fiona"]],
  });

  constructor(members: readonly string[] = ["n1", "n2", "n3"], leader: string | null = "n1") {
    this.name = `test-${++clusterCounter}-${crypto.randomUUID().slice(0, 8)}`;
    this.voters = [...members];
    this.leader = leader;
    for (const member of members) {
      this.nodes.set(member, new FakeNode(member, this));
    }
  }

  node(name: string): FakeNode {
    let node = this.nodes.get(name);
    if (node === undefined) {
      node = new FakeNode(name, this);
      this.nodes.set(name, node);
    }
    return node;
  }

  /** The directory the app uses instead of env.CLUSTER_NODE. */
  directory = (_env: AppEnv, config: ClusterConfig): NodeDirectory => ({
    config,
    node: (name) => this.node(name),
  });

  on(node: string, method: Method, override: Override): this {
    const key = `${node}/${method}`;
    this.overrides.set(key, [...(this.overrides.get(key) ?? []), override]);
    return this;
  }

  /** The node never answers any call. */
  hang(node: string): this {
    for (const method of METHODS) {
      this.on(node, method, () => new Promise<never>(() => {}));
    }
    return this;
  }

  /** Every call to the node throws, like a broken RPC transport. */
  unreachable(node: string, extra: Record<string, unknown> = {}): this {
    for (const method of METHODS) {
      this.on(node, method, () => {
        throw Object.assign(new Error(`${node} is unreachable`), extra);
      });
    }
    return this;
  }

  overridesFor(node: string, method: Method): readonly Override[] {
    return this.overrides.get(`${node}/${method}`) ?? [];
  }

  elect(leader: string | null, term = this.term + 1): void {
    this.leader = leader;
    this.term = term;
    if (leader !== null) {
      for (const wake of this.leaderWaiters.splice(0)) {
        wake();
      }
    }
  }

  /** Resolves when a leader is elected, or after timeoutMs. */
  waitForLeader(timeoutMs: number): Promise<void> {
    if (this.leader !== null) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.leaderWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  callsTo(method: Method, node?: string): Call[] {
    return this.calls.filter((call) => call.method === method && (node === undefined || call.node === node));
  }

  env(overrides: Partial<AppEnv> = {}): AppEnv {
    return {
      CLUSTER_NAME: this.name,
      CLUSTER_NODES: [...this.nodes.keys()].join(","),
      HEARTBEAT_INTERVAL_MS: "100",
      ELECTION_TIMEOUT_MS: "1000",
      DHA_TOKENS: TOKENS_JSON,
      CLUSTER_NODE: undefined as unknown as AppEnv["CLUSTER_NODE"],
      ...overrides,
    };
  }
}

const METHODS: readonly Method[] = [
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
];

export function nodeError(
  node: string,
  code: NodeErrorCode,
  message: string,
  extra: Partial<NodeError> = {},
): NodeResult<never> {
  return { ok: false, node, error: { code, message, retryable: true, ...extra } };
}

export class FakeNode implements ClusterNodeRpc {
  constructor(
    readonly name: string,
    private readonly cluster: FakeCluster,
  ) {}

  private async dispatch<T>(
    method: Method,
    request: unknown,
    fallback: () => Promise<NodeResult<T>> | NodeResult<T>,
  ): Promise<NodeResult<T>> {
    this.cluster.calls.push({ node: this.name, method, request });
    for (const override of this.cluster.overridesFor(this.name, method)) {
      const result = await override(request as never, this);
      if (result !== undefined) {
        return result as NodeResult<T>;
      }
    }
    return fallback();
  }

  private notLeader(): NodeResult<never> {
    const leader = this.cluster.leader;
    return leader === null
      ? nodeError(this.name, "NO_LEADER", "no leader is known")
      : nodeError(this.name, "NOT_LEADER", `${this.name} is not the leader`, { leader });
  }

  private isLeader(): boolean {
    return this.cluster.leader === this.name;
  }

  report(): NodeStatusReport {
    const cluster = this.cluster;
    const leading = this.isLeader();
    const applied = cluster.applied.get(this.name) ?? cluster.raftIndex;
    return {
      node: this.name,
      cluster: cluster.name,
      started: true,
      member: cluster.voters.includes(this.name) || cluster.learners.includes(this.name),
      role: leading ? "leader" : "follower",
      term: cluster.term,
      leader: cluster.leader,
      commitIndex: cluster.raftIndex,
      appliedIndex: applied,
      lastLogIndex: cluster.raftIndex,
      firstLogIndex: 1,
      voters: cluster.voters,
      learners: cluster.learners,
      election: { status: cluster.leader === null ? "VOTING" : "ELECTED", term: cluster.term, lastElectionMs: 120 },
      schemaVersion: 3,
      schemaHash: cluster.schemaHashes.get(this.name) ?? "hash-a",
      lastLeaderContactMs: cluster.leaderContactMs.has(this.name)
        ? (cluster.leaderContactMs.get(this.name) ?? null)
        : leading
          ? 0
          : cluster.leader === null
            ? null
            : 40,
      replicas: leading
        ? [...cluster.voters, ...cluster.learners]
            .filter((name) => name !== this.name)
            .map((name) => ({
              name,
              isLearner: cluster.learners.includes(name),
              status: "ONLINE",
              matchIndex: cluster.raftIndex,
              lagEntries: 0,
              lastContactMs: 30,
              consecutiveFailures: 0,
              reconnections: 0,
              breaker: "CLOSED",
              schemaHash: cluster.schemaHashes.get(name) ?? "hash-a",
              ...cluster.replicas.get(name),
            }))
        : [],
      locationHint: null,
    };
  }

  start(address: NodeAddress): Promise<NodeResult<NodeStatusReport>> {
    return this.dispatch<NodeStatusReport>("start", address, () => ({
      ok: true,
      node: this.name,
      value: this.report(),
    }));
  }

  status(address: NodeAddress): Promise<NodeResult<NodeStatusReport>> {
    return this.dispatch<NodeStatusReport>("status", address, () => ({
      ok: true,
      node: this.name,
      value: this.report(),
    }));
  }

  execute(request: ExecuteRequest): Promise<NodeResult<ExecuteValue>> {
    return this.dispatch<ExecuteValue>("execute", request, () => {
      if (!this.isLeader()) {
        return this.notLeader();
      }
      const known = this.cluster.applied_requests.get(request.request.id);
      if (known !== undefined) {
        return { ok: true, node: this.name, value: known };
      }
      const raftIndex = ++this.cluster.raftIndex;
      const value: ExecuteValue = {
        results: request.request.statements.map((statement, i) => this.cluster.executeResult(statement, i)),
        raftIndex,
      };
      this.cluster.applied_requests.set(request.request.id, value);
      return { ok: true, node: this.name, value };
    });
  }

  query(request: QueryRequest): Promise<NodeResult<QueryValue>> {
    return this.dispatch<QueryValue>("query", request, () => {
      if ((request.level === "weak" || request.level === "strong") && !this.isLeader()) {
        return this.notLeader();
      }
      if (request.level === "linearizable" && this.cluster.leader === null) {
        return nodeError(this.name, "NO_LEADER", "no leader to confirm the read index");
      }
      const applied = this.cluster.applied.get(this.name) ?? this.cluster.raftIndex;
      if (request.minAppliedIndex !== undefined && applied < request.minAppliedIndex) {
        return nodeError(this.name, "STALE", `${this.name} has applied ${applied} < ${request.minAppliedIndex}`, {
          leader: this.cluster.leader,
        });
      }
      return {
        ok: true,
        node: this.name,
        value: {
          results: request.statements.map((statement) => this.cluster.queryResult(statement)),
          raftIndex: applied,
        },
      };
    });
  }

  waitForLeader(
    request: WaitForLeaderRequest,
  ): Promise<NodeResult<{ readonly leader: string; readonly term: number }>> {
    return this.dispatch<{ readonly leader: string; readonly term: number }>("waitForLeader", request, async () => {
      await this.cluster.waitForLeader(request.timeoutMs);
      const leader = this.cluster.leader;
      return leader === null
        ? nodeError(this.name, "TIMEOUT", `no leader within ${request.timeoutMs} ms`)
        : { ok: true, node: this.name, value: { leader, term: this.cluster.term } };
    });
  }

  transferLeadership(
    request: TransferRequest,
  ): Promise<NodeResult<{ readonly leader: string; readonly term: number }>> {
    return this.dispatch<{ readonly leader: string; readonly term: number }>("transferLeadership", request, () => {
      if (!this.isLeader()) {
        return this.notLeader();
      }
      const to = request.to ?? this.cluster.voters.find((name) => name !== this.name);
      if (to === undefined || !this.cluster.voters.includes(to)) {
        return nodeError(this.name, "INVALID_REQUEST", `${String(to)} is not a voter`, { retryable: false });
      }
      this.cluster.elect(to);
      return { ok: true, node: this.name, value: { leader: to, term: this.cluster.term } };
    });
  }

  addMember(
    request: MemberChangeRequest,
  ): Promise<NodeResult<{ readonly voters: readonly string[]; readonly learners: readonly string[] }>> {
    return this.dispatch<Membership>("addMember", request, () => {
      if (!this.isLeader()) {
        return this.notLeader();
      }
      this.cluster.learners = [...this.cluster.learners, request.member.name];
      return { ok: true, node: this.name, value: { voters: this.cluster.voters, learners: this.cluster.learners } };
    });
  }

  removeMember(
    request: MemberChangeRequest,
  ): Promise<NodeResult<{ readonly voters: readonly string[]; readonly learners: readonly string[] }>> {
    return this.dispatch<Membership>("removeMember", request, () => {
      if (!this.isLeader()) {
        return this.notLeader();
      }
      const name = request.member.name;
      if (!this.cluster.voters.includes(name) && !this.cluster.learners.includes(name)) {
        return nodeError(this.name, "INVALID_REQUEST", `${name} is not a member`, { retryable: false });
      }
      this.cluster.voters = this.cluster.voters.filter((member) => member !== name);
      this.cluster.learners = this.cluster.learners.filter((member) => member !== name);
      return { ok: true, node: this.name, value: { voters: this.cluster.voters, learners: this.cluster.learners } };
    });
  }

  repairMember(request: RepairRequest): Promise<NodeResult<RepairOutcome>> {
    return this.dispatch<RepairOutcome>("repairMember", request, () => {
      if (!this.isLeader()) {
        return this.notLeader();
      }
      if (!this.cluster.voters.includes(request.member) && !this.cluster.learners.includes(request.member)) {
        return nodeError(this.name, "NOT_MEMBER", `${request.member} is not a member`, { retryable: false });
      }
      return { ok: true, node: this.name, value: { node: request.member, imageIndex: 10, durationMs: 5 } };
    });
  }

  backup(request: BackupRequest): Promise<NodeResult<BackupValue>> {
    return this.dispatch<BackupValue>("backup", request, () =>
      this.isLeader()
        ? {
            ok: true,
            node: this.name,
            value: {
              sql: "CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO foo VALUES(1,'fiona');\n",
              raftIndex: this.cluster.raftIndex,
            },
          }
        : this.notLeader(),
    );
  }
}

export interface Harness {
  readonly cluster: FakeCluster;
  readonly env: AppEnv;
  readonly app: ReturnType<typeof createApp>;
  /** Sends a request; `token` defaults to the admin token, null sends no credentials. */
  request(method: string, path: string, init?: RequestOptions): Promise<Response>;
}

export interface RequestOptions {
  readonly body?: string | Uint8Array;
  readonly json?: unknown;
  readonly token?: string | null;
  readonly headers?: Record<string, string>;
  /** Cloudflare's request metadata, e.g. { continent: "EU" }. */
  readonly cf?: Record<string, unknown>;
}

/** Backoff waits are scaled down so tests stay fast; random 0 picks the first node and waits nothing. */
export function harness(
  cluster = new FakeCluster(),
  options: AppOptions = {},
  envOverrides: Partial<AppEnv> = {},
): Harness {
  const env = cluster.env(envOverrides);
  const app = createApp({
    directory: cluster.directory,
    leaders: new LeaderCache(),
    random: () => 0,
    ...options,
    policy: { baseBackoffMs: 1, maxBackoffMs: 4, statusTimeoutMs: 200, ...options.policy },
  });
  return {
    cluster,
    env,
    app,
    request: (method, path, init = {}) =>
      Promise.resolve(app.request(buildRequest(method, path, init), undefined, env)),
  };
}

/** A request to the app as a client would send it; `token` defaults to the admin token, null sends none. */
export function buildRequest(method: string, path: string, init: RequestOptions = {}): Request {
  const headers: Record<string, string> = { ...init.headers };
  const token = init.token === undefined ? TOKENS.admin : init.token;
  if (token !== null && headers.Authorization === undefined) {
    headers.Authorization = `Bearer ${token}`;
  }
  let body: string | Uint8Array | undefined = init.body;
  if (init.json !== undefined) {
    body = JSON.stringify(init.json);
    headers["Content-Type"] ??= "application/json";
  }
  const requestInit = {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
    ...(init.cf === undefined ? {} : { cf: init.cf }),
  };
  return new Request(`https://db.example.com${path}`, requestInit as RequestInit);
}

// ---------------------------------------------------------------------------------------------------------------
// Real clusters: the app as production wires it (env vars parsed, Durable Object stubs of env.CLUSTER_NODE), with
// the cluster of a TestCluster (unique name, short timeouts) passed in through the env, as wrangler would.

export interface RecordedCall {
  readonly node: string;
  readonly method: Method;
  /** What the call carried: every request extends NodeAddress. */
  readonly address: NodeAddress;
}

export interface RealHarnessOptions {
  /** Merged over the defaults (production's, with a fresh leader cache). */
  readonly app?: AppOptions;
}

/**
 * The production app over a real cluster. Calls to nodes go through the production directory; the harness only
 * records them, and can make chosen nodes hang (never answer), which real objects cannot be made to do.
 */
export class RealHarness {
  readonly env: AppEnv;
  readonly app: ReturnType<typeof createApp>;
  readonly leaders = new LeaderCache();
  readonly calls: RecordedCall[] = [];
  /** Nodes whose calls from the worker never answer. */
  readonly hung = new Set<string>();
  /** Drives node choice and jitter: set it to pick which node a read tries first. Defaults to Math.random. */
  random: () => number = () => Math.random();

  constructor(
    readonly cluster: TestCluster,
    options: RealHarnessOptions = {},
  ) {
    this.env = {
      ...testEnv,
      CLUSTER_NAME: cluster.config.name,
      CLUSTER_NODES: cluster.config.members.map((member) => member.name).join(","),
      HEARTBEAT_INTERVAL_MS: String(cluster.config.heartbeatIntervalMs),
      ELECTION_TIMEOUT_MS: String(cluster.config.electionTimeoutMs),
      DHA_TOKENS: TOKENS_JSON,
    };
    this.app = createApp({
      leaders: this.leaders,
      random: () => this.random(),
      ...options.app,
      directory: (env, config) => this.recording(durableObjectDirectory(env, config)),
    });
  }

  request(method: string, path: string, init: RequestOptions = {}): Promise<Response> {
    return Promise.resolve(this.app.request(buildRequest(method, path, init), undefined, this.env));
  }

  /** Sends the request and returns status, headers and the body text. */
  async send(
    method: string,
    path: string,
    init: RequestOptions = {},
  ): Promise<{ status: number; headers: Headers; text: string }> {
    const response = await this.request(method, path, init);
    return { status: response.status, headers: response.headers, text: await response.text() };
  }

  /** Makes reads that any node may serve try `node` first. */
  preferNode(node: string): void {
    const names = this.cluster.config.members.map((member) => member.name);
    const index = names.indexOf(node);
    if (index === -1) {
      throw new Error(`${node} is not a configured member`);
    }
    // nodePreference rotates the members from floor(random * n): aim at the middle of the node's slot.
    this.random = () => (index + 0.5) / names.length;
  }

  callsTo(method: Method): RecordedCall[] {
    return this.calls.filter((call) => call.method === method);
  }

  private recording(directory: NodeDirectory): NodeDirectory {
    return {
      config: directory.config,
      node: (name) => {
        const stub = directory.node(name);
        const wrap = <M extends Method>(method: M): ClusterNodeRpc[M] =>
          ((request: NodeAddress) => {
            this.calls.push({ node: name, method, address: request });
            if (this.hung.has(name)) {
              return new Promise<never>(() => {});
            }
            return (stub[method] as (request: NodeAddress) => Promise<unknown>)(request);
          }) as unknown as ClusterNodeRpc[M];
        return {
          start: wrap("start"),
          status: wrap("status"),
          execute: wrap("execute"),
          query: wrap("query"),
          waitForLeader: wrap("waitForLeader"),
          transferLeadership: wrap("transferLeadership"),
          addMember: wrap("addMember"),
          removeMember: wrap("removeMember"),
          repairMember: wrap("repairMember"),
          backup: wrap("backup"),
        };
      },
    };
  }
}
