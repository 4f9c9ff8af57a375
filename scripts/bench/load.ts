// The one load generator every system gets: autocannon (pinned in package.json), closed loop (each connection sends
// its next request when the previous one is answered; no pipelining), keep-alive connections. A warm-up run with the
// same connections comes first and is thrown away. Every answer is checked: only a 2xx whose body the shape accepts
// counts as done; everything else (non-2xx, a body with an error, connection errors, timeouts) is counted as an error.
// Latency percentiles come from every 2xx answer's own time (autocannon's per-response event, in fractions of a ms),
// not from its histogram, which keeps whole milliseconds: at one client the systems differ by less than that.
import autocannon from "autocannon";
import { SeededRandom } from "../../src/replication/random";

export interface RequestShape {
  readonly method: "GET" | "POST";
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: string;
  /** True when a 2xx body is a success (rqlite answers statement errors with 200 and an "error" field). */
  readonly accepts: (body: string) => boolean;
}

export interface LoadOptions {
  readonly connections: number;
  readonly durationS: number;
  readonly warmupS: number;
  /** Seconds before a request counts as a timeout (an error). */
  readonly timeoutS: number;
  /** Called between the warm-up and the measured run (the benchmark reads the billed-work counters then). */
  readonly beforeMeasured?: () => Promise<void>;
  /** Called once, halfway through the measured run (the benchmark samples memory then). */
  readonly atHalfway?: () => Promise<void>;
}

export interface PointResult {
  readonly connections: number;
  readonly durationS: number;
  /** Requests answered 2xx with an accepted body. */
  readonly ok: number;
  /** ok per second over the measured run. */
  readonly ratePerS: number;
  readonly errors: {
    readonly total: number;
    readonly non2xx: number;
    readonly rejectedBodies: number;
    readonly connectionErrors: number;
    readonly timeouts: number;
  };
  /** Requests still unanswered when the run stopped: one per connection in a closed loop that is moving at all. */
  readonly unansweredAtEnd: number;
  readonly statusCodes: Record<string, number>;
  /** Latency of the requests answered 2xx (as autocannon's histogram counts them), in ms, to 0.01 ms. */
  readonly latencyMs: {
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly max: number;
    readonly mean: number;
  };
}

async function drive(
  baseUrl: string,
  shape: RequestShape,
  options: { connections: number; durationS?: number; amount?: number; timeoutS: number },
) {
  let accepted = 0;
  let rejectedBodies = 0;
  const latenciesMs: number[] = [];
  const run = autocannon({
    url: baseUrl,
    connections: options.connections,
    ...(options.amount === undefined ? { duration: options.durationS ?? 1 } : { amount: options.amount }),
    timeout: options.timeoutS,
    pipelining: 1,
    requests: [
      {
        method: shape.method,
        path: shape.path,
        headers: shape.headers,
        ...(shape.body === undefined ? {} : { body: shape.body }),
        onResponse: (status, body) => {
          if (status < 200 || status > 299) {
            return;
          }
          if (shape.accepts(body)) {
            accepted += 1;
          } else {
            rejectedBodies += 1;
          }
        },
      },
    ],
  });
  run.on("response", (_client, status, _bytes, latencyMs) => {
    if (status >= 200 && status <= 299 && latenciesMs.length < MAX_LATENCY_SAMPLES) {
      latenciesMs.push(latencyMs);
    }
  });
  const result = await run;
  return { result, accepted, rejectedBodies, latenciesMs };
}

/** A bound on the latencies kept per run: far above what 10 s at the fastest system here answers (about 60,000). */
const MAX_LATENCY_SAMPLES = 1_000_000;

type DriveResult = Awaited<ReturnType<typeof drive>>;

/** One point from one or more runs of the same system (slices of an interleaved comparison), pooled. */
function summarize(connections: number, runs: readonly DriveResult[]): PointResult {
  const statusCodes: Record<string, number> = {};
  let durationS = 0;
  let ok = 0;
  let non2xx = 0;
  let rejectedBodies = 0;
  let connectionErrors = 0;
  let timeouts = 0;
  let unansweredAtEnd = 0;
  const latenciesMs: number[] = [];
  for (const run of runs) {
    const { result } = run;
    for (const [code, stat] of Object.entries(result.statusCodeStats)) {
      statusCodes[code] = (statusCodes[code] ?? 0) + Number(stat.count);
    }
    durationS += result.duration;
    ok += run.accepted;
    non2xx += result.non2xx;
    rejectedBodies += run.rejectedBodies;
    connectionErrors += result.errors - result.timeouts;
    timeouts += result.timeouts;
    unansweredAtEnd += Math.max(0, result.requests.sent - result.requests.total - result.errors);
    for (const latencyMs of run.latenciesMs) {
      latenciesMs.push(latencyMs);
    }
  }
  return {
    connections,
    durationS,
    ok,
    ratePerS: durationS > 0 ? ok / durationS : 0,
    errors: {
      total: non2xx + rejectedBodies + connectionErrors + timeouts,
      non2xx,
      rejectedBodies,
      connectionErrors,
      timeouts,
    },
    unansweredAtEnd,
    statusCodes,
    latencyMs: latencySummary(latenciesMs),
  };
}

/** Nearest-rank percentiles of `samplesMs` (sorted in place), to 0.01 ms; zeros when there are none. */
function latencySummary(samplesMs: number[]): PointResult["latencyMs"] {
  if (samplesMs.length === 0) {
    return { p50: 0, p90: 0, p99: 0, max: 0, mean: 0 };
  }
  samplesMs.sort((a, b) => a - b);
  const at = (fraction: number) => round2(samplesMs[Math.max(0, Math.ceil(fraction * samplesMs.length) - 1)]!);
  const sum = samplesMs.reduce((total, value) => total + value, 0);
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1), mean: round2(sum / samplesMs.length) };
}

