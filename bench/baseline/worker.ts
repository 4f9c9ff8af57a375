// The benchmark's baseline (bench/baseline/wrangler.toml): what one SQLite Durable Object costs behind a worker,
// with no replication. Same routes and request shapes as the cluster's data API (a bearer token, a JSON array of
// statements on POST /db/execute, `q` on GET /db/query), answered in rqlite's shapes, so that the benchmark's client
// sends byte for byte the same requests to both. Each request is one RPC to the one object, which runs its
// statements against its own SQLite.
//
// POST /fanout/execute (same body and answer) is the replication floor: the least work any system that keeps three
// copies does on this runtime. One object of the same class runs the statements in its own SQLite and sends them to
// two others (by name, over DO RPC), which run them too; the answer waits until both copies are applied, or one with
// `?ack=majority`. Writes that arrive while a call to a peer is in flight ride the next call together (one RPC per
// peer per batch, at most one in flight per peer), as a good replicator batches. It is a floor, not a database:
// no log, no terms, no elections, no retries, no catch-up, no durability beyond what each object's SQLite gives; a
// failed call to a peer fails the writes it carried, and the copies may then differ.
//
// GET /probe/:op (scripts/bench/probe.ts) times what the platform itself charges an object: nothing, one write (a
// storage commit before the answer leaves), a call to another object, and a write with a call sent after it or
// before it in the same turn (whether a send made before a write waits for the write's commit too).
import { DurableObject } from "cloudflare:workers";
import { Hono } from "hono";

interface Env {
  BASELINE: DurableObjectNamespace<BaselineNode>;
  BENCH_TOKEN: string;
}

type SqlValue = string | number | null;
interface Statement {
  readonly sql: string;
  readonly params: readonly SqlValue[];
}

/** rqlite's result shape for one statement (only the fields the benchmark's statements produce). */
type StatementResult =
  | { readonly last_insert_id: number; readonly rows_affected: number }
  | { readonly columns: readonly string[]; readonly values: readonly (readonly SqlValue[])[] }
  | { readonly error: string };

/** Bounds, as the cluster has them, so that a bad request is a 400 and never a 5xx. */
const MAX_BODY_BYTES = 1024 * 1024;
const MAX_STATEMENTS = 100;
const MAX_RESULT_ROWS = 10_000;

/** The replication floor's three copies: the first takes the requests and sends to the other two. */
const FLOOR_LEADER = "floor-1";
const FLOOR_PEERS = ["floor-2", "floor-3"] as const;
/** Writes one call to a peer carries at most, and writes that may wait for a peer at most (then an error). */
const MAX_WRITES_PER_CALL = 256;
const MAX_WRITES_WAITING = 10_000;
/** A call to a peer that has not answered by then fails the writes it carried. */
const PEER_CALL_TIMEOUT_MS = 10_000;

/** The probes of GET /probe/:op, and the object the calls among them go to. */
export const PROBE_OPS = ["noop", "write", "call", "write-then-call", "call-then-write"] as const;
type ProbeOp = (typeof PROBE_OPS)[number];
const PROBE_OBJECT = "probe";
const PROBE_PEER = "probe-peer";

class BadRequest extends Error {}

/** One write waiting for copies: answered when `acksMissing` peers more have applied it. */
interface WaitingWrite {
  readonly statements: readonly Statement[];
  acksMissing: number;
  readonly answer: () => void;
  readonly fail: (error: unknown) => void;
}

/** One peer as the floor's first copy sees it: writes not sent yet, and whether a call is in flight (one at most). */
interface PeerLane {
  readonly stub: DurableObjectStub<BaselineNode>;
  readonly queued: WaitingWrite[];
  inFlight: boolean;
}

export class BaselineNode extends DurableObject<Env> {
  /** RPCs this instance received: the benchmark reads it to count billed work per write (one per request). */
  private rpcsReceived = 0;
  /** The floor's first copy's peers, made on its first write (the other objects have none). */
  private lanes: PeerLane[] | null = null;

  execute(statements: readonly Statement[]): StatementResult[] {
    this.rpcsReceived += 1;
    return statements.map((statement) => this.runOne(statement, { write: true }));
  }

  query(statements: readonly Statement[]): StatementResult[] {
    this.rpcsReceived += 1;
    return statements.map((statement) => this.runOne(statement, { write: false }));
  }

