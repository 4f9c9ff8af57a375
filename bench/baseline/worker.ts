// The benchmark's baseline (bench/baseline/wrangler.toml): what one SQLite Durable Object costs behind a worker,
// with no replication. Same routes and request shapes as the cluster's data API (a bearer token, a JSON array of
// statements on POST /db/execute, `q` on GET /db/query), answered in rqlite's shapes, so that the benchmark's client
// sends byte for byte the same requests to both. Each request is one RPC to the one object, which runs its
// statements against its own SQLite.
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

class BadRequest extends Error {}

export class BaselineNode extends DurableObject<Env> {
  /** RPCs this instance received: the benchmark reads it to count billed work per write (one per request). */
  private rpcsReceived = 0;

  execute(statements: readonly Statement[]): StatementResult[] {
    this.rpcsReceived += 1;
    return statements.map((statement) => this.runOne(statement, { write: true }));
  }

  query(statements: readonly Statement[]): StatementResult[] {
    this.rpcsReceived += 1;
    return statements.map((statement) => this.runOne(statement, { write: false }));
  }

  stats(): { readonly rpcsReceived: number } {
    return { rpcsReceived: this.rpcsReceived };
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

app.use("/db/*", async (c, next) => {
  if (c.req.header("authorization") !== `Bearer ${c.env.BENCH_TOKEN}`) {
    return c.json({ error: "unauthorized" }, 401);
  }
  await next();
});

app.post("/db/execute", async (c) => {
  const text = await c.req.text();
  if (text.length > MAX_BODY_BYTES) {
    return c.json({ error: "body too large" }, 413);
  }
  const statements = parseStatements(text);
  const results = await c.env.BASELINE.getByName("baseline").execute(statements);
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

app.get("/bench/stats", async (c) => c.json(await c.env.BASELINE.getByName("baseline").stats()));

app.onError((err, c) =>
  err instanceof BadRequest ? c.json({ error: err.message }, 400) : c.json({ error: String(err) }, 500),
);

export default app;