const round2 = (value: number) => Math.round(value * 100) / 100;

/** One point: warm-up (discarded), then the measured run. */
export async function measurePoint(baseUrl: string, shape: RequestShape, options: LoadOptions): Promise<PointResult> {
  if (options.warmupS > 0) {
    await drive(baseUrl, shape, {
      connections: options.connections,
      durationS: options.warmupS,
      timeoutS: options.timeoutS,
    });
  }
  await options.beforeMeasured?.();
  const measured = drive(baseUrl, shape, {
    connections: options.connections,
    durationS: options.durationS,
    timeoutS: options.timeoutS,
  });
  if (options.atHalfway !== undefined) {
    await new Promise((done) => setTimeout(done, (options.durationS * 1_000) / 2));
    await options.atHalfway();
  }
  return summarize(options.connections, [await measured]);
}

/** Sends `amount` requests with `connections` clients (to fill a log, say) and reports how it went. */
export async function sendAmount(
  baseUrl: string,
  shape: RequestShape,
  options: { readonly connections: number; readonly amount: number; readonly timeoutS: number },
): Promise<PointResult> {
  return summarize(options.connections, [await drive(baseUrl, shape, options)]);
}

/** One system of an interleaved comparison, with what to do around each of its measured slices. */
export interface Contender {
  readonly baseUrl: string;
  readonly shape: RequestShape;
  /** Before each measured slice, after the warm-ups (the benchmark reads counters then). */
  readonly beforeSlice?: () => Promise<void>;
  /** After each measured slice and the drain request that follows it (one write more, when the shape writes). */
  readonly afterSlice?: () => Promise<void>;
  /** Once, halfway through its slice of the middle round (the benchmark samples memory then). */
  readonly atHalfway?: () => Promise<void>;
}

export interface InterleavedOptions {
  readonly connections: number;
  /** Measured seconds per contender in all, split evenly over the rounds. */
  readonly durationS: number;
  /** Seconds of warm-up per contender (thrown away), before the first round. */
  readonly warmupS: number;
  readonly rounds: number;
  readonly timeoutS: number;
}

/**
 * The contenders in turn, round after round, each measured for durationS/rounds per round, and each one's slices
 * pooled into one point. These machines are shared and their speed drifts within a minute (the baseline alone ran
 * at 158 and at 339 writes/s at one client in two runs 18 minutes apart): one long point per system, one after the
 * other, hands each drift to whichever system ran then, and the ratios between them move with it.
 *
 * A slice cut off at its end leaves up to one request per connection in flight, which its system still works
 * through: each slice is followed by one more request of its shape (not counted), answered only once the system
 * got through what came before it, so that the next slice does not pay for them. The order within each round is
 * shuffled (seeded, the same in every run), so that no contender always runs after the same other.
 */
export async function measureInterleaved(
  contenders: readonly Contender[],
  options: InterleavedOptions,
): Promise<PointResult[]> {
  if (!Number.isInteger(options.rounds) || options.rounds < 1) {
    throw new Error(`rounds must be a whole number of at least 1, got ${options.rounds}`);
  }
  const sliceS = options.durationS / options.rounds;
  // autocannon stops on a whole second: a slice of 2.5 s would run 3.
  if (options.rounds > 1 && (!Number.isInteger(sliceS) || sliceS < 1)) {
    throw new Error(`duration ${options.durationS} s in ${options.rounds} rounds: each slice must be whole seconds`);
  }
  const drives = { connections: options.connections, timeoutS: options.timeoutS };
  if (options.warmupS > 0) {
    for (const contender of contenders) {
      await drive(contender.baseUrl, contender.shape, { ...drives, durationS: options.warmupS });
      await drain(contender, options.timeoutS);
    }
  }
  const middleRound = Math.floor(options.rounds / 2);
  const slices: DriveResult[][] = contenders.map(() => []);
  const random = new SeededRandom(SLICE_ORDER_SEED);
  for (let round = 0; round < options.rounds; round++) {
    for (const at of shuffled(
      contenders.map((_, i) => i),
      random,
    )) {
      const contender = contenders[at]!;
      await contender.beforeSlice?.();
      const measured = drive(contender.baseUrl, contender.shape, { ...drives, durationS: sliceS });
      if (round === middleRound && contender.atHalfway !== undefined) {
        await new Promise((done) => setTimeout(done, (sliceS * 1_000) / 2));
        await contender.atHalfway();
      }
      slices[at]!.push(await measured);
      await drain(contender, options.timeoutS);
      await contender.afterSlice?.();
    }
  }
  return slices.map((runs) => summarize(options.connections, runs));
}

/** One request of the contender's shape, its answer thrown away: back once what was sent before it was handled. */
async function drain(contender: Contender, timeoutS: number): Promise<void> {
  const { shape } = contender;
  await fetch(`${contender.baseUrl}${shape.path}`, {
    method: shape.method,
    headers: shape.headers,
    ...(shape.body === undefined ? {} : { body: shape.body }),
    signal: AbortSignal.timeout(timeoutS * 1_000),
  })
    .then((answer) => answer.arrayBuffer())
    .catch(() => undefined);
}

/**
 * Fixed, so that the slice order is the same in every run. With the five systems of a write point, 8 starts each of
 * the four rounds with another system and puts no system after the same other more than twice.
 */
const SLICE_ORDER_SEED = 8;

function shuffled<T>(items: readonly T[], random: SeededRandom): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = random.nextInt(i + 1);
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}
