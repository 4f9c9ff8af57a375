// End-to-end linearizability run: concurrent clients over real HTTP against the local server (`npm start`, i.e.
// wrangler dev), while a nemesis crashes nodes, partitions them and moves leadership. Clients write, compare-and-set
// and read at every level (linearizable, strong, weak, none, auto, and read-your-writes with X-DHA-Raft-Index); one
// more client takes backups. What each level promises is checked (./lin-checks.ts) and the verdict printed.
//
//   npm run test:lin -- [--seconds 20] [--clients 6] [--keys 4] [--seed N] [--stale-reads] [--history FILE]
// --stale-reads puts level-"none" reads into the linearizability check, which must then find a violation.
// --history FILE writes every operation as JSON (format: README, "Testing"), for an independent checker.
import { resolve } from "node:path";
import { LocalServer } from "../../scripts/lib/local-server";
import { pollUntil } from "../../scripts/lib/processes";
import {
  HISTORY_FORMAT,
  READ_MODES,
  writeHistoryFile,
  type HistoryInput,
  type HistoryOperation,
  type HistoryOutput,
  type ReadMode,
} from "./history-file";
import { checkRun, type RunChecks } from "./lin-checks";

const TOKEN = "dev-admin-token";
const NODES = ["n1", "n2", "n3"];
/** The server's deadline for each request; the client waits a little longer, so that the server answers first. */
const SERVER_TIMEOUT = "6s";
const CLIENT_TIMEOUT_MS = 8_000;

export interface LinRunOptions {
  readonly seconds: number;
  readonly clients: number;
  readonly keys: number;
  readonly seed: number;
  /** Put level-"none" reads (which any node serves, however stale) into the linearizability check: must fail. */
  readonly staleReads?: boolean;
  /** Write the history as JSON here. */
  readonly historyFile?: string;
  readonly log?: (line: string) => void;
}

export interface LinRunResult {
  readonly verdict: string;
  readonly operations: number;
  readonly ok: number;
  readonly failed: number;
  readonly indeterminate: number;
  readonly checked: RunChecks["checked"];
  readonly problems: readonly string[];
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
  readonly text: string;
  readonly node?: string;
  readonly raftIndex?: number;
  /** X-DHA-Error-Code: set on failures the worker answered itself (not on the platform's own errors). */
  readonly code?: string;
}

