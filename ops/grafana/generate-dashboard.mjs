// Writes ops/grafana/durable-ha.json, the Grafana (10 or later) dashboard for the metrics GET /metrics serves.
// Edit this file, not the JSON: `node ops/grafana/generate-dashboard.mjs`. scripts/check-metrics-ops.mjs checks
// that the committed JSON is what this writes, and runs every PromQL expression in it through promtool.
/* global process, console */
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** Where to write: the committed file, unless a path is given (the check script compares a fresh copy). */
const OUTPUT = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), "durable-ha.json");
const DATASOURCE = { type: "prometheus", uid: "${datasource}" };
const C = 'cluster="$cluster"';
const CN = 'cluster="$cluster",node=~"$node"';
const RI = "$__rate_interval";

let nextId = 1;
let y = 0;
const panels = [];

function row(title) {
  panels.push({ type: "row", id: nextId++, title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
  y += 1;
}

/** Lays panels of the given widths out on one line of the 24-column grid. */
function line(height, ...items) {
  let x = 0;
  for (const item of items) {
    panels.push({ ...item, id: nextId++, datasource: DATASOURCE, gridPos: { h: height, w: item.w, x, y } });
    delete panels[panels.length - 1].w;
    x += item.w;
  }
  y += height;
}

function targets(...queries) {
  return queries.map(([expr, legendFormat], index) => ({
    datasource: DATASOURCE,
    refId: String.fromCharCode(65 + index),
    expr,
    legendFormat: legendFormat ?? "__auto",
    range: true,
  }));
}

function timeseries(w, title, description, unit, queries, extra = {}) {
  return {
    w,
    type: "timeseries",
    title,
    description,
    targets: targets(...queries),
    fieldConfig: {
      defaults: {
        unit,
        min: extra.min ?? undefined,
        custom: {
          drawStyle: "line",
          lineWidth: 1,
          fillOpacity: 10,
          showPoints: "never",
          ...(extra.stack ? { stacking: { mode: "normal", group: "A" } } : {}),
        },
      },
      overrides: [],
    },
    options: {
      legend: { displayMode: "table", placement: "bottom", calcs: ["lastNotNull", "max"] },
      tooltip: { mode: "multi", sort: "desc" },
    },
  };
}

function stat(w, title, description, unit, queries, mappings = [], thresholds = null, textMode = "value") {
  return {
    w,
    type: "stat",
    title,
    description,
    targets: targets(...queries).map((target) => ({ ...target, instant: true, range: false })),
    fieldConfig: {
      defaults: {
        unit,
        mappings,
        thresholds: thresholds ?? { mode: "absolute", steps: [{ color: "green", value: null }] },
        color: { mode: "thresholds" },
      },
      overrides: [],
    },
    options: {
      reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false },
      colorMode: "background",
      graphMode: "none",
      textMode,
      justifyMode: "auto",
      orientation: "auto",
    },
  };
}

function stateTimeline(w, title, description, queries, mappings) {
  return {
    w,
    type: "state-timeline",
    title,
    description,
    targets: targets(...queries),
    fieldConfig: {
      defaults: {
        mappings,
        color: { mode: "thresholds" },
        thresholds: { mode: "absolute", steps: [{ color: "green", value: null }] },
      },
      overrides: [],
    },
    options: { showValue: "auto", mergeValues: true, rowHeight: 0.9, legend: { showLegend: false } },
  };
}

const boolMapping = (zero, one, zeroColor = "red", oneColor = "green") => [
  {
    type: "value",
    options: { 0: { text: zero, color: zeroColor, index: 0 }, 1: { text: one, color: oneColor, index: 1 } },
  },
];
const codeMapping = (codes) => [
  {
    type: "value",
    options: Object.fromEntries(codes.map(([value, text, color], index) => [String(value), { text, color, index }])),
  },
];
/** One number per replica from a 0/1 state set: 1 for the first state, 2 for the second, ... */
function stateCode(metric, label, states) {
  return `sum by (node, peer) (${states.map((state, index) => `(${metric}{${CN},${label}="${state}"} * ${index + 1})`).join(" or ")})`;
}
/**
 * A per-replica state set (one 0/1 series per state, labelled node and peer) as a timeline: each state becomes its
 * code (1, 2, ...) and is shown by name in its colour.
 */
function replicaStateTimeline(w, title, description, { metric, label, states }) {
  return stateTimeline(
    w,
    title,
    description,
    [
      [
        stateCode(
          metric,
          label,
          states.map(([name]) => name),
        ),
        "{{node}} -> {{peer}}",
      ],
    ],
    codeMapping(states.map(([name, color], index) => [index + 1, name, color])),
  );
}
const redBelowOne = {
  mode: "absolute",
  steps: [
    { color: "red", value: null },
    { color: "green", value: 1 },
  ],
};

// ---------------------------------------------------------------------------------------------------------------
row("Cluster");
line(
  4,
  stat(
    4,
    "Leader",
    "The node that leads now (durable_ha_is_leader).",
    "none",
    [[`max by (node) (durable_ha_is_leader{${C}}) == 1`, "{{node}}"]],
    [],
    null,
    "name",
  ),
  stat(
    4,
    "Quorum",
    "Whether a quorum of voters can acknowledge writes.",
    "none",
    [[`durable_ha_cluster_quorum_available{${C}}`]],
    boolMapping("LOST", "OK"),
    redBelowOne,
  ),
  stat(
    4,
    "Health",
    "The aggregate status of /api/v1/cluster/health.",
    "none",
    [
      [
        `max(durable_ha_cluster_health_status{${C},status="HEALTHY"}) * 2 + max(durable_ha_cluster_health_status{${C},status="DEGRADED"})`,
      ],
    ],
    codeMapping([
      [0, "UNHEALTHY", "red"],
      [1, "DEGRADED", "orange"],
      [2, "HEALTHY", "green"],
    ]),
  ),
  stat(4, "Nodes up", "Nodes that answered the scrape, of the voters and learners.", "none", [
    [`sum(durable_ha_node_up{${C}})`, "up"],
    [`max(durable_ha_cluster_voters{${C}}) + max(durable_ha_cluster_learners{${C}})`, "members"],
  ]),
  stat(
    4,
    "Schema",
    "Whether every reachable node reports the same schema.",
    "none",
    [[`durable_ha_cluster_schema_agreement{${C}}`]],
    boolMapping("DISAGREE", "AGREE"),
    redBelowOne,
  ),
  stat(4, "Term", "The highest Raft term any node reports.", "none", [[`max(durable_ha_term{${C}})`]]),
);
line(
  6,
  stateTimeline(
    12,
    "Node up",
    "Whether each node answered the scrape within its deadline (durable_ha_node_up).",
    [[`durable_ha_node_up{${CN}}`, "{{node}}"]],
    boolMapping("DOWN", "UP"),
  ),
  timeseries(12, "Scrape duration", "How long each node took to answer the scrape, and the whole scrape.", "s", [
    [`durable_ha_node_scrape_duration_seconds{${CN}}`, "{{node}}"],
    [`durable_ha_scrape_duration_seconds{${C}}`, "whole scrape"],
  ]),
);

row("Leadership and elections");
line(
  8,
  timeseries(8, "Leader changes", "Leader changes each node saw (etcd: leader_changes_seen_total).", "short", [
    [`increase(durable_ha_leader_changes_seen_total{${CN}}[${RI}])`, "{{node}}"],
  ]),
  stateTimeline(
    8,
    "Is leader",
    "Which node led, over time.",
    [[`durable_ha_is_leader{${CN}}`, "{{node}}"]],
    boolMapping("follower", "LEADER", "transparent", "blue"),
  ),
  timeseries(8, "Term", "Each node's Raft term; a rise is an election.", "none", [
    [`durable_ha_term{${CN}}`, "{{node}}"],
  ]),
);
line(
  8,
  stateTimeline(
    8,
    "Has leader",
    "Whether each node knows a leader (etcd: has_leader).",
    [[`durable_ha_has_leader{${CN}}`, "{{node}}"]],
    boolMapping("NO LEADER", "ok"),
  ),
  timeseries(8, "Last election duration", "How long the last successful election took, per node.", "s", [
    [`durable_ha_last_election_duration_seconds{${CN}}`, "{{node}}"],
  ]),
  timeseries(8, "Since last leader contact", "Seconds since each follower last heard from a leader.", "s", [
    [`durable_ha_leader_last_contact_seconds{${CN}}`, "{{node}}"],
  ]),
);

row("Replication");
line(
  8,
  timeseries(8, "Commit and applied index", "The log index each node knows committed, and has applied.", "none", [
    [`durable_ha_commit_index{${CN}}`, "commit {{node}}"],
    [`durable_ha_applied_index{${CN}}`, "applied {{node}}"],
  ]),
  timeseries(8, "Proposals applied per second", "Entries applied per second (etcd: proposals_applied_total).", "ops", [
    [`rate(durable_ha_proposals_applied_total{${CN}}[${RI}])`, "applied {{node}}"],
    [`rate(durable_ha_proposals_committed_total{${CN}}[${RI}])`, "committed {{node}}"],
  ]),
  timeseries(
    8,
    "Proposals pending and failed",
    "Writes waiting on the leader, and failed writes per second by error code.",
    "short",
    [
      [`durable_ha_proposals_pending{${CN}}`, "pending {{node}}"],
      [`sum by (node, code) (rate(durable_ha_proposals_failed_total{${CN}}[${RI}]))`, "failed {{code}} {{node}}"],
    ],
  ),
);
line(
  8,
  timeseries(8, "Replica lag (entries)", "Entries each replica is behind, as the leader sees it.", "short", [
    [`durable_ha_replica_lag_entries{${CN}}`, "{{node}} -> {{peer}}"],
  ]),
  timeseries(8, "Replica last contact", "Seconds since the leader last heard from each replica.", "s", [
    [`durable_ha_replica_last_contact_seconds{${CN}}`, "{{node}} -> {{peer}}"],
  ]),
  timeseries(8, "Replica match index", "The highest index known replicated on each replica.", "none", [
    [`durable_ha_replica_match_index{${CN}}`, "{{node}} -> {{peer}}"],
  ]),
);
line(
  8,
  replicaStateTimeline(8, "Replica status", "Each replica's status as the leader sees it.", {
    metric: "durable_ha_replica_status",
    label: "status",
    states: [
      ["JOINING", "blue"],
      ["ONLINE", "green"],
      ["LAGGING", "orange"],
      ["RECONNECTING", "red"],
      ["OFFLINE", "dark-red"],
    ],
  }),
  replicaStateTimeline(8, "Circuit breakers", "The state of the breaker from the leader to each replica.", {
    metric: "durable_ha_replica_breaker_state",
    label: "state",
    states: [
      ["CLOSED", "green"],
      ["HALF_OPEN", "orange"],
      ["OPEN", "red"],
    ],
  }),
  timeseries(
    8,
    "Replica failures and reconnections",
    "Consecutive failed deliveries, and reconnections per second.",
    "short",
    [
      [`durable_ha_replica_consecutive_failures{${CN}}`, "failures {{peer}}"],
      [`rate(durable_ha_replica_reconnections_total{${CN}}[${RI}])`, "reconnections/s {{peer}}"],
    ],
  ),
);

row("RPC between nodes");
line(
  8,
  timeseries(8, "Calls per second", "Calls to peers by peer and message kind, retries included.", "reqps", [
    [`sum by (node, peer, kind) (rate(durable_ha_rpc_calls_total{${CN}}[${RI}]))`, "{{node}} -> {{peer}} {{kind}}"],
  ]),
  timeseries(
    8,
    "Failures and retries per second",
    "Calls that failed or were refused, and retried envelopes.",
    "reqps",
    [
      [`sum by (node, peer) (rate(durable_ha_rpc_failures_total{${CN}}[${RI}]))`, "failed {{node}} -> {{peer}}"],
      [`sum by (node, peer) (rate(durable_ha_rpc_retries_total{${CN}}[${RI}]))`, "retried {{node}} -> {{peer}}"],
    ],
  ),
  timeseries(8, "RPC latency p50 / p99", "Call duration quantiles per peer.", "s", [
    [
      `histogram_quantile(0.5, sum by (le, node, peer) (rate(durable_ha_rpc_duration_seconds_bucket{${CN}}[${RI}])))`,
      "p50 {{node}} -> {{peer}}",
    ],
    [
      `histogram_quantile(0.99, sum by (le, node, peer) (rate(durable_ha_rpc_duration_seconds_bucket{${CN}}[${RI}])))`,
      "p99 {{node}} -> {{peer}}",
    ],
  ]),
);

row("Requests");
line(
  8,
  timeseries(
    8,
    "Write latency",
    "Writes on the leader, arrival to apply: p50, p95, p99.",
    "s",
    [0.5, 0.95, 0.99].map((q) => [
      `histogram_quantile(${q}, sum by (le) (rate(durable_ha_write_duration_seconds_bucket{${CN}}[${RI}])))`,
      `p${Math.round(q * 100)}`,
    ]),
  ),
  timeseries(8, "Read latency p99 by level", "Reads per consistency level, on the node that served them.", "s", [
    [
      `histogram_quantile(0.99, sum by (le, level) (rate(durable_ha_read_duration_seconds_bucket{${CN}}[${RI}])))`,
      "p99 {{level}}",
    ],
    [
      `histogram_quantile(0.5, sum by (le, level) (rate(durable_ha_read_duration_seconds_bucket{${CN}}[${RI}])))`,
      "p50 {{level}}",
    ],
  ]),
  timeseries(8, "Requests per second", "Writes and reads (by level) the nodes served.", "reqps", [
    [`sum(rate(durable_ha_write_duration_seconds_count{${CN}}[${RI}]))`, "writes"],
    [`sum by (level) (rate(durable_ha_read_duration_seconds_count{${CN}}[${RI}]))`, "reads {{level}}"],
  ]),
);

row("Cost: billed work");
line(
  8,
  timeseries(
    8,
    "Billed requests per second",
    "RPCs received (peer envelopes, worker calls) and alarm wake-ups: each is a billed Durable Object request.",
    "reqps",
    [
      [`sum by (kind) (rate(durable_ha_rpcs_received_total{${CN}}[${RI}]))`, "rpc {{kind}}"],
      [`sum(rate(durable_ha_alarm_wakeups_total{${CN}}[${RI}]))`, "alarm wake-ups"],
    ],
    { stack: true },
  ),
  timeseries(
    8,
    "Billed requests per write",
    "Billed requests across the cluster per write applied (idle work included).",
    "short",
    [
      [
        `(sum(rate(durable_ha_rpcs_received_total{${C}}[${RI}])) + sum(rate(durable_ha_alarm_wakeups_total{${C}}[${RI}]))) / sum(rate(durable_ha_write_duration_seconds_count{${C}}[${RI}]))`,
        "per write",
      ],
    ],
  ),
  timeseries(8, "Billed requests per node", "Per node: RPCs received plus alarm wake-ups per second.", "reqps", [
    [
      `sum by (node) (rate(durable_ha_rpcs_received_total{${CN}}[${RI}])) + sum by (node) (rate(durable_ha_alarm_wakeups_total{${CN}}[${RI}]))`,
      "{{node}}",
    ],
  ]),
);

row("Snapshots and storage");
line(
  8,
  timeseries(6, "Snapshots", "Snapshots sent, failed and installed per second.", "ops", [
    [`rate(durable_ha_snapshots_sent_total{${CN}}[${RI}])`, "sent {{node}}"],
    [`rate(durable_ha_snapshot_send_failures_total{${CN}}[${RI}])`, "failed {{node}}"],
    [`rate(durable_ha_snapshots_installed_total{${CN}}[${RI}])`, "installed {{node}}"],
  ]),
  timeseries(6, "Snapshot bytes", "Snapshot bytes sent and installed per second.", "Bps", [
    [`rate(durable_ha_snapshot_sent_bytes_total{${CN}}[${RI}])`, "sent {{node}}"],
    [`rate(durable_ha_snapshot_installed_bytes_total{${CN}}[${RI}])`, "installed {{node}}"],
  ]),
  timeseries(6, "Database and log size", "Everything each node stores, and the retained Raft log's share.", "bytes", [
    [`durable_ha_database_size_bytes{${CN}}`, "database {{node}}"],
    [`durable_ha_log_size_bytes{${CN}}`, "log {{node}}"],
  ]),
  timeseries(6, "Schema version and dedup window", "Schema version per node, and remembered request ids.", "short", [
    [`durable_ha_schema_version{${CN}}`, "schema {{node}}"],
    [`durable_ha_dedup_window_entries{${CN}}`, "dedup {{node}}"],
  ]),
);

row("Consistency monitor");
line(
  8,
  replicaStateTimeline(
    8,
    "Replica consistency",
    "The consistency monitor's verdict on each replica, as the leader sees it (README: Consistency monitor).",
    {
      metric: "durable_ha_replica_consistency_status",
      label: "status",
      states: [
        ["UNCHECKED", "blue"],
        ["CONSISTENT", "green"],
        ["DIVERGED", "red"],
        ["REPAIRING", "orange"],
      ],
    },
  ),
  timeseries(
    8,
    "Mismatches and repairs",
    "Checkpoint mismatches found, repairs completed and failed (leader), and repair images installed, per hour.",
    "short",
    [
      [`sum by (node) (increase(durable_ha_consistency_mismatches_total{${CN}}[1h]))`, "mismatches {{node}}"],
      [`sum by (node) (increase(durable_ha_consistency_repairs_total{${CN}}[1h]))`, "repairs {{node}}"],
      [`sum by (node) (increase(durable_ha_consistency_repair_failures_total{${CN}}[1h]))`, "repair failures {{node}}"],
      [`sum by (node) (increase(durable_ha_consistency_repairs_installed_total{${CN}}[1h]))`, "installed {{node}}"],
    ],
  ),
  timeseries(
    8,
    "Nodes DIVERGED and checkpoints",
    "1 while a node holds its own state DIVERGED (it serves no reads); the last checkpoint index each node applied.",
    "short",
    [
      [`durable_ha_consistency_diverged{${CN}}`, "diverged {{node}}"],
      [`durable_ha_consistency_last_checkpoint_index{${CN}}`, "checkpoint index {{node}}"],
    ],
  ),
);
line(
  6,
  timeseries(
    24,
    "Checkpoint digest time",
    "How long each node took to digest its last checkpoint's schema and rows.",
    "s",
    [[`durable_ha_consistency_checkpoint_digest_seconds{${CN}}`, "{{node}}"]],
  ),
);

row("Alerts");
line(8, {
  w: 24,
  type: "alertlist",
  title: "durable-ha alerts",
  description: "Alerts from ops/prometheus/alerts.yml.",
  options: {
    showOptions: "current",
    maxItems: 20,
    sortOrder: 1,
    dashboardAlerts: false,
    alertName: "DurableHa",
    stateFilter: { firing: true, pending: true, noData: false, normal: false, error: true },
    alertInstanceLabelFilter: "",
  },
});

// Panels carry no datasource of their own on rows and the alert list.
for (const panel of panels) {
  if (panel.type === "row" || panel.type === "alertlist") {
    delete panel.datasource;
  }
}

const dashboard = {
  __inputs: [
    {
      name: "DS_PROMETHEUS",
      label: "Prometheus",
      description: "",
      type: "datasource",
      pluginId: "prometheus",
      pluginName: "Prometheus",
    },
  ],
  __requires: [
    { type: "grafana", id: "grafana", name: "Grafana", version: "10.0.0" },
    { type: "datasource", id: "prometheus", name: "Prometheus", version: "1.0.0" },
    { type: "panel", id: "timeseries", name: "Time series", version: "" },
    { type: "panel", id: "stat", name: "Stat", version: "" },
    { type: "panel", id: "state-timeline", name: "State timeline", version: "" },
    { type: "panel", id: "alertlist", name: "Alert list", version: "" },
  ],
  uid: "durable-ha",
  title: "durable-ha",
  description:
    "A Raft-replicated SQLite cluster on Durable Objects: leadership, quorum, replication, RPC, latency, billed work, storage.",
  tags: ["durable-ha", "raft", "cloudflare"],
  editable: true,
  graphTooltip: 1,
  schemaVersion: 38,
  version: 1,
  refresh: "30s",
  time: { from: "now-1h", to: "now" },
  timepicker: {},
  timezone: "",
  fiscalYearStartMonth: 0,
  liveNow: false,
  links: [],
  annotations: {
    list: [
      {
        builtIn: 1,
        datasource: { type: "grafana", uid: "-- Grafana --" },
        enable: true,
        hide: true,
        iconColor: "rgba(0, 211, 255, 1)",
        name: "Annotations & Alerts",
        type: "dashboard",
      },
    ],
  },
  templating: {
    list: [
      {
        name: "datasource",
        label: "Data source",
        type: "datasource",
        query: "prometheus",
        current: {},
        hide: 0,
        refresh: 1,
        regex: "",
        options: [],
      },
      {
        name: "cluster",
        label: "Cluster",
        type: "query",
        datasource: DATASOURCE,
        query: { query: "label_values(durable_ha_node_up, cluster)", refId: "cluster" },
        definition: "label_values(durable_ha_node_up, cluster)",
        refresh: 2,
        sort: 1,
        current: {},
        hide: 0,
        includeAll: false,
        multi: false,
        options: [],
      },
      {
        name: "node",
        label: "Node",
        type: "query",
        datasource: DATASOURCE,
        query: { query: 'label_values(durable_ha_node_up{cluster="$cluster"}, node)', refId: "node" },
        definition: 'label_values(durable_ha_node_up{cluster="$cluster"}, node)',
        refresh: 2,
        sort: 1,
        current: {},
        hide: 0,
        includeAll: true,
        allValue: ".*",
        multi: true,
        options: [],
      },
    ],
  },
  panels,
};

writeFileSync(OUTPUT, `${JSON.stringify(dashboard, null, 2)}\n`);
console.log(`wrote ${OUTPUT}: ${panels.filter((panel) => panel.type !== "row").length} panels`);