  /** The floor's first copy: runs `statements` here, then waits until `acksNeeded` peers have applied them too. */
  async replicate(
    statements: readonly Statement[],
    options: { readonly acksNeeded: 1 | 2 },
  ): Promise<StatementResult[]> {
    this.rpcsReceived += 1;
    const results = statements.map((statement) => this.runOne(statement, { write: true }));
    await this.copyToPeers(statements, options.acksNeeded);
    return results;
  }

  /** A peer of the floor: applies each write of a batch, in order (one RPC, so one implicit transaction). */
  applyCopies(writes: readonly (readonly Statement[])[]): number {
    this.rpcsReceived += 1;
    for (const statements of writes) {
      for (const statement of statements) {
        this.runOne(statement, { write: true });
      }
    }
    return writes.length;
  }

  /** One probe of GET /probe/:op: what it does is its name (PROBE_OPS); answers 1. */
  async probe(op: ProbeOp): Promise<number> {
    switch (op) {
      case "noop":
        return 1;
      case "write":
        this.probeWrite();
        return 1;
      case "call":
        return await this.env.BASELINE.getByName(PROBE_PEER).probe("noop");
      case "write-then-call": {
        this.probeWrite();
        return await this.env.BASELINE.getByName(PROBE_PEER).probe("noop");
      }
      case "call-then-write": {
        const answer = this.env.BASELINE.getByName(PROBE_PEER).probe("noop");
        this.probeWrite();
        return await answer;
      }
    }
  }

  private probeWrite(): void {
    this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, v TEXT)");
    this.ctx.storage.sql.exec("INSERT INTO probe (v) VALUES ('x')");
    // Bounded: the table never holds more than the last write.
    this.ctx.storage.sql.exec("DELETE FROM probe WHERE id < last_insert_rowid()");
  }

  stats(): { readonly rpcsReceived: number } {
    return { rpcsReceived: this.rpcsReceived };
  }

  private copyToPeers(statements: readonly Statement[], acksNeeded: 1 | 2): Promise<void> {
    this.lanes ??= FLOOR_PEERS.map((name) => ({
      stub: this.env.BASELINE.getByName(name),
      queued: [],
      inFlight: false,
    }));
    const lanes = this.lanes;
    if (lanes.some((lane) => lane.queued.length >= MAX_WRITES_WAITING)) {
      return Promise.reject(new Error(`more than ${MAX_WRITES_WAITING} writes wait for a peer`));
    }
    return new Promise((answer, fail) => {
      const write: WaitingWrite = { statements, acksMissing: acksNeeded, answer, fail };
      for (const lane of lanes) {
        lane.queued.push(write);
        this.sendNextBatch(lane);
      }
    });
  }

  /** Sends everything queued for `lane` in one call, unless a call is already in flight (its answer sends next). */
  private sendNextBatch(lane: PeerLane): void {
    if (lane.inFlight || lane.queued.length === 0) {
      return;
    }
    const batch = lane.queued.splice(0, MAX_WRITES_PER_CALL);
    lane.inFlight = true;
    withDeadline(lane.stub.applyCopies(batch.map((write) => write.statements)), PEER_CALL_TIMEOUT_MS, "a peer's copy")
      .then(
        () => batch.forEach(acknowledge),
        // Failing an already answered write (the other peer acknowledged it at majority) does nothing.
        (error: unknown) => batch.forEach((write) => write.fail(error)),
      )
      .finally(() => {
        lane.inFlight = false;
        this.sendNextBatch(lane);
      });
  }

  private runOne(statement: Statement, options: { readonly write: boolean }): StatementResult {
    try {
      const cursor = this.ctx.storage.sql.exec(statement.sql, ...statement.params);
      if (options.write) {
        cursor.toArray();
        const { id, changed } = this.ctx.storage.sql
          .exec<{ id: number; changed: number }>("SELECT last_insert_rowid() AS id, changes() AS changed")
          .one();
        return { last_insert_id: id, rows_affected: changed };
      }
      const values: SqlValue[][] = [];
      for (const row of cursor.raw()) {
        if (values.length >= MAX_RESULT_ROWS) {
          return { error: `more than ${MAX_RESULT_ROWS} rows` };
        }
        values.push(row as SqlValue[]);
      }
      return { columns: cursor.columnNames, values };
    } catch (err) {
      return { error: err instanceof Error ? err.message : String(err) };
    }
  }
}

function acknowledge(write: WaitingWrite): void {
  write.acksMissing -= 1;
  if (write.acksMissing === 0) {
    write.answer();
  }
}