async function call(
  baseUrl: string,
  path: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<HttpAnswer> {
  const response = await fetch(`${baseUrl}${path}`, {
    method: init.method ?? "GET",
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json", ...init.headers },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // plain text (a backup)
  }
  const node = response.headers.get("X-DHA-Node");
  const code = response.headers.get("X-DHA-Error-Code");
  const raftIndex = Number(response.headers.get("X-DHA-Raft-Index") ?? Number.NaN);
  return {
    status: response.status,
    body,
    text,
    ...(node === null ? {} : { node }),
    ...(Number.isSafeInteger(raftIndex) ? { raftIndex } : {}),
    ...(code === null ? {} : { code }),
  };
}

interface RqliteResults {
  readonly results?: readonly {
    readonly error?: string;
    readonly rows_affected?: number;
    readonly values?: readonly (readonly unknown[])[];
  }[];
  readonly error?: string;
}

/** What came of one request: its output, or that it definitely failed, or that its outcome is unknown. */
type Outcome =
  | { readonly kind: "ok"; readonly output: HistoryOutput; readonly answer: HttpAnswer }
  | { readonly kind: "failed"; readonly answer: HttpAnswer }
  | { readonly kind: "unknown"; readonly answer?: HttpAnswer };

function readPath(input: HistoryInput & { kind: "read" }): { path: string; headers: Record<string, string> } {
  const q = encodeURIComponent(`SELECT v FROM reg WHERE k = '${input.key}'`);
  if (input.level === "read-your-writes") {
    // No level: the read becomes level none with the write's index as its floor (README, "Read-your-writes").
    return {
      path: `/db/query?timeout=${SERVER_TIMEOUT}&q=${q}`,
      headers: { "X-DHA-Raft-Index": String(input.minRaftIndex ?? 0) },
    };
  }
  return { path: `/db/query?timeout=${SERVER_TIMEOUT}&level=${input.level}&q=${q}`, headers: {} };
}

async function perform(baseUrl: string, input: HistoryInput, requestId: string): Promise<Outcome> {
  let answer: HttpAnswer;
  try {
    switch (input.kind) {
      case "read": {
        const { path, headers } = readPath(input);
        answer = await call(baseUrl, path, { headers });
        break;
      }
      case "write":
        answer = await call(baseUrl, `/db/execute?timeout=${SERVER_TIMEOUT}`, {
          method: "POST",
          body: [
            [
              "INSERT INTO reg (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
              input.key,
              input.value,
            ],
          ],
          headers: { "Idempotency-Key": requestId },
        });
        break;
      case "cas":
        answer = await call(baseUrl, `/db/execute?timeout=${SERVER_TIMEOUT}`, {
          method: "POST",
          body: [["UPDATE reg SET v = ? WHERE k = ? AND v = ?", input.to, input.key, input.from]],
          headers: { "Idempotency-Key": requestId },
        });
        break;
      case "backup":
        answer = await call(baseUrl, `/db/backup?fmt=sql&timeout=${SERVER_TIMEOUT}`);
        break;
    }
  } catch {
    // No answer (the client gave up or the connection broke): a write may have been applied.
    return { kind: "unknown" };
  }
  if (answer.status !== 200) {
    // README: a write the worker refused with 400, 409, 413 or 503 was not applied; 504 and 500 leave its outcome
    // unknown. A failure without X-DHA-Error-Code is the platform's (e.g. wrangler dev's "worker restarted
    // mid-request" 503), which says nothing about the write.
    const definite = answer.code !== undefined && [400, 409, 413, 503].includes(answer.status);
    return definite ? { kind: "failed", answer } : { kind: "unknown", answer };
  }
  if (input.kind === "backup") {
    return { kind: "ok", output: { values: registerRowsOf(answer.text) }, answer };
  }
  const first = (answer.body as RqliteResults).results?.[0];
  if (first === undefined) {
    // A 200 without a result says nothing about the statement: for a write, that is an unknown outcome.
    return input.kind === "read" ? { kind: "failed", answer } : { kind: "unknown", answer };
  }
  if (first.error !== undefined) {
    // The statement failed (one statement, so nothing of it was applied).
    return { kind: "failed", answer };
  }
  switch (input.kind) {
    case "read": {
      const row = first.values?.[0];
      return { kind: "ok", output: { value: row === undefined ? null : String(row[0]) }, answer };
    }
    case "write":
      return { kind: "ok", output: {}, answer };
    case "cas":
      return { kind: "ok", output: { ok: first.rows_affected === 1 }, answer };
  }
}

/** The rows of table reg in a SQL dump: INSERT INTO reg VALUES('k1','c2-7'); (values through SQLite's quote()). */
export function registerRowsOf(dump: string): Record<string, string> {
  const rows: Record<string, string> = {};
  const insert = /^INSERT INTO "?reg"?(?:\([^)]*\))? VALUES\('((?:[^']|'')*)','((?:[^']|'')*)'\);$/gm;
  for (const match of dump.matchAll(insert)) {
    rows[(match[1] as string).replaceAll("''", "'")] = (match[2] as string).replaceAll("''", "'");
  }
  return rows;
}

function errorOf(answer: HttpAnswer | undefined): string {
  if (answer === undefined) {
    return "no answer";
  }
  const body = answer.body as RqliteResults;
  const message = (body.error ?? body.results?.[0]?.error ?? answer.text.slice(0, 200)) || `HTTP ${answer.status}`;
  return answer.code === undefined ? message : `${answer.code}: ${message}`;
}

/** Collects operations with ids and times relative to the run's start. */
class RunHistory {
  readonly operations: HistoryOperation[] = [];
  private readonly startedMs = performance.now();

  now(): number {
    return Math.round((performance.now() - this.startedMs) * 1000) / 1000;
  }

  record(client: number, input: HistoryInput, call: number, outcome: Outcome): HistoryOperation {
    const answer = outcome.answer;
    const op: HistoryOperation = {
      id: this.operations.length,
      client,
      call,
      return: outcome.kind === "unknown" && input.kind !== "read" && input.kind !== "backup" ? null : this.now(),
      input,
      output: outcome.kind === "ok" ? outcome.output : null,
      unknown: outcome.kind === "unknown" && input.kind !== "read" && input.kind !== "backup",
      ...(answer?.node === undefined ? {} : { node: answer.node }),
      ...(answer?.raftIndex === undefined ? {} : { raftIndex: answer.raftIndex }),
      ...(answer === undefined ? {} : { status: answer.status }),
      ...(outcome.kind === "ok" ? {} : { error: errorOf(answer) }),
    };
    this.operations.push(op);
    return op;
  }
}

interface ClientOptions {
  readonly baseUrl: string;
  readonly clientId: number;
  readonly keys: number;
  readonly until: number;
  readonly random: () => number;
  readonly history: RunHistory;
  readonly lastValues: Map<string, string>;
  readonly readModes: readonly ReadMode[];
}

async function runClient(options: ClientOptions): Promise<void> {
  let seq = 0;
  let reads = 0;
  let lastWrite: HistoryOperation | undefined;
  while (Date.now() < options.until) {
    const key = `k${Math.floor(options.random() * options.keys)}`;
    const dice = options.random();
    const value = `c${options.clientId}-${seq++}`;
    const seen = options.lastValues.get(key);
    let input: HistoryInput;
    if (dice < 0.5) {
      // Modes in rotation (from a different start per client), so that even a short run reads at every level.
      const level = options.readModes[(options.clientId + reads++) % options.readModes.length] as ReadMode;
      input =
        level === "read-your-writes" &&
        lastWrite?.raftIndex !== undefined &&
        lastWrite.input.kind !== "read" &&
        lastWrite.input.kind !== "backup"
          ? {
              kind: "read",
              key: lastWrite.input.key,
              level,
              minRaftIndex: lastWrite.raftIndex,
              afterWrite: lastWrite.id,
            }
          : { kind: "read", key, level: level === "read-your-writes" ? "linearizable" : level };
    } else {
      input =
        dice < 0.8 || seen === undefined ? { kind: "write", key, value } : { kind: "cas", key, from: seen, to: value };
    }
    const callAt = options.history.now();
    const outcome = await perform(options.baseUrl, input, `lin-${options.clientId}-${seq}`);
    const op = options.history.record(options.clientId, input, callAt, outcome);
    if (outcome.kind !== "ok") {
      continue;
    }
    if (input.kind === "read" && "value" in outcome.output && outcome.output.value !== null) {
      options.lastValues.set(input.key, outcome.output.value);
    }
    if (input.kind === "write" || (input.kind === "cas" && "ok" in outcome.output && outcome.output.ok)) {
      lastWrite = op;
    }
  }
}

/** Takes a backup every one to two seconds. */
async function runBackups(options: {
  baseUrl: string;
  clientId: number;
  until: number;
  random: () => number;
  history: RunHistory;
}): Promise<void> {
  while (Date.now() < options.until) {
    await new Promise((done) => setTimeout(done, 1_000 + options.random() * 1_000));
    const callAt = options.history.now();
    const outcome = await perform(options.baseUrl, { kind: "backup" }, "");
    options.history.record(options.clientId, { kind: "backup" }, callAt, outcome);
  }
}

async function runNemesis(options: {
  baseUrl: string;
  until: number;
  random: () => number;
  actions: string[];
}): Promise<void> {
  const setFaults = (node: string, rules: unknown) =>
    call(options.baseUrl, `/_test/nodes/${node}/faults`, { method: "POST", body: rules });
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
        await Promise.all(
          NODES.map((node) =>
            setFaults(node, {
              partitions: NODES.filter((o) => o !== node && (o === victim || node === victim)).map((o) => ({
                from: node,
                to: o,
                bothWays: true,
              })),
            }),
          ),
        );
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
    await pollUntil("the cluster to accept the schema", { timeoutMs: 30_000 }, async () => {
      const created = await call(baseUrl, "/db/execute", {
        method: "POST",
        body: ["CREATE TABLE IF NOT EXISTS reg (k TEXT PRIMARY KEY, v TEXT)"],
      }).catch(() => null);
      return created?.status === 200 ? true : undefined;
    });
    const random = seededRandom(options.seed);
    const history = new RunHistory();
    const startedAt = new Date().toISOString();
    const lastValues = new Map<string, string>();
    const until = Date.now() + options.seconds * 1_000;
    const actions: string[] = [];
    const readModes: readonly ReadMode[] = options.staleReads === true ? ["none"] : READ_MODES;
    log(
      `linearizability run: seed ${options.seed}, ${options.clients} clients + 1 taking backups, ${options.keys} keys, ${options.seconds} s, nemesis on`,
    );
    await Promise.all([
      ...Array.from({ length: options.clients }, (_, clientId) =>
        runClient({
          baseUrl,
          clientId,
          keys: options.keys,
          until,
          random: seededRandom(options.seed * 31 + clientId),
          history,
          lastValues,
          readModes,
        }),
      ),
      runBackups({
        baseUrl,
        clientId: options.clients,
        until,
        random: seededRandom(options.seed * 31 + options.clients),
        history,
      }),
      runNemesis({ baseUrl, until, random, actions }),
    ]);
    const operations = history.operations;
    if (options.historyFile !== undefined) {
      writeHistoryFile(options.historyFile, {
        format: HISTORY_FORMAT,
        seed: options.seed,
        startedAt,
        model: "register-per-key",
        operations,
      });
      log(`history: ${operations.length} operations written to ${options.historyFile}`);
    }
    const checks = checkRun(operations, { alsoLinearizable: options.staleReads === true ? ["none"] : [] });
    const writes = operations.filter((op) => op.input.kind === "write" || op.input.kind === "cas");
    return {
      verdict: checks.verdict,
      operations: operations.length,
      ok: operations.filter((op) => op.output !== null).length,
      failed: writes.filter((op) => !op.unknown && op.output === null).length,
      indeterminate: writes.filter((op) => op.unknown).length,
      checked: checks.checked,
      problems: checks.problems,
      nemesisActions: actions,
      ...(checks.detail === undefined ? {} : { detail: checks.detail }),
    };
  } finally {
    await server.stop();
  }
}

