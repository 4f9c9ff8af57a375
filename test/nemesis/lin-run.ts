// End-to-end linearizability run: concurrent clients over real HTTP against the local server (`npm start`, i.e.
// wrangler dev), while a nemesis crashes nodes, partitions them and moves leadership. The history of every
// operation (with call and return times, and unknown outcomes for requests that failed or timed out) goes through
// the project's linearizability checker, and the verdict is printed.
//
//   npm run test:lin -- [--seconds 20] [--clients 6] [--keys 4] [--seed N] [--stale-reads]
// --stale-reads reads at level "none" (any node, no freshness bound): the checker must then find a violation.
import { resolve } from "node:path";
import { LocalServer, pollUntil } from "../e2e/local-server";
import { checkLinearizability, HistoryRecorder, registerModel, type RegisterInput, type RegisterOutput } from "../lincheck/index";

const TOKEN = "dev-admin-token";
const NODES = ["n1", "n2", "n3"];
const REQUEST_TIMEOUT_MS = 8_000;

export interface LinRunOptions {
  readonly seconds: number;
  readonly clients: number;
  readonly keys: number;
  readonly seed: number;
  /** "linearizable" (the default) is what is checked; "none" serves reads from any node and must be caught. */
  readonly readLevel?: "linearizable" | "none";
  readonly log?: (line: string) => void;
}

export interface LinRunResult {
  readonly verdict: string;
  readonly operations: number;
  readonly ok: number;
  readonly failed: number;
  readonly indeterminate: number;
  readonly nemesisActions: readonly string[];
  readonly detail?: string;
}

/** A small seeded generator (mulberry32): the run's choices replay from its seed, its timing does not. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface HttpAnswer {
  readonly status: number;
  readonly body: unknown;
}

async function call(baseUrl: string, path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<HttpAnswer> {
  const response = await fetch(`${baseUrl}${path}`, {
    method: init.method ?? "GET",
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json", ...init.headers },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // plain text
  }
  return { status: response.status, body };
}

interface RqliteResults {
  readonly results?: readonly { readonly error?: string; readonly rows_affected?: number; readonly values?: readonly (readonly unknown[])[] }[];
  readonly error?: string;
}

/** One operation over HTTP; undefined output = the outcome is unknown. Throws only for a definite refusal. */
async function perform(baseUrl: string, input: RegisterInput, requestId: string, readLevel: string): Promise<RegisterOutput | undefined | "refused"> {
  let answer: HttpAnswer;
  try {
    switch (input.kind) {
      case "read":
        answer = await call(baseUrl, `/db/query?level=${readLevel}&q=${encodeURIComponent(`SELECT v FROM reg WHERE k = '${input.key}'`)}`);
        break;
      case "write":
        answer = await call(baseUrl, "/db/execute", {
          method: "POST",
          body: [["INSERT INTO reg (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v", input.key, input.value]],
          headers: { "Idempotency-Key": requestId },
        });
        break;
      case "cas":
        answer = await call(baseUrl, "/db/execute", {
          method: "POST",
          body: [["UPDATE reg SET v = ? WHERE k = ? AND v = ?", input.to, input.key, input.from]],
          headers: { "Idempotency-Key": requestId },
        });
        break;
    }
  } catch {
    return input.kind === "read" ? "refused" : undefined;
  }
  const body = answer.body as RqliteResults;
  const first = body.results?.[0];
  if (answer.status !== 200 || first === undefined || first.error !== undefined) {
    // A failed read had no effect; a failed write may or may not have been applied (unless refused outright).
    if (input.kind === "read" || answer.status === 400) return "refused";
    return undefined;
  }
  switch (input.kind) {
    case "read": {
      const row = first.values?.[0];
      return { value: row === undefined ? null : String(row[0]) };
    }
    case "write":
      return {};
    case "cas":
      return { ok: first.rows_affected === 1 };
  }
}

async function runClient(options: { baseUrl: string; readLevel: string; clientId: number; keys: number; until: number; random: () => number; history: HistoryRecorder<RegisterInput, RegisterOutput>; lastValues: Map<string, string> }): Promise<void> {
  let seq = 0;
  while (Date.now() < options.until) {
    const key = `k${Math.floor(options.random() * options.keys)}`;
    const dice = options.random();
    const value = `c${options.clientId}-${seq++}`;
    const seen = options.lastValues.get(key);
    const input: RegisterInput =
      dice < 0.45 ? { kind: "read", key } : dice < 0.8 || seen === undefined ? { kind: "write", key, value } : { kind: "cas", key, from: seen, to: value };
    const handle = options.history.invoke(options.clientId, input, performance.now());
    const output = await perform(options.baseUrl, input, `lin-${options.clientId}-${seq}`, options.readLevel);
    if (output === "refused" || output === undefined) {
      // Recorded as "unknown outcome": for a read that constrains nothing; for a refused write it is conservative.
      options.history.indeterminate(handle);
      continue;
    }
    options.history.complete(handle, output, performance.now());
    if (input.kind === "read" && output.value !== undefined && output.value !== null) options.lastValues.set(key, output.value);
  }
}