async function withDeadline<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const deadline = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`${what} took longer than ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    if (timer !== null) {
      clearTimeout(timer);
    }
  }
}

function parseStatements(text: string): Statement[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new BadRequest("the body is not JSON");
  }
  if (!Array.isArray(body) || body.length === 0 || body.length > MAX_STATEMENTS) {
    throw new BadRequest(`the body must be a JSON array of 1 to ${MAX_STATEMENTS} statements`);
  }
  return body.map((item: unknown): Statement => {
    if (typeof item === "string") {
      return { sql: item, params: [] };
    }
    if (Array.isArray(item) && typeof item[0] === "string" && item.slice(1).every(isSqlValue)) {
      return { sql: item[0], params: item.slice(1) as SqlValue[] };
    }
    throw new BadRequest('each statement is "sql" or ["sql", values...]');
  });
}

function isSqlValue(value: unknown): value is SqlValue {
  return value === null || typeof value === "string" || (typeof value === "number" && Number.isFinite(value));
}

const app = new Hono<{ Bindings: Env }>();

app.get("/livez", (c) => c.text("ok\n"));

for (const path of ["/db/*", "/fanout/*"]) {
  app.use(path, async (c, next) => {
    if (c.req.header("authorization") !== `Bearer ${c.env.BENCH_TOKEN}`) {
      return c.json({ error: "unauthorized" }, 401);
    }
    await next();
  });
}

class BodyTooLarge extends Error {}

async function statementsOf(request: Request): Promise<Statement[]> {
  const text = await request.text();
  if (text.length > MAX_BODY_BYTES) {
    throw new BodyTooLarge("body too large");
  }
  return parseStatements(text);
}

app.post("/db/execute", async (c) => {
  const statements = await statementsOf(c.req.raw);
  const results = await c.env.BASELINE.getByName("baseline").execute(statements);
  return c.json({ results });
});

app.post("/fanout/execute", async (c) => {
  const statements = await statementsOf(c.req.raw);
  const acksNeeded = c.req.query("ack") === "majority" ? 1 : 2;
  const results = await c.env.BASELINE.getByName(FLOOR_LEADER).replicate(statements, { acksNeeded });
  return c.json({ results });
});

app.get("/db/query", async (c) => {
  const q = c.req.query("q");
  if (q === undefined || q.length === 0) {
    return c.json({ error: "q is required" }, 400);
  }
  const results = await c.env.BASELINE.getByName("baseline").query([{ sql: q, params: [] }]);
  return c.json({ results });
});

/** A read on one of the floor's copies (`copy` 1 to 3): to check that the copies agree, not to benchmark. */
app.get("/fanout/query", async (c) => {
  const q = c.req.query("q");
  const name = [FLOOR_LEADER, ...FLOOR_PEERS][Number(c.req.query("copy") ?? "1") - 1];
  if (q === undefined || q.length === 0 || name === undefined) {
    return c.json({ error: "q and copy (1 to 3) are required" }, 400);
  }
  const results = await c.env.BASELINE.getByName(name).query([{ sql: q, params: [] }]);
  return c.json({ results });
});

app.get("/probe/:op", async (c) => {
  const op = PROBE_OPS.find((known) => known === c.req.param("op"));
  if (op === undefined) {
    return c.json({ error: `op must be one of ${PROBE_OPS.join(", ")}` }, 400);
  }
  return c.text(String(await c.env.BASELINE.getByName(PROBE_OBJECT).probe(op)));
});

app.get("/bench/stats", async (c) => c.json(await c.env.BASELINE.getByName("baseline").stats()));

/** RPCs the floor's three copies received, together (the worker's and the peer calls). */
app.get("/bench/fanout-stats", async (c) => {
  const names = [FLOOR_LEADER, ...FLOOR_PEERS];
  const each = await Promise.all(names.map((name) => c.env.BASELINE.getByName(name).stats()));
  return c.json({ rpcsReceived: each.reduce((sum, stats) => sum + stats.rpcsReceived, 0) });
});

app.onError((err, c) => {
  if (err instanceof BadRequest) {
    return c.json({ error: err.message }, 400);
  }
  if (err instanceof BodyTooLarge) {
    return c.json({ error: err.message }, 413);
  }
  // An error the floor's object threw (too many writes waiting, a peer's copy that failed) comes here too.
  return c.json({ error: String(err) }, 500);
});

export default app;