function parseArgs(argv: readonly string[]): LinRunOptions {
  const value = (name: string, fallback: number): number => {
    const at = argv.indexOf(`--${name}`);
    if (at < 0) {
      return fallback;
    }
    const parsed = Number(argv[at + 1]);
    if (!Number.isInteger(parsed) || parsed < 0) {
      throw new Error(`--${name} needs a non-negative integer`);
    }
    return parsed;
  };
  const historyAt = argv.indexOf("--history");
  const historyFile = historyAt < 0 ? undefined : argv[historyAt + 1];
  if (historyAt >= 0 && (historyFile === undefined || historyFile.startsWith("--"))) {
    throw new Error("--history needs a file name");
  }
  return {
    staleReads: argv.includes("--stale-reads"),
    seconds: value("seconds", 20),
    clients: value("clients", 6),
    keys: value("keys", 4),
    seed: value("seed", Date.now() % 1_000_000),
    ...(historyFile === undefined ? {} : { historyFile: resolve(historyFile) }),
  };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const options = parseArgs(process.argv.slice(2));
  runLinearizability(options)
    .then((result) => {
      console.log(`nemesis: ${result.nemesisActions.join(", ")}`);
      console.log(
        `operations ${result.operations} (answered ${result.ok}; writes: unknown outcome ${result.indeterminate}, failed ${result.failed})`,
      );
      console.log(
        `checked: ${Object.entries(result.checked)
          .map(([what, count]) => `${what} ${count}`)
          .join(", ")}`,
      );
      if (result.detail !== undefined) {
        console.log(result.detail);
      }
      console.log(`verdict: ${result.verdict} (seed ${options.seed})`);
      process.exit(result.verdict === "linearizable" ? 0 : 1);
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exit(2);
    });
}
