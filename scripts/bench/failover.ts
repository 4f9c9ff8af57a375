// `npm run bench:failover`: only the benchmark's failover section (the same measurement as `npm run bench`: one
// client writing back to back, from the fault to the first acknowledged write), with each run's timeline: the
// nodes' election events (GET /api/v1/cluster/events) and the probe's writes, in milliseconds after the fault.
//
//   npm run bench:failover -- [--runs 5] [--kinds crash,cut-off] [--json FILE]
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { call, measureFailover, type FailoverRun } from "./cluster";
import { electionTimeoutMs, settleWithSchema, summarize } from "./run";
import { WranglerServer } from "./servers";

/** Elections and leader changes: the events that make up a failover's timeline. */
const isTimelineEvent = (event: string): boolean =>
  event === "nodeStarted" || event === "steppedDown" || event.startsWith("became");

interface TimelineEvent {
  readonly atMs: number;
  readonly node: string;
  readonly event: string;
  readonly term: number;
  readonly commitIndex: number | null;
}

interface Options {
  readonly runs: number;
  readonly kinds: readonly ("crash" | "cut-off")[];
  readonly json: string | null;
}

function parse(argv: readonly string[]): Options {
  const value = (flag: string): string | undefined => {
    const at = argv.indexOf(flag);
    return at < 0 ? undefined : argv[at + 1];
  };
  const runs = Number(value("--runs") ?? 5);
  if (!Number.isInteger(runs) || runs < 1) {
    throw new Error("--runs needs a positive whole number");
  }
  const kinds = (value("--kinds") ?? "crash,cut-off").split(",");
  for (const kind of kinds) {
    if (kind !== "crash" && kind !== "cut-off") {
      throw new Error(`--kinds: unknown kind ${kind} (crash, cut-off)`);
    }
  }
  return { runs, kinds: kinds as ("crash" | "cut-off")[], json: value("--json") ?? null };
}

/** The nodes' election events from `sinceMs` on, relative to it. */
async function electionEvents(baseUrl: string, sinceMs: number): Promise<TimelineEvent[]> {
  const answer = await call(baseUrl, `/api/v1/cluster/events?limit=1000&since=${sinceMs}`).catch(() => null);
  if (answer?.status !== 200) {
    return [];
  }
  const body = JSON.parse(answer.text) as {
    events: { timeMs: number; node: string; event: string; term: number; commitIndex: number | null }[];
  };
  return body.events
    .filter((e) => isTimelineEvent(e.event))
    .map((e) => ({ atMs: e.timeMs - sinceMs, node: e.node, event: e.event, term: e.term, commitIndex: e.commitIndex }))
    .sort((a, b) => a.atMs - b.atMs);
}

function timelineText(run: FailoverRun, events: readonly TimelineEvent[]): string {
  const lines = events.map(
    (e) =>
      `    +${e.atMs.toFixed(0).padStart(5)} ms ${e.node} ${e.event} (term ${e.term}, commit ${e.commitIndex ?? "-"})`,
  );
  for (const write of run.writes) {
    const at = write.sentAtMs - run.faultAtMs;
    lines.push(
      `    +${at.toFixed(0).padStart(5)} ms probe write sent, answered after ${write.ms.toFixed(0)} ms: ${write.node === null ? `${write.status ?? "no answer"} ${write.code ?? ""}` : `acknowledged by ${write.node}`}`,
    );
  }
  return lines.sort((a, b) => Number(/\+\s*(-?\d+)/.exec(a)?.[1]) - Number(/\+\s*(-?\d+)/.exec(b)?.[1])).join("\n");
}

async function main(): Promise<void> {
  const options = parse(process.argv.slice(2));
  const loadAtStart = loadavg()[0]!;
  console.log(
    `load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}; starting the cluster`,
  );
  const cluster = await WranglerServer.start("cluster");
  const runs: (FailoverRun & { events: TimelineEvent[] })[] = [];
  try {
    await settleWithSchema(cluster.baseUrl);
    for (let i = 0; i < options.runs; i++) {
      for (const kind of options.kinds) {
        const run = await measureFailover(cluster.baseUrl, kind);
        const events = await electionEvents(cluster.baseUrl, run.faultAtMs);
        runs.push({ ...run, events });
        console.log(
          `failover (${kind}) ${i + 1}/${options.runs}: ${run.ms.toFixed(0)} ms, ${run.oldLeader} -> ${run.newLeader ?? "none"}, ${run.failedWrites} failed writes${run.gaveUp ? ", GAVE UP" : ""}; load ${loadavg()[0]!.toFixed(2)}`,
        );
        console.log(timelineText(run, events));
      }
    }
  } finally {
    await cluster.stop();
  }
  const election = electionTimeoutMs();
  for (const kind of options.kinds) {
    const summary = summarize(runs.filter((r) => r.kind === kind));
    if (summary !== null) {
      console.log(
        `${kind}: median ${summary.medianMs.toFixed(0)} ms (${(summary.medianMs / election).toFixed(2)}× the ${election} ms election timeout), worst ${summary.worstMs.toFixed(0)} ms, ${summary.runs} runs`,
      );
    }
  }
  console.log(`load average at the start ${loadAtStart.toFixed(2)}, at the end ${loadavg()[0]!.toFixed(2)}`);
  if (options.json !== null) {
    writeFileSync(options.json, JSON.stringify({ electionTimeoutMs: election, loadAtStart, runs }, null, 2) + "\n");
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
