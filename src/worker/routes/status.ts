// rqlite's operational routes: /status, /nodes, /readyz and /leader.
import { Hono, type Context } from "hono";
import {
  appliedPollIntervalMs,
  DEFAULT_DATABASE,
  isInTouchWithLeader,
  PROTOCOL_VERSION,
  type ClusterTiming,
  type NodeStatusReport,
} from "../../objects/api";
import { gatherCluster } from "../cluster/gather";
import { transferLeadership } from "../data/service";
import { nodeObjectName } from "../directory";
import { formatGoDuration } from "../http/duration";
import { ApiError, badRequest } from "../http/errors";
import { deadlineFor, NODE_HEADER, parseQueryParams, type QueryParams } from "../http/params";
import { failureError, wireResponse } from "../http/respond";
import { GoMap, type WireValue } from "../http/wire-json";
import { requireRole } from "../middleware/auth";
import { limitBody } from "../middleware/body-limit";
import type { StatusProbe } from "../routing/router";
import { resolveLimits, type AppOptions, type Runtime } from "../runtime";
import type { AppBindings } from "../types";
import { readJsonBody } from "../http/json-body";
import { requireMember } from "../http/members";
import { leaderBodySchema } from "../http/schemas";

const RAFT_STATE: Record<NodeStatusReport["role"], string> = {
  leader: "Leader",
  follower: "Follower",
  candidate: "Candidate",
  preCandidate: "PreCandidate",
};

export function statusRoutes(options: AppOptions): Hono<AppBindings> {
  const limits = resolveLimits(options);
  const app = new Hono<AppBindings>();

  app.get("/status", requireRole("read"), async (c) => {
    const { runtime, params } = prepare(c);
    const timeoutMs = statusTimeout(runtime, params);
    const probe = await localNode(runtime, await candidateNodes(runtime, params, timeoutMs), timeoutMs);
    const status = statusDocument(c, runtime, probe);
    return wireResponse(c, params.key === undefined ? status : subKey(status, params.key), 200, {
      [NODE_HEADER]: probe.node,
    });
  });

  app.get("/nodes", requireRole("read"), async (c) => {
    const { runtime, params } = prepare(c);
    const view = await gatherCluster(runtime.router, statusTimeout(runtime, params));
    const apiAddr = apiAddressOf(c);
    const voters = new Set(view.voters);
    const names = new Set([...view.voters, ...(params.has("nonvoters") ? view.learners : [])]);
    const nodes = view.probes
      .filter((probe) => names.has(probe.node))
      .sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0))
      .map((probe) => nodeEntry(runtime, probe, apiAddr, voters.has(probe.node), view.leader?.name));
    const body: WireValue = params.ver === "2" ? { nodes } : new GoMap(nodes.map((node) => [node.id, node]));
    return wireResponse(c, body);
  });

  app.get("/readyz", requireRole("read"), async (c) => readiness(c));

  app.get("/leader", requireRole("read"), async (c) => {
    const { runtime, params } = prepare(c);
    const timeoutMs = statusTimeout(runtime, params);
    const cached = runtime.router.cachedLeader();
    let probe = cached === undefined ? undefined : await runtime.router.probeStatus(cached, timeoutMs);
    if (probe === undefined || !probe.ok || probe.report.role !== "leader") {
      const view = await gatherCluster(runtime.router, timeoutMs);
      probe = view.leader === undefined ? undefined : view.probes.find((p) => p.node === view.leader?.name);
    }
    if (probe === undefined || !probe.ok) {
      throw new ApiError(503, "no leader: an election is under way, or no quorum is reachable", {
        code: "NO_LEADER",
        retryAfterSeconds: runtime.router.retryAfterSeconds(),
      });
    }
    runtime.router.noteLeader(probe.node);
    const entry = nodeEntry(runtime, probe, apiAddressOf(c), true, probe.node);
    return wireResponse(c, { ...entry, time_s: formatGoDuration(probe.elapsedMs) }, 200, { [NODE_HEADER]: probe.node });
  });

  // rqlite: POST /leader steps the leader down; {"id": "n2"} names the node to hand over to.
  app.post("/leader", requireRole("admin"), limitBody(limits.maxAdminBodyBytes, "plain"), async (c) => {
    const body = await readJsonBody(c, leaderBodySchema, { optional: true });
    if (body !== undefined) {
      await requireMember(c.var.runtime(), body.id, {
        what: "id",
        timeoutMs: c.var.runtime().policy.statusTimeoutMs,
        live: true,
      });
    }
    return stepDown(c, body?.id);
  });

  return app;
}

async function stepDown(c: Context<AppBindings>, to: string | undefined): Promise<Response> {
  const { runtime, params } = prepare(c);
  const deadlineAt = deadlineFor(params, c.var.startedAt, runtime.policy, "plain");
  const outcome = await transferLeadership(runtime, to, deadlineAt);
  if (!outcome.ok) {
    throw failureError(outcome, "plain");
  }
  runtime.router.noteLeader(outcome.value.leader);
  return wireResponse(c, { leader: outcome.value.leader, term: outcome.value.term }, 200, {
    [NODE_HEADER]: outcome.node,
  });
}

