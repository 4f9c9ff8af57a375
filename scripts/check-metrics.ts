// `npm run test:ops` (second half): GET /metrics of a real local cluster, checked by Prometheus itself.
//  1. Starts the server as `npm start` does (wrangler dev, empty state, free ports), writes and reads a little so
//     that every kind of series exists, and waits until all three nodes answer with a leader elected.
//  2. Pipes the text format 0.0.4 through `promtool check metrics` (parse errors and lint problems both fail).
//  3. Checks the OpenMetrics answer's framing, then runs a real Prometheus server that scrapes the endpoint (it
//     asks for OpenMetrics first) and queries what it stored: proof that Prometheus parses both formats.
// promtool and prometheus come with Debian's `prometheus` package. Without promtool the check is skipped, except
// when CI is set, where it fails; without the prometheus server only step 3's scrape is skipped (failed in CI).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalServer, tokensOf } from "./lib/local-server";
import { freePort, pollUntil as pollWithOptions, REPO_ROOT as ROOT, spawnGroup } from "./lib/processes";

const STARTUP_TIMEOUT_MS = 60_000;
const CLUSTER_TIMEOUT_MS = 60_000;
const SCRAPE_TIMEOUT_MS = 60_000;
const NODES = ["n1", "n2", "n3"];
const OPENMETRICS_ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";

function isCi(): boolean {
  const value = process.env.CI;
  return value !== undefined && value !== "" && value !== "0" && value.toLowerCase() !== "false";
}

function has(command: string): boolean {
  const found = spawnSync(command, ["--version"], { stdio: "ignore" });
  return found.error === undefined && found.status === 0;
}

if (!has("promtool")) {
  if (isCi()) {
    console.error(
      "check-metrics: promtool is missing and CI is set: install it (apt-get install prometheus); .ci/run does",
    );
    process.exit(1);
  }
  console.log("check-metrics: SKIPPED, promtool is not installed (apt-get install prometheus); CI would fail here");
  process.exit(0);
}

/** Polls every 200 ms; a probe that throws (the cluster still electing, say) is tried again until the deadline. */
function pollUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  return pollWithOptions(what, { timeoutMs, intervalMs: 200, retryErrors: true }, probe);
}

/** The read and write token of the development secrets, as `npm start` loads them (.dev.vars, made from the example). */
function developmentToken(): string {
  const file = existsSync(join(ROOT, ".dev.vars")) ? join(ROOT, ".dev.vars") : join(ROOT, ".dev.vars.example");
  const writer = Object.entries(tokensOf(file)).find(([, roles]) => roles.includes("read") && roles.includes("write"));
  if (writer === undefined) {
    throw new Error(`${file} has no token with the read and write roles`);
  }
  return writer[0];
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const cleanups: (() => unknown)[] = [];
let failed = false;
try {
  const token = developmentToken();
  const server = await LocalServer.start({ startupTimeoutMs: STARTUP_TIMEOUT_MS });
  cleanups.push(() => server.stop());
  const port = new URL(server.baseUrl).port;
  const call = (path: string, init: RequestInit & { headers?: Record<string, string> } = {}) =>
    fetch(`${server.baseUrl}${path}`, {
      ...init,
      headers: { Authorization: `Bearer ${token}`, ...init.headers },
      signal: AbortSignal.timeout(15_000),
    });
  const statements = [
    "CREATE TABLE IF NOT EXISTS metrics_check(id INTEGER PRIMARY KEY, v TEXT)",
    ["INSERT INTO metrics_check(v) VALUES(?)", 'a "quoted" \\ value'],
  ];
  await pollUntil("a first write to be applied", CLUSTER_TIMEOUT_MS, async () => {
    const response = await call("/db/execute", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(statements),
    });
    return response.status === 200 ? true : undefined;
  });
  for (const level of ["none", "weak", "linearizable", "strong"]) {
    const response = await call(
      `/db/query?level=${level}&q=${encodeURIComponent("SELECT COUNT(*) FROM metrics_check")}`,
    );
    if (response.status !== 200) {
      throw new Error(`a ${level} read answered ${response.status}: ${await response.text()}`);
    }
  }

  const text = await pollUntil("every node to answer the scrape, with a leader", CLUSTER_TIMEOUT_MS, async () => {
    const response = await call("/metrics");
    if (response.status !== 200) {
      throw new Error(`GET /metrics answered ${response.status}: ${await response.text()}`);
    }
    const contentType = response.headers.get("content-type");
    if (contentType !== "text/plain; version=0.0.4; charset=utf-8") {
      throw new Error(`GET /metrics answered Content-Type ${contentType}`);
    }
    const body = await response.text();
    const up = NODES.every((node) => body.includes(`durable_ha_node_up{cluster="main",node="${node}"} 1`));
    return up && /durable_ha_is_leader\{[^}]*\} 1/.test(body) ? body : undefined;
  });
  const checked = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" });
  if (checked.status !== 0) {
    throw new Error(`promtool check metrics exited ${checked.status}:\n${checked.stdout}${checked.stderr}`);
  }
  const families = text.split("\n").filter((line) => line.startsWith("# TYPE ")).length;
  console.log(
    `ok: promtool check metrics passes on the live text format (${families} families, ${text.split("\n").length} lines)`,
  );

  const openMetrics = await call("/metrics", { headers: { Accept: OPENMETRICS_ACCEPT } });
  const openMetricsText = await openMetrics.text();
  if (
    openMetrics.headers.get("content-type") !== "application/openmetrics-text; version=1.0.0; charset=utf-8" ||
    !openMetricsText.endsWith("# EOF\n")
  ) {
    throw new Error(
      `the OpenMetrics answer is not framed as OpenMetrics (Content-Type ${openMetrics.headers.get("content-type")})`,
    );
  }
  console.log("ok: OpenMetrics content type and # EOF");

  if (!has("prometheus")) {
    if (isCi()) {
      throw new Error("the prometheus server is missing and CI is set (apt-get install prometheus)");
    }
    console.log("check-metrics: scrape by a real Prometheus SKIPPED, the prometheus server is not installed");
  } else {
    await scrapeWithPrometheus({ target: `127.0.0.1:${port}`, token });
  }
} catch (error) {
  failed = true;
  console.error(`check-metrics: FAILED: ${messageOf(error)}`);
} finally {
  for (const cleanup of cleanups.reverse()) {
    await cleanup();
  }
}
process.exit(failed ? 1 : 0);

