// A deployment with databases, for workerd tests: the production app over real ClusterNode objects, with its own
// CLUSTER_NAME (so its own system database, catalog and databases), short Raft timing, and test tokens. Every
// node it may have started (default cluster, system database, each database) is halted after the test.
import { env as testEnv, runInDurableObject } from "cloudflare:test";
import { onTestFinished } from "vitest";
import type { ClusterNode } from "../../../src/objects/cluster-node";
import { objectName } from "../../../src/objects/config";
import { databaseClusterName, SYSTEM_DATABASE } from "../../../src/objects/lifecycle/names";
import { createApp, type AppOptions } from "../../../src/worker/app";
import type { AppEnv } from "../../../src/worker/config";
import { LeaderCache } from "../../../src/worker/routing/leader-cache";
import { buildRequest, TOKENS_JSON, type RequestOptions } from "../http-support";
import { uniqueClusterName, waitFor } from "./cluster";

export interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly json: () => Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test bodies
}

export class DeploymentHarness {
  readonly env: AppEnv;
  readonly app: ReturnType<typeof createApp>;
  readonly nodes: readonly string[];
  /** Databases this test created (name and generation), halted after the test unless wiped. */
  private readonly touched = new Set<string>();

  constructor(
    prefix: string,
    options: { tokens?: string; maxDatabases?: number; app?: AppOptions; nodes?: number } = {},
  ) {
    this.nodes = Array.from({ length: options.nodes ?? 3 }, (_, i) => `n${i + 1}`);
    this.env = {
      ...testEnv,
      CLUSTER_NAME: uniqueClusterName(prefix),
      CLUSTER_NODES: this.nodes.join(","),
      // Slower than the other workerd tests: a deployment runs several Raft groups at once on a shared machine.
      HEARTBEAT_INTERVAL_MS: "100",
      ELECTION_TIMEOUT_MS: "1000",
      DHA_TOKENS: options.tokens ?? TOKENS_JSON,
      ...(options.maxDatabases === undefined ? {} : { DHA_MAX_DATABASES: String(options.maxDatabases) }),
    } as AppEnv;
    this.app = createApp({ leaders: new LeaderCache(), ...options.app });
    this.touched.add(this.env.CLUSTER_NAME);
    this.touched.add(this.clusterOf(SYSTEM_DATABASE, 1));
    onTestFinished(() => this.haltAll());
  }

  get deployment(): string {
    return this.env.CLUSTER_NAME;
  }

  clusterOf(database: string, generation: number): string {
    return databaseClusterName({ deployment: this.deployment, database, generation });
  }

  stub(cluster: string, node: string): DurableObjectStub<ClusterNode> {
    return testEnv.CLUSTER_NODE.getByName(objectName({ cluster, node }));
  }

  async send(method: string, path: string, init: RequestOptions = {}): Promise<Reply> {
    const response = await this.app.request(buildRequest(method, path, init), undefined, this.env);
    const text = await response.text();
    return { status: response.status, headers: response.headers, text, json: () => JSON.parse(text) };
  }

  /**
   * Sends the request again while it answers 503 or 504 (no leader yet, a leader lost mid-way), as a client of
   * these idempotent routes would, until it answers otherwise or the deadline passes.
   */
  async untilDone(method: string, path: string, init: RequestOptions = {}, timeoutMs = 120_000): Promise<Reply> {
    let last: Reply | undefined;
    await waitFor(
      `${method} ${path} to answer other than 503/504`,
      async () => {
        last = await this.send(method, path, init);
        return last.status === 503 || last.status === 504 ? undefined : last;
      },
      { timeoutMs, intervalMs: 50 },
    );
    return last as Reply;
  }

  /** PUT /api/v1/databases/{name} until it answers, expecting 200 or 201; the database is halted after the test. */
  async create(name: string, body: unknown = { nodes: 3 }): Promise<{ generation: number; status: number }> {
    this.touched.add(this.clusterOf(name, 1));
    const reply = await this.untilDone("PUT", `/api/v1/databases/${name}?timeout=30s`, { json: body });
    if (reply.status !== 200 && reply.status !== 201) {
      throw new Error(`PUT ${name}: ${reply.status} ${reply.text}`);
    }
    const generation = reply.json().generation as number;
    this.touched.add(this.clusterOf(name, generation));
    return { generation, status: reply.status };
  }

  /** Halts the nodes of this generation of `database` after the test (for databases not made through create()). */
  touch(database: string, generation: number): void {
    this.touched.add(this.clusterOf(database, generation));
  }

  /** What is left in one node object's storage: KV keys, user tables, the alarm. */
  async storageOf(cluster: string, node: string): Promise<{ keys: string[]; tables: string[]; alarm: number | null }> {
    return runInDurableObject(this.stub(cluster, node), async (_instance, state) => ({
      keys: [...state.storage.kv.list()].map(([key]) => key),
      tables: state.storage.sql
        .exec<{ name: string }>(
          "SELECT name FROM sqlite_master WHERE name NOT LIKE '_cf_%' AND name NOT LIKE 'sqlite_%'",
        )
        .toArray()
        .map((row) => row.name),
      alarm: await state.storage.getAlarm(),
    }));
  }

  private async haltAll(): Promise<void> {
    await Promise.all(
      [...this.touched].flatMap((cluster) =>
        this.nodes.map((node) =>
          this.stub(cluster, node)
            .testHalt()
            .catch(() => undefined),
        ),
      ),
    );
  }
}