function prepare(c: Context<AppBindings>): { runtime: Runtime; params: QueryParams } {
  return { runtime: c.var.runtime(), params: parseQueryParams(new URL(c.req.url), "plain", c.var.querySchema) };
}

/** The per-node deadline of a status fan-out: ?timeout= when given, else the policy's. */
function statusTimeout(runtime: Runtime, params: QueryParams): number {
  const timeoutMs = params.timeoutMs ?? runtime.policy.statusTimeoutMs;
  if (timeoutMs <= 0 || timeoutMs > runtime.policy.maxTimeoutMs) {
    throw badRequest(`timeout must be between 0 and ${runtime.policy.maxTimeoutMs / 1000}s`);
  }
  return timeoutMs;
}

/**
 * The node a status-like request is about: ?node= when given, else the cached leader, else the first configured
 * member that answers. All are asked in parallel, so unreachable ones cost one deadline in total.
 */
async function localNode(
  runtime: Runtime,
  candidates: readonly string[],
  timeoutMs: number,
): Promise<StatusProbe & { ok: true }> {
  const probes = await runtime.router.probeAll(candidates, timeoutMs);
  const answered = probes.find((probe): probe is StatusProbe & { ok: true } => probe.ok);
  if (answered === undefined) {
    const reasons = probes.map((probe) => `${probe.node}: ${probe.ok ? "ok" : probe.error}`).join("; ");
    throw new ApiError(503, `no node answered: ${reasons}`, {
      code: "UNREACHABLE",
      retryAfterSeconds: runtime.router.retryAfterSeconds(),
    });
  }
  return answered;
}

/** ?node= when given (a member: 400 or 404 otherwise), else the cached leader first, then the configured members. */
async function candidateNodes(runtime: Runtime, params: QueryParams, timeoutMs: number): Promise<string[]> {
  if (params.node !== undefined) {
    await requireMember(runtime, params.node, { what: "node", timeoutMs });
    return [params.node];
  }
  const cached = runtime.router.cachedLeader();
  const members = runtime.router.memberNames();
  return cached === undefined ? members : [cached, ...members.filter((name) => name !== cached)];
}

/**
 * The URL a client sends this database's API calls to, as rqlite's api_addr: the worker's origin for the default
 * database (it serves /db/...), the origin and /databases/{name} for a named one, so that a client that follows
 * api_addr after discovery stays on the database it discovered.
 */
function apiAddressOf(c: Context<AppBindings>): string {
  const origin = new URL(c.req.url).origin;
  const database = c.var.database;
  return database === undefined || database === DEFAULT_DATABASE
    ? origin
    : `${origin}/databases/${encodeURIComponent(database)}`;
}

/** rqlite's /nodes entry: {id, api_addr, addr, voter, reachable, leader, time, error}. */
function nodeEntry(runtime: Runtime, probe: StatusProbe, apiAddr: string, voter: boolean, leader: string | undefined) {
  return {
    id: probe.node,
    api_addr: apiAddr,
    addr: nodeObjectName(runtime.config.name, probe.node),
    voter,
    reachable: probe.ok,
    leader: probe.ok && probe.node === leader,
    time: probe.ok && probe.elapsedMs > 0 ? probe.elapsedMs / 1000 : undefined,
    error: probe.ok ? undefined : probe.error,
  };
}

function statusDocument(c: Context<AppBindings>, runtime: Runtime, probe: StatusProbe & { ok: true }): WireValue {
  const report = probe.report;
  const config = runtime.config;
  return {
    build: { name: "durable-ha", protocol_version: PROTOCOL_VERSION },
    http: { api_addr: apiAddressOf(c), auth: "enabled" },
    cluster: {
      name: config.name,
      heartbeat_interval_ms: config.heartbeatIntervalMs,
      election_timeout_ms: config.electionTimeoutMs,
      members: config.members.map((member) => ({ name: member.name, location_hint: member.locationHint ?? null })),
    },
    node: {
      id: report.node,
      addr: nodeObjectName(config.name, report.node),
      location_hint: report.locationHint,
      status_time: probe.elapsedMs / 1000,
      current_time: new Date(runtime.now()).toISOString(),
    },
    store: {
      node_id: report.node,
      started: report.started,
      member: report.member,
      ready: notReadyReason(report, config) === null,
      leader:
        report.leader === null ? null : { node_id: report.leader, addr: nodeObjectName(config.name, report.leader) },
      raft: {
        state: RAFT_STATE[report.role] ?? report.role,
        term: report.term,
        commit_index: report.commitIndex,
        applied_index: report.appliedIndex,
        last_log_index: report.lastLogIndex,
        first_log_index: report.firstLogIndex,
        voters: report.voters,
        learners: report.learners,
        last_leader_contact_ms: report.lastLeaderContactMs,
        election: {
          status: report.election.status,
          term: report.election.term,
          last_election_ms: report.election.lastElectionMs,
        },
      },
      schema: { version: report.schemaVersion, hash: report.schemaHash },
    },
  };
}

