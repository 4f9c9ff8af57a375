// The part of autocannon's programmatic API (README, "API") the benchmark uses; the package ships no types.
declare module "autocannon" {
  interface AutocannonRequest {
    readonly method?: string;
    readonly path?: string;
    readonly headers?: Record<string, string>;
    readonly body?: string;
    readonly onResponse?: (status: number, body: string) => void;
  }
  interface AutocannonOptions {
    readonly url: string;
    readonly connections: number;
    readonly duration?: number;
    readonly amount?: number;
    /** Seconds to wait for an answer before counting a timeout. */
    readonly timeout?: number;
    readonly pipelining?: number;
    readonly requests?: readonly AutocannonRequest[];
  }
  interface Histogram {
    readonly average: number;
    readonly mean: number;
    readonly min: number;
    readonly max: number;
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
  }
  interface AutocannonResult {
    readonly latency: Histogram;
    readonly requests: Histogram & { readonly total: number; readonly sent: number };
    /** Seconds the run took. */
    readonly duration: number;
    readonly errors: number;
    readonly timeouts: number;
    readonly non2xx: number;
    readonly statusCodeStats: Record<string, { readonly count: number }>;
  }
  /** A running load: awaitable for its result, and an emitter of each answer as it comes. */
  interface AutocannonRun extends PromiseLike<AutocannonResult> {
    /** Every answer: its status, its size, and its time from sending to the whole answer, in (fractional) ms. */
    on(
      event: "response",
      listener: (client: unknown, statusCode: number, responseBytes: number, responseTimeMs: number) => void,
    ): this;
  }
  function autocannon(options: AutocannonOptions): AutocannonRun;
  export default autocannon;
}