async function runNemesis(options: { baseUrl: string; until: number; random: () => number; actions: string[] }): Promise<void> {
  const setFaults = (node: string, rules: unknown) => call(options.baseUrl, `/_test/nodes/${node}/faults`, { method: "POST", body: rules });
  const healAll = () => Promise.all(NODES.map((node) => setFaults(node, {})));
  while (Date.now() < options.until) {
    await new Promise((r) => setTimeout(r, 1_000 + options.random() * 1_500));
    const choice = options.random();
    const victim = NODES[Math.floor(options.random() * NODES.length)]!;
    try {
      if (choice < 0.3) {
        options.actions.push(`crash ${victim}`);
        await call(options.baseUrl, `/_test/nodes/${victim}/crash`, { method: "POST", body: {} });
      } else if (choice < 0.6) {
        options.actions.push(`isolate ${victim}`);
        await Promise.all(NODES.map((node) => setFaults(node, { partitions: NODES.filter((o) => o !== node && (o === victim || node === victim)).map((o) => ({ from: node, to: o, bothWays: true })) })));
      } else if (choice < 0.8) {
        options.actions.push("stepdown");
        await call(options.baseUrl, "/api/v1/cluster/leader/stepdown", { method: "POST", body: {} });
      } else {
        options.actions.push("heal");
        await healAll();
      }
    } catch (err) {
      options.actions.push(`(nemesis action failed: ${String(err)})`);
    }
  }
  await healAll();
  options.actions.push("heal (final)");
}

export async function runLinearizability(options: LinRunOptions): Promise<LinRunResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  // The test-only fault hook is switched on for this server only; wrangler.toml never sets it.
  const server = await LocalServer.start({ extraArgs: ["--var", "DHA_TEST_FAULTS:1", "--var", "DHA_LOG_LEVEL:warn"] });
  try {
    const baseUrl = server.baseUrl;
    await pollUntil("the cluster to accept the schema", 30_000, async () => {
      const created = await call(baseUrl, "/db/execute", { method: "POST", body: ["CREATE TABLE IF NOT EXISTS reg (k TEXT PRIMARY KEY, v TEXT)"] }).catch(() => null);
      return created?.status === 200 ? true : undefined;
    });
    const random = seededRandom(options.seed);
    const history = new HistoryRecorder<RegisterInput, RegisterOutput>();
    const lastValues = new Map<string, string>();
    const until = Date.now() + options.seconds * 1_000;
    const actions: string[] = [];
    log(`linearizability run: seed ${options.seed}, ${options.clients} clients, ${options.keys} keys, ${options.seconds} s, nemesis on`);
    await Promise.all([
      ...Array.from({ length: options.clients }, (_, clientId) => runClient({ baseUrl, readLevel: options.readLevel ?? "linearizable", clientId, keys: options.keys, until, random: seededRandom(options.seed * 31 + clientId), history, lastValues })),
      runNemesis({ baseUrl, until, random, actions }),
    ]);
    const operations = history.operations();
    const result = checkLinearizability(registerModel, operations, { maxSteps: 20_000_000 });
    const indeterminate = operations.filter((op) => op.output === undefined).length;
    return {
      verdict: result.verdict,
      operations: operations.length,
      ok: operations.length - indeterminate,
      failed: operations.filter((op) => op.input.kind === "cas" && op.output?.ok === false).length,
      indeterminate,
      nemesisActions: actions,
      ...(result.detail === undefined ? {} : { detail: result.detail }),
    };
  } finally {
    await server.stop();
  }
}

function parseArgs(argv: readonly string[]): LinRunOptions {
  const value = (name: string, fallback: number): number => {
    const at = argv.indexOf(`--${name}`);
    if (at < 0) return fallback;
    const parsed = Number(argv[at + 1]);
    if (!Number.isInteger(parsed) || parsed < 0) throw new Error(`--${name} needs a non-negative integer`);
    return parsed;
  };
  const readLevel = argv.includes("--stale-reads") ? ("none" as const) : ("linearizable" as const);
  return { readLevel, seconds: value("seconds", 20), clients: value("clients", 6), keys: value("keys", 4), seed: value("seed", Date.now() % 1_000_000) };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const options = parseArgs(process.argv.slice(2));
  runLinearizability(options)
    .then((result) => {
      console.log(`nemesis: ${result.nemesisActions.join(", ")}`);
      console.log(`operations ${result.operations} (completed ${result.ok}, unknown outcome ${result.indeterminate}, cas failed ${result.failed})`);
      if (result.detail !== undefined) console.log(result.detail);
      console.log(`verdict: ${result.verdict} (seed ${options.seed})`);
      process.exit(result.verdict === "linearizable" ? 0 : 1);
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exit(2);
    });
}