/**
 * Why the node is not ready to serve, or null when it is: ready means started, a member, everything it knows
 * committed applied, and in touch with a leader (it leads, or heard from the leader within an election timeout).
 */
function notReadyReason(report: NodeStatusReport, timing: ClusterTiming): string | null {
  const node = report.node;
  if (!report.started) {
    return `${node} has not started`;
  }
  if (!report.member) {
    return `${node} is not a member`;
  }
  if (report.appliedIndex < report.commitIndex) {
    return `${node} has applied ${report.appliedIndex} of ${report.commitIndex} committed entries`;
  }
  if (report.role === "leader") {
    return null;
  }
  if (report.leader === null || report.lastLeaderContactMs === null) {
    return `${node} has not heard from a leader`;
  }
  if (!isInTouchWithLeader(timing, report.lastLeaderContactMs)) {
    return (
      `${node} last heard from leader ${report.leader} ${report.lastLeaderContactMs} ms ago, ` +
      `more than an election timeout (${timing.electionTimeoutMs} ms)`
    );
  }
  return null;
}

/** rqlite's ?key=a.b: the sub-document at that path, or {} when it is absent. */
function subKey(document: WireValue, key: string): WireValue {
  let current: WireValue | undefined = document;
  for (const part of key.split(".")) {
    if (typeof current !== "object" || current === null || Array.isArray(current) || current instanceof GoMap) {
      return current ?? {};
    }
    current = (current as Record<string, WireValue | undefined>)[part];
    if (current === undefined) {
      return {};
    }
  }
  return current;
}

/**
 * rqlite's /readyz: "[+]node ok\n[+]leader ok\n[+]store ok", 503 when not ready. Ready means the local node (see
 * localNode) answers, knows a reachable leader, and has caught up. With ?sync it waits (bounded by ?timeout) until
 * it has applied the leader's commit index; ?noleader checks only the node.
 */
async function readiness(c: Context<AppBindings>): Promise<Response> {
  const { runtime, params } = prepare(c);
  const timeoutMs = statusTimeout(runtime, params);
  const lines: string[] = [];
  const text = (status: 200 | 503) =>
    new Response(lines.join("\n"), {
      status,
      headers: {
        "Content-Type": "text/plain; charset=utf-8",
        ...(status === 503 ? { "Retry-After": String(runtime.router.retryAfterSeconds()) } : {}),
      },
    });
  // A bad ?node= is the caller's error (400/404), never "not ready": a retry could not make it work.
  const candidates = await candidateNodes(runtime, params, timeoutMs);
  let local: StatusProbe & { ok: true };
  try {
    local = await localNode(runtime, candidates, timeoutMs);
  } catch (error) {
    if (error instanceof ApiError) {
      lines.push(`[+]node not reachable: ${error.message}`);
      return text(503);
    }
    throw error;
  }
  lines.push("[+]node ok");
  if (params.has("noleader")) {
    return text(200);
  }
  const leaderName = local.report.leader;
  if (leaderName === null) {
    lines.push("[+]leader does not exist");
    return text(503);
  }
  const leader = leaderName === local.node ? local : await runtime.router.probeStatus(leaderName, timeoutMs);
  if (!leader.ok || leader.report.role !== "leader") {
    lines.push(`[+]leader not contactable: ${leader.ok ? `${leaderName} is no longer the leader` : leader.error}`);
    return text(503);
  }
  lines.push("[+]leader ok");
  const notReady = notReadyReason(local.report, runtime.config);
  if (notReady !== null) {
    // rqlite marks every line "[+]", a failing one too ("[+]store not ready"): clients match the words, not the mark.
    lines.push(`[+]store not ready: ${notReady}`);
    return text(503);
  }
  lines.push("[+]store ok");
  if (params.has("sync")) {
    const target = leader.report.commitIndex;
    const synced = await waitUntilApplied(
      runtime,
      { node: local.node, appliedIndex: local.report.appliedIndex },
      target,
      c.var.startedAt + timeoutMs,
    );
    lines.push(synced === true ? "[+]sync ok" : `[+]sync not ok: ${synced}`);
    return text(synced === true ? 200 : 503);
  }
  return text(200);
}

/**
 * Polls the node (once per heartbeat) until it has applied `index`, or returns why not by the deadline. What the
 * node last reported counts first: the probes before this may have used up the deadline of a node already synced.
 */
async function waitUntilApplied(
  runtime: Runtime,
  known: { readonly node: string; readonly appliedIndex: number },
  index: number,
  deadlineAt: number,
): Promise<true | string> {
  const node = known.node;
  let applied = known.appliedIndex;
  for (;;) {
    if (applied >= index) {
      return true;
    }
    const remaining = deadlineAt - runtime.now();
    if (remaining <= 0) {
      return `${node} applied ${applied} of the leader's ${index} entries before the deadline`;
    }
    const probe = await runtime.router.probeStatus(node, remaining);
    if (probe.ok) {
      applied = probe.report.appliedIndex;
      if (applied >= index) {
        return true;
      }
    }
    await runtime.sleep(Math.min(appliedPollIntervalMs(runtime.config), Math.max(0, deadlineAt - runtime.now())));
  }
}
