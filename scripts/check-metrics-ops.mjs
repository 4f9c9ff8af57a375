// `npm run test:ops` (first half): the operations files, checked by Prometheus' own tool.
//  - ops/prometheus/alerts.yml: `promtool check rules`, and `promtool test rules` on alerts.test.yml.
//  - ops/grafana/durable-ha.json: up to date with its generator, and every PromQL expression in it valid
//    (`promtool check rules` on a rules file made from those expressions).
//  - Every durable_ha_* name the alerts and the dashboard use is a metric GET /metrics serves
//    (src/worker/metrics/catalog.ts), and README.md's metrics table lists every one of them.
// promtool comes with Debian's `prometheus` package. Without it the check is skipped, except in CI (CI set), where
// a missing promtool fails.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ALERTS = join(ROOT, "ops/prometheus/alerts.yml");
const ALERT_TESTS = join(ROOT, "ops/prometheus/alerts.test.yml");
const DASHBOARD = join(ROOT, "ops/grafana/durable-ha.json");
const GENERATOR = join(ROOT, "ops/grafana/generate-dashboard.mjs");
const CATALOG = join(ROOT, "src/worker/metrics/catalog.ts");
const README = join(ROOT, "README.md");
/** What Grafana substitutes at query time, replaced by values promtool can parse. */
const GRAFANA_VARIABLES = { $__rate_interval: "5m", $__interval: "1m", $__range: "1h", $cluster: "main", $node: ".*" };

const failures = [];
const tmp = mkdtempSync(join(tmpdir(), "durable-ha-ops-"));
try {
  requirePromtool();
  promtool(["check", "rules", ALERTS], "alert rules");
  promtool(["test", "rules", ALERT_TESTS], "alert rule unit tests");
  checkDashboardIsGenerated();
  const expressions = dashboardExpressions();
  const rulesFile = join(tmp, "dashboard-rules.yml");
  // JSON is YAML: a recording rule per expression makes promtool parse and type-check each of them.
  writeFileSync(
    rulesFile,
    JSON.stringify(
      {
        groups: [
          {
            name: "dashboard",
            rules: expressions.map((expr, i) => ({ record: `dashboard:expression_${i + 1}`, expr })),
          },
        ],
      },
      null,
      2,
    ),
  );
  promtool(["check", "rules", rulesFile], `${expressions.length} dashboard expressions`);
  checkMetricNames([...expressions, ...alertExpressions()]);
  checkReadme();
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
if (failures.length > 0) {
  console.error(
    `\ncheck-metrics-ops: ${failures.length} problem(s):\n${failures.map((failure) => `  - ${failure}`).join("\n")}`,
  );
  process.exit(1);
}
console.log("check-metrics-ops: alert rules, their unit tests, the dashboard and the metric names are fine");

function requirePromtool() {
  const found = spawnSync("promtool", ["--version"], { stdio: "ignore" });
  if (found.error === undefined && found.status === 0) {
    return;
  }
  if (isCi()) {
    console.error(
      "check-metrics-ops: promtool is missing and CI is set: install it (apt-get install prometheus); .ci/run does",
    );
    process.exit(1);
  }
  console.log("check-metrics-ops: SKIPPED, promtool is not installed (apt-get install prometheus); CI would fail here");
  process.exit(0);
}

export function isCi() {
  const value = process.env.CI;
  return value !== undefined && value !== "" && value !== "0" && value.toLowerCase() !== "false";
}

function promtool(args, what) {
  const result = spawnSync("promtool", args, { encoding: "utf8" });
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}`.trim();
  if (result.status === 0) {
    console.log(`ok: ${what} (promtool ${args.slice(0, 2).join(" ")})`);
  } else {
    failures.push(`${what}: promtool ${args.join(" ")} exited ${result.status}:\n${output}`);
  }
}

function checkDashboardIsGenerated() {
  const regenerated = join(tmp, "durable-ha.json");
  execFileSync(process.execPath, [GENERATOR, regenerated], { stdio: "ignore" });
  if (readFileSync(regenerated, "utf8") !== readFileSync(DASHBOARD, "utf8")) {
    failures.push(
      "ops/grafana/durable-ha.json is not what ops/grafana/generate-dashboard.mjs writes: run `node ops/grafana/generate-dashboard.mjs`",
    );
  }
}

function dashboardExpressions() {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8"));
  const expressions = [];
  const visit = (panels) => {
    for (const panel of panels ?? []) {
      for (const target of panel.targets ?? []) {
        if (typeof target.expr === "string" && target.expr.trim() !== "") {
          expressions.push(substitute(target.expr));
        }
      }
      visit(panel.panels);
    }
  };
  visit(dashboard.panels);
  if (expressions.length === 0) {
    failures.push("the dashboard has no PromQL expressions");
  }
  return expressions;
}

function substitute(expr) {
  let result = expr;
  // Longest names first: $__rate_interval before $__range.
  for (const [variable, value] of Object.entries(GRAFANA_VARIABLES).sort((a, b) => b[0].length - a[0].length)) {
    result = result.split(variable).join(value);
  }
  if (result.includes("$")) {
    failures.push(`a dashboard expression uses an unknown variable: ${expr}`);
  }
  return result;
}

function alertExpressions() {
  return [...readFileSync(ALERTS, "utf8").matchAll(/^\s*expr:\s*(.+)$/gm)].map((match) => match[1]);
}

function catalogNames() {
  const source = readFileSync(CATALOG, "utf8");
  const names = [...source.matchAll(/^\s+([a-z_]+): spec\(\s*"(counter|gauge|histogram)"/gm)].map((match) => ({
    name: `durable_ha_${match[1]}`,
    type: match[2],
  }));
  if (names.length < 20) {
    failures.push(`only ${names.length} metrics found in ${CATALOG}: has its layout changed?`);
  }
  return names;
}

function checkMetricNames(expressions) {
  const served = new Set();
  for (const { name, type } of catalogNames()) {
    served.add(name);
    if (type === "histogram") {
      for (const suffix of ["_bucket", "_sum", "_count"]) {
        served.add(name + suffix);
      }
    }
  }
  const failuresBefore = failures.length;
  const used = new Set(
    expressions.flatMap((expr) => [...expr.matchAll(/\bdurable_ha_[a-z_]+/g)].map((match) => match[0])),
  );
  for (const name of used) {
    if (!served.has(name)) {
      failures.push(`${name} is used by the alerts or the dashboard but GET /metrics does not serve it`);
    }
  }
  if (failures.length === failuresBefore) {
    console.log(`ok: the ${used.size} metric names the alerts and the dashboard use are all served`);
  }
}

function checkReadme() {
  const readme = readFileSync(README, "utf8");
  const missing = catalogNames().filter(({ name }) => !readme.includes(`\`${name}\``));
  if (missing.length > 0) {
    failures.push(`README.md's metrics table lacks ${missing.map(({ name }) => name).join(", ")}`);
  } else {
    console.log("ok: README.md lists every metric");
  }
}
