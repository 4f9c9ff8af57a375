// The one load generator every system gets: autocannon (pinned in package.json), closed loop (each connection sends
// its next request when the previous one is answered; no pipelining), keep-alive connections. A warm-up run with the
// same connections comes first and is thrown away. Every answer is checked: only a 2xx whose body the shape accepts
// counts as done; everything else (non-2xx, a body with an error, connection errors, timeouts) is counted as an error.
import autocannon from "autocannon";

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
  /** Latency of every answered request, errors included (autocannon's histogram), in ms. */
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
  const result = await autocannon({
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
  return { result, accepted, rejectedBodies };
}

function summarize(connections: number, run: Awaited<ReturnType<typeof drive>>): PointResult {
  const { result } = run;
  const statusCodes = Object.fromEntries(
    Object.entries(result.statusCodeStats).map(([code, stat]) => [code, Number(stat.count)]),
  );
  const timeouts = result.timeouts;
  const connectionErrors = result.errors - timeouts;
  const errorsTotal = result.non2xx + run.rejectedBodies + result.errors;
  return {
    connections,
    durationS: result.duration,
    ok: run.accepted,
    ratePerS: result.duration > 0 ? run.accepted / result.duration : 0,
    errors: {
      total: errorsTotal,
      non2xx: result.non2xx,
      rejectedBodies: run.rejectedBodies,
      connectionErrors,
      timeouts,
    },
    unansweredAtEnd: Math.max(0, result.requests.sent - result.requests.total - result.errors),
    statusCodes,
    latencyMs: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      max: result.latency.max,
      mean: result.latency.mean,
    },
  };
}

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
  return summarize(options.connections, await measured);
}

/** Sends `amount` requests with `connections` clients (to fill a log, say) and reports how it went. */
export async function sendAmount(
  baseUrl: string,
  shape: RequestShape,
  options: { readonly connections: number; readonly amount: number; readonly timeoutS: number },
): Promise<PointResult> {
  return summarize(options.connections, await drive(baseUrl, shape, options));
}
