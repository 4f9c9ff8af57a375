// A harness for the observability routes over real clusters of ClusterNode objects: the production app with its
// own tokens (an admin and a metrics-only scraper), and nodes the test can make hang as seen from the worker.
import { env as testEnv } from "cloudflare:test";
import { expect } from "vitest";
import type { ClusterNodeRpc } from "../../../src/objects/api";
import { createApp } from "../../../src/worker/app";
import type { AppEnv } from "../../../src/worker/config";
import { durableObjectDirectory } from "../../../src/worker/directory";
import { LeaderCache } from "../../../src/worker/routing/leader-cache";
import { parseMetrics, type Sample } from "../../../scripts/lib/metrics-text";
import type { TestCluster } from "./cluster";

export const TOKENS = { admin: "metrics-test-admin-01", scraper: "metrics-test-scraper-02" } as const;
export const OPENMETRICS_ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";

export class MetricsHarness {
  readonly env: AppEnv;
  readonly hung = new Set<string>();
  private readonly app: ReturnType<typeof createApp>;

  constructor(readonly cluster: TestCluster) {
    this.env = {
      ...testEnv,
      CLUSTER_NAME: cluster.config.name,
      CLUSTER_NODES: cluster.names.join(","),
      HEARTBEAT_INTERVAL_MS: String(cluster.config.heartbeatIntervalMs),
      ELECTION_TIMEOUT_MS: String(cluster.config.electionTimeoutMs),
      DHA_TOKENS: JSON.stringify({ [TOKENS.admin]: ["read", "write", "admin"], [TOKENS.scraper]: ["metrics"] }),
    };
    this.app = createApp({
      leaders: new LeaderCache(),
      directory: (env, config) => {
        const real = durableObjectDirectory(env, config);
        // A hung node: every call from the worker waits forever (the per-node deadline must cut it off).
        const never = (() => new Promise<never>(() => {})) as never;
        const hang: ClusterNodeRpc = {
          start: never,
          status: never,
          execute: never,
          query: never,
          waitForLeader: never,
          transferLeadership: never,
          addMember: never,
          removeMember: never,
          backup: never,
          metrics: never,
          recentEvents: never,
        };
        return { config, node: (name) => (this.hung.has(name) ? hang : real.node(name)) };
      },
    });
  }

  async send(
    method: string,
    path: string,
    options: { token?: string; json?: unknown; accept?: string; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; headers: Headers; text: string }> {
    const headers: Record<string, string> = {
      Authorization: `Bearer ${options.token ?? TOKENS.admin}`,
      ...options.headers,
    };
    if (options.accept !== undefined) {
      headers.Accept = options.accept;
    }
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    const request = new Request(`https://db.example.com${path}`, {
      method,
      headers,
      ...(options.json === undefined ? {} : { body: JSON.stringify(options.json) }),
    });
    const response = await this.app.request(request, undefined, this.env);
    return { status: response.status, headers: response.headers, text: await response.text() };
  }

  async scrape(query = ""): Promise<Sample[]> {
    const response = await this.send("GET", `/metrics${query}`, { token: TOKENS.scraper });
    expect(response.status, response.text).toBe(200);
    return parseMetrics(response.text);
  }

  async write(count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const written = await this.send("POST", "/db/execute", { json: [["INSERT INTO t(v) VALUES(?)", `v${i}`]] });
      expect(written.status, written.text).toBe(200);
    }
  }
}
