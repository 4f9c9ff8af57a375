// GET /api/v1/cluster/events: every member's recent events, asked in parallel within a per-node deadline, merged by
// time. A node that does not answer is listed with its error; the others' events are still served.
import type { ClusterEvent, EventsValue } from "../../objects/api";
import { viewOf } from "../cluster/gather";
import type { ClusterRouter } from "../routing/router";

export interface MergedEvent {
  readonly time: string;
  readonly timeMs: number;
  readonly node: string;
  readonly event: string;
  readonly level: string;
  readonly term: number;
  readonly commitIndex: number | null;
  readonly details: Readonly<Record<string, unknown>>;
}

export interface NodeEventsSource {
  readonly name: string;
  readonly reachable: boolean;
  /** Events this node returned (before the merged list was cut to the limit). */
  readonly events: number;
  /** The node's clock minus ours when it answered (positive: it runs ahead), to judge the merge order; null when unreachable. */
  readonly clockOffsetMs: number | null;
  readonly error: string | null;
}

export interface ClusterEvents {
  readonly cluster: string;
  readonly events: readonly MergedEvent[];
  readonly nodes: readonly NodeEventsSource[];
}

type Answer =
  | { readonly ok: true; readonly value: EventsValue }
  | { readonly ok: false; readonly code: string; readonly message: string };

export async function gatherEvents(
  router: ClusterRouter,
  options: {
    readonly limit: number;
    readonly sinceMs?: number;
    readonly perNodeTimeoutMs: number;
    readonly now: () => number;
  },
): Promise<ClusterEvents> {
  const configured = router.memberNames();
  // Members only the nodes know about (added at run time) are asked too; the membership comes from their status,
  // asked at the same time.
  const [first, statuses] = await Promise.all([
    Promise.all(configured.map(async (node) => ({ node, answer: await ask(router, node, options) }))),
    router.probeAll(configured, options.perNodeTimeoutMs),
  ]);
  const view = viewOf(router.config, statuses);
  const members = new Set([...view.voters, ...view.learners]);
  const extras = [...members].filter((name) => !configured.includes(name));
  const answers = [
    ...first,
    ...(await Promise.all(extras.map(async (node) => ({ node, answer: await ask(router, node, options) })))),
  ];
  const someoneAnswered = statuses.some((probe) => probe.ok && probe.report.member);
  const kept = someoneAnswered ? answers.filter(({ node }) => members.has(node)) : answers;

  const events: MergedEvent[] = [];
  const nodes: NodeEventsSource[] = [];
  const now = options.now();
  for (const { node, answer } of kept) {
    if (!answer.ok) {
      nodes.push({
        name: node,
        reachable: false,
        events: 0,
        clockOffsetMs: null,
        error: `${answer.code}: ${answer.message}`,
      });
      continue;
    }
    nodes.push({
      name: node,
      reachable: true,
      events: answer.value.events.length,
      clockOffsetMs: answer.value.nowMs - now,
      error: null,
    });
    for (const event of answer.value.events) {
      events.push(merged(node, event));
    }
  }
  events.sort((a, b) => a.timeMs - b.timeMs || (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  return { cluster: router.config.name, events: events.slice(Math.max(0, events.length - options.limit)), nodes };
}

async function ask(
  router: ClusterRouter,
  node: string,
  options: {
    readonly limit: number;
    readonly sinceMs?: number;
    readonly perNodeTimeoutMs: number;
    readonly now: () => number;
  },
): Promise<Answer> {
  const outcome = await router.toAnyNode<Answer>(
    async (rpc, address) => {
      if (rpc.recentEvents === undefined) {
        return {
          ok: true,
          node,
          value: { ok: false, code: "UNSUPPORTED", message: "this node's version keeps no event feed" },
        };
      }
      const answer = await rpc.recentEvents({
        ...address,
        limit: options.limit,
        ...(options.sinceMs === undefined ? {} : { sinceMs: options.sinceMs }),
      });
      // A refusal is an answer: the router must not retry it until the deadline.
      return {
        ok: true,
        node,
        value: answer.ok
          ? { ok: true, value: answer.value }
          : { ok: false, code: answer.error.code, message: answer.error.message },
      };
    },
    { deadlineAt: options.now() + options.perNodeTimeoutMs, kind: "read" },
    [node],
  );
  return outcome.ok ? outcome.value : { ok: false, code: outcome.code, message: outcome.message };
}

function merged(node: string, event: ClusterEvent): MergedEvent {
  return {
    time: new Date(event.timeMs).toISOString(),
    timeMs: event.timeMs,
    node,
    event: event.event,
    level: event.level,
    term: event.term,
    commitIndex: event.commitIndex,
    details: event.fields,
  };
}