/** Runs Prometheus against the endpoint until it has stored a scrape, then queries it. */
async function scrapeWithPrometheus({ target, token }: { target: string; token: string }): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "durable-ha-prometheus-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const webPort = await freePort();
  writeFileSync(join(dir, "token"), token);
  writeFileSync(
    join(dir, "prometheus.yml"),
    JSON.stringify({
      // Generous for a loaded CI machine: each node gets 1 s (?timeout=1s), the whole scrape 3 s.
      global: { scrape_interval: "3s", scrape_timeout: "3s" },
      rule_files: [join(ROOT, "ops/prometheus/alerts.yml")],
      scrape_configs: [
        {
          job_name: "durable-ha",
          metrics_path: "/metrics",
          params: { timeout: ["1s"] },
          authorization: { type: "Bearer", credentials_file: join(dir, "token") },
          static_configs: [{ targets: [target] }],
        },
      ],
    }),
  );
  const prometheus = spawnGroup(
    "prometheus",
    "prometheus",
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${webPort}`,
    ],
    dir,
  );
  cleanups.push(() => prometheus.stop());
  const query = async (expr: string): Promise<PrometheusSample[]> => {
    const response = await fetch(`http://127.0.0.1:${webPort}/api/v1/query?query=${encodeURIComponent(expr)}`, {
      signal: AbortSignal.timeout(5_000),
    });
    const body = (await response.json()) as { status: string; data: { result: PrometheusSample[] } };
    if (body.status !== "success") {
      throw new Error(`query ${expr}: ${JSON.stringify(body)}`);
    }
    return body.data.result;
  };
  try {
    await pollUntil("Prometheus to scrape the endpoint successfully", SCRAPE_TIMEOUT_MS, async () => {
      const up = await query('up{job="durable-ha"}');
      return up.length === 1 && up[0]?.value[1] === "1" ? true : undefined;
    });
    let seen = "nothing yet";
    try {
      await pollUntil("Prometheus to hold every node's series", SCRAPE_TIMEOUT_MS, async () => {
        const nodes = await query("durable_ha_node_up == 1");
        const leaders = await query("sum(durable_ha_is_leader)");
        // Counters and histograms live in the node objects' memory (a restarted object starts them again), so check
        // what persists (the applied index) and that histogram series were parsed at all.
        const applied = await query("max(durable_ha_proposals_applied_total)");
        const buckets = await query('count(durable_ha_rpc_duration_seconds_bucket{le="+Inf"})');
        seen = `nodes up ${nodes.length}, leaders ${leaders[0]?.value[1]}, applied ${applied[0]?.value[1]}, RPC histograms ${buckets[0]?.value[1]}`;
        return nodes.length === NODES.length &&
          leaders[0]?.value[1] === "1" &&
          Number(applied[0]?.value[1]) >= 2 &&
          Number(buckets[0]?.value[1]) >= 1
          ? true
          : undefined;
      });
    } catch (error) {
      throw new Error(`${messageOf(error)} (last seen: ${seen})`, { cause: error });
    }
    const targets = (await (await fetch(`http://127.0.0.1:${webPort}/api/v1/targets`)).json()) as {
      data: { activeTargets: { health: string; lastError?: string }[] };
    };
    const health = targets.data.activeTargets.map(
      (active) => `${active.health}${active.lastError ? `: ${active.lastError}` : ""}`,
    );
    console.log(
      `ok: a real Prometheus scraped GET /metrics (target ${health.join(", ")}) and stored every node's series`,
    );
  } catch (error) {
    throw new Error(`${messageOf(error)}\nprometheus output:\n${prometheus.log}`, { cause: error });
  }
}

/** One sample of a Prometheus instant query: its labels and [time, value]. */
interface PrometheusSample {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}
