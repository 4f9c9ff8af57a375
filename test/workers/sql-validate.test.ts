// Pure tests of the SQL tokenizer, the request codec and the leader-side validation/rewriting (no storage).
import { describe, expect, it } from "vitest";
import type { SqlRequest, Statement } from "../../src/shared/sql";
import {
  classifyStatement,
  decodeSqlRequest,
  encodeSqlRequest,
  prepareRead,
  prepareWrite,
  READ_ONLY_VIOLATION,
  splitSqlStatements,
  SqlCodecError,
  sqlRequestSizeBytes,
  SqlSyntaxError,
  tokenizeSql,
  type WriteContext,
} from "../../src/objects/sql/index";

const NOW_MS = Date.UTC(2026, 10, 26, 8, 0, 0, 123); // 2026-11-26 08:00:00.123

/** A byte source that counts 1, 2, 3, ... so that rewrites are predictable. */
function countingContext(): WriteContext & { calls: number[] } {
  let next = 1;
  const calls: number[] = [];
  return {
    nowMs: NOW_MS,
    calls,
    randomBytes(length: number): Uint8Array {
      calls.push(length);
      const bytes = new Uint8Array(length);
      for (let i = 0; i < length; i += 1) {
        bytes[i] = next++ & 0xff;
      }
      return bytes;
    },
  };
}

function request(statements: Statement[], transaction = false): SqlRequest {
  return { id: "req-1", transaction, statements };
}

function prepareOne(sql: string, params?: Statement["params"]): Statement {
  const prepared = prepareWrite(request([params === undefined ? { sql } : { sql, params }]), countingContext());
  if (!prepared.ok) {
    throw new Error(`refused: ${prepared.error}`);
  }
  const statement = prepared.request.statements[0];
  if (statement === undefined) {
    throw new Error("no statement");
  }
  return statement;
}

function refusal(sql: string, params?: Statement["params"]): string {
  const prepared = prepareWrite(request([params === undefined ? { sql } : { sql, params }]), countingContext());
  if (prepared.ok) {
    throw new Error(`accepted: ${prepared.request.statements[0]?.sql}`);
  }
  return prepared.error;
}

describe("tokenizer", () => {
  it("covers the input exactly and recognises each token kind", () => {
    const sql = `SELECT 'it''s', "a""b", [c d], \`e\`, x'0aFF', 1.5e3, 0x1F, ?2, :n, @m, $p -- tail\n/* block */ ;`;
    const tokens = tokenizeSql(sql);
    expect(tokens.map((t) => t.text).join("")).toBe(sql);
    const kinds = tokens.filter((t) => t.kind !== "space").map((t) => [t.kind, t.value]);
    expect(kinds).toEqual([
      ["word", "SELECT"],
      ["string", "it's"],
      ["punct", ","],
      ["quoted", 'a"b'],
      ["punct", ","],
      ["quoted", "c d"],
      ["punct", ","],
      ["quoted", "e"],
      ["punct", ","],
      ["blob", "0aFF"],
      ["punct", ","],
      ["number", "1.5e3"],
      ["punct", ","],
      ["number", "0x1F"],
      ["punct", ","],
      ["param", "?2"],
      ["punct", ","],
      ["param", ":n"],
      ["punct", ","],
      ["param", "@m"],
      ["punct", ","],
      ["param", "$p"],
      ["comment", "-- tail\n"],
      ["comment", "/* block */"],
      ["semicolon", ";"],
    ]);
  });

  it("refuses unterminated literals and malformed blobs with the offset", () => {
    expect(() => tokenizeSql("SELECT 'abc")).toThrow(SqlSyntaxError);
    expect(() => tokenizeSql("SELECT 'abc")).toThrow(/unterminated string literal at offset 7/);
    expect(() => tokenizeSql('SELECT "abc')).toThrow(/unterminated quoted identifier/);
    expect(() => tokenizeSql("SELECT x'abc'")).toThrow(/odd number of hex digits/);
    expect(() => tokenizeSql("SELECT x'zz'")).toThrow(/not hexadecimal/);
  });

  it("splits statements at top-level semicolons only, keeping trigger bodies whole", () => {
    const text = [
      "CREATE TABLE t(a TEXT DEFAULT ';');",
      "-- a comment; with a semicolon",
      "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = CASE WHEN a = 'x;' THEN 'y' END; INSERT INTO t VALUES('z'); END;",
      "INSERT INTO t VALUES ('a;b') ;",
      "SELECT 1",
    ].join("\n");
    const statements = splitSqlStatements(text);
    expect(statements).toHaveLength(4);
    expect(statements[0]).toBe("CREATE TABLE t(a TEXT DEFAULT ';')");
    expect(statements[1]).toMatch(/^-- a comment; with a semicolon\nCREATE TRIGGER tr .* END$/s);
    expect(statements[2]).toBe("INSERT INTO t VALUES ('a;b')");
    expect(statements[3]).toBe("SELECT 1");
  });
});

describe("classifyStatement", () => {
  it.each([
    ["SELECT * FROM t", "read"],
    ["  /* hi */ select 1", "read"],
    ["WITH x AS (SELECT 1) SELECT * FROM x", "read"],
    ["WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 3) SELECT n FROM c", "read"],
    ["WITH x AS (SELECT 1 AS v) INSERT INTO t SELECT v FROM x", "write"],
    ["EXPLAIN QUERY PLAN SELECT 1", "read"],
    ["EXPLAIN DELETE FROM t", "read"],
    ["VALUES (1), (2)", "read"],
    ["PRAGMA table_info(t)", "read"],
    ["PRAGMA main.index_list('t')", "read"],
    ["PRAGMA foreign_keys", "read"],
    ["PRAGMA foreign_keys = OFF", "write"],
    ["PRAGMA user_version(3)", "write"],
    ["INSERT INTO t VALUES (1)", "write"],
    ["CREATE TABLE t(a)", "write"],
    ["SELECT 1; SELECT 2", "write"],
    ["SELECT 'unterminated", "write"],
  ])("%s -> %s", (sql, expected) => {
    expect(classifyStatement(sql)).toBe(expected);
  });
});

describe("prepareWrite refusals", () => {
  it.each([
    ["SELECT * FROM _cf_KV", /"_cf_KV" is an internal object/],
    ['DELETE FROM "_cf_KV"', /internal object/],
    ["CREATE TABLE _dha_x(a)", /"_dha_x" is an internal object/],
    ["INSERT INTO t SELECT * FROM [_CF_kv]", /internal object/],
    ["ATTACH 'other.db' AS other", /ATTACH is not supported/],
    ["DETACH other", /DETACH is not supported/],
    ["BEGIN", /BEGIN is not supported: set the request's transaction flag/],
    ["BEGIN IMMEDIATE TRANSACTION", /BEGIN is not supported/],
    ["COMMIT", /COMMIT is not supported/],
    ["END TRANSACTION", /END is not supported/],
    ["ROLLBACK", /ROLLBACK is not supported/],
    ["SAVEPOINT s1", /SAVEPOINT is not supported/],
    ["RELEASE s1", /RELEASE is not supported/],
    ["VACUUM", /VACUUM is not supported/],
    ["PRAGMA foreign_keys = OFF", /foreign keys are always enforced on this platform.*defer_foreign_keys = ON/],
    // The examples it names answer on the platform: not integrity_check, which it refuses (outside check).
    ["PRAGMA journal_mode = WAL", /only read-only PRAGMAs are allowed \((?!.*integrity_check).*quick_check.*\)/],
    ["PRAGMA user_version = 7", /PRAGMA user_version is not supported/],
    ["PRAGMA defer_foreign_keys(1)", /only allowed in a request with \?transaction/],
    ["PRAGMA defer_foreign_keys = ON", /only allowed in a request with \?transaction/],
    ["PRAGMA defer_foreign_keys = maybe", /takes ON or OFF/],
    ["PRAGMA temp.defer_foreign_keys = ON", /PRAGMA defer_foreign_keys is not supported here/],
    ["PRAGMA writable_schema=ON", /PRAGMA writable_schema is not supported/],
    // A bare PRAGMA names no pragma: no double space (outside check, 2 Dec).
    ["PRAGMA", /^statements\[0\]: PRAGMA is not supported here: only read-only PRAGMAs/],
    ["SELECT load_extension('evil')", /load_extension\(\) is not supported/],
    ["INSERT OR ROLLBACK INTO t VALUES (1)", /ROLLBACK \(as a conflict clause or RAISE action\)/],
    ["CREATE TABLE t(a UNIQUE ON CONFLICT ROLLBACK)", /ROLLBACK/],
    ["CREATE TRIGGER tr BEFORE INSERT ON t BEGIN SELECT RAISE(ROLLBACK, 'no'); END", /ROLLBACK/],
    ["CREATE TABLE c(p REFERENCES t(id) DEFERRABLE INITIALLY DEFERRED)", /deferred foreign keys/],
    ["INSERT INTO t VALUES (total_changes())", /total_changes\(\) depends on each node's connection history/],
    ["INSERT INTO t VALUES (last_insert_rowid())", /last_insert_rowid\(\) in the first statement/],
    ["SELECT 1; SELECT 2", /only one SQL statement per entry/],
    ["  -- nothing\n ; ", /the statement is empty/],
    ["INSERT INTO t VALUES ('open", /unterminated string literal/],
    ["INSERT INTO t VALUES (randomblob(abs(3)))", /randomblob\(N\) needs N as an integer literal/],
    ['INSERT INTO t VALUES (datetime("now"))', /"now" in datetime\(\) is ambiguous/],
  ])("%s", (sql, message) => {
    const error = refusal(sql);
    expect(error).toMatch(/^statements\[0\]: /);
    expect(error).toMatch(message);
  });

  it("accepts what is merely similar to a refused construct", () => {
    expect(prepareOne("INSERT INTO t VALUES ('_cf_KV', 'ROLLBACK', 'BEGIN')").sql).toBe(
      "INSERT INTO t VALUES ('_cf_KV', 'ROLLBACK', 'BEGIN')",
    );
    expect(prepareOne("CREATE TABLE c(p REFERENCES t(id) NOT DEFERRABLE INITIALLY DEFERRED)").sql).toContain(
      "NOT DEFERRABLE",
    );
    expect(prepareOne("PRAGMA table_info(t)").sql).toBe("PRAGMA table_info(t)");
    expect(prepareOne("SELECT CASE WHEN 1 THEN 2 END").sql).toBe("SELECT CASE WHEN 1 THEN 2 END");
  });

  it("allows changes() and last_insert_rowid() after the statement they refer to", () => {
    const prepared = prepareWrite(
      request([
        { sql: "INSERT INTO a(v) VALUES (1)" },
        { sql: "INSERT INTO b(a_id, n) VALUES (last_insert_rowid(), changes())" },
      ]),
      countingContext(),
    );
    expect(prepared.ok).toBe(true);
  });

  it("refuses malformed requests as a whole, naming the failing statement", () => {
    expect(prepareWrite({ id: "", transaction: false, statements: [{ sql: "SELECT 1" }] }, countingContext())).toEqual({
      ok: false,
      error: "the request id must be a string of 1 to 256 characters",
    });
    expect(prepareWrite(request([]), countingContext())).toEqual({ ok: false, error: "the request has no statements" });
    const mixed = prepareWrite(request([{ sql: "INSERT INTO t VALUES (1)" }, { sql: "VACUUM" }]), countingContext());
    expect(mixed).toEqual({ ok: false, error: "statements[1]: VACUUM is not supported" });
  });
});

describe("prepareWrite rewriting", () => {
  it("fixes random() and randomblob() as literals, never inside strings, comments or quoted names", () => {
    const context = countingContext();
    const prepared = prepareWrite(
      request([
        { sql: `INSERT INTO t("random()", b) VALUES (random(), 'random()') -- random()\n` },
        { sql: "SELECT hex(RANDOMBLOB(4)), randomblob(0)" },
      ]),
      context,
    );
    if (!prepared.ok) {
      throw new Error(prepared.error);
    }
    // Bytes 1..8 as a big-endian signed 64-bit integer: 0x0102030405060708.
    expect(prepared.request.statements[0]?.sql).toBe(
      `INSERT INTO t("random()", b) VALUES ((${0x0102030405060708n}+0), 'random()')`,
    );
    expect(prepared.request.statements[1]?.sql).toBe("SELECT hex(x'090a0b0c'), x'0d'");
    expect(context.calls).toEqual([8, 4, 1]);
  });

  it("takes randomblob's length from an integer parameter", () => {
    expect(prepareOne("SELECT randomblob(?)", [2]).sql).toBe("SELECT x'0102'");
  });

  it("replaces 'now' in date and time functions by the leader's time, keeping the rest", () => {
    expect(
      prepareOne("SELECT datetime('now'), DATE('NOW', 'start of month'), strftime('%s', 'now'), julianday('now')").sql,
    ).toBe(
      "SELECT datetime('2026-11-26 08:00:00.123'), DATE('2026-11-26 08:00:00.123', 'start of month'), " +
        "strftime('%s', '2026-11-26 08:00:00.123'), julianday('2026-11-26 08:00:00.123')",
    );
    expect(prepareOne("SELECT unixepoch(), time(), strftime('%Y'), timediff('now', '2026-01-01')").sql).toBe(
      "SELECT unixepoch('2026-11-26 08:00:00.123'), time('2026-11-26 08:00:00.123'), strftime('%Y', '2026-11-26 08:00:00.123'), " +
        "timediff('2026-11-26 08:00:00.123', '2026-01-01')",
    );
    // 'now' as a parameter value is replaced too; elsewhere it is just a string.
    expect(prepareOne("SELECT datetime(?), ?", ["now", "now"])).toEqual({
      sql: "SELECT datetime('2026-11-26 08:00:00.123'), ?",
      params: ["now"],
    });
    expect(prepareOne("SELECT strftime('now', '2020-01-01'), 'now'").sql).toBe(
      "SELECT strftime('now', '2020-01-01'), 'now'",
    );
  });

  it("turns CURRENT_TIMESTAMP, CURRENT_DATE and CURRENT_TIME into literals outside strings", () => {
    expect(
      prepareOne(
        "INSERT INTO t VALUES (CURRENT_TIMESTAMP, current_date, Current_Time, 'CURRENT_TIMESTAMP', \"CURRENT_DATE\")",
      ).sql,
    ).toBe(
      "INSERT INTO t VALUES ('2026-11-26 08:00:00', '2026-11-26', '08:00:00', 'CURRENT_TIMESTAMP', \"CURRENT_DATE\")",
    );
  });

  it("refuses non-deterministic functions in stored definitions but rewrites CREATE TABLE ... AS SELECT", () => {
    expect(refusal("CREATE TABLE t(a TEXT DEFAULT CURRENT_TIMESTAMP)")).toMatch(
      /CURRENT_TIMESTAMP in a stored definition/,
    );
    expect(refusal("CREATE TABLE t(a INTEGER DEFAULT (random()))")).toMatch(/random\(\) in a stored definition/);
    expect(refusal("CREATE VIEW v AS SELECT datetime('now')")).toMatch(/datetime\('now'\) in a stored definition/);
    expect(refusal("CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET at = unixepoch(); END")).toMatch(
      /unixepoch\(\) in a stored definition/,
    );
    expect(refusal("ALTER TABLE t ADD COLUMN r BLOB DEFAULT (randomblob(4))")).toMatch(
      /randomblob\(\) in a stored definition/,
    );
    expect(prepareOne("CREATE TABLE snap AS SELECT CURRENT_DATE AS d").sql).toBe(
      "CREATE TABLE snap AS SELECT '2026-11-26' AS d",
    );
  });

  it("does not mistake object names with column lists for function calls", () => {
    expect(prepareOne("CREATE TABLE random(date TEXT, time TEXT)").sql).toBe(
      "CREATE TABLE random(date TEXT, time TEXT)",
    );
    expect(prepareOne("INSERT INTO date(x) VALUES (?)", [1]).sql).toBe("INSERT INTO date(x) VALUES ((1+0))");
    expect(prepareOne("CREATE INDEX i ON datetime(x)").sql).toBe("CREATE INDEX i ON datetime(x)");
    expect(prepareOne("WITH random(x) AS (SELECT 1) SELECT x FROM random").sql).toBe(
      "WITH random(x) AS (SELECT 1) SELECT x FROM random",
    );
  });
});

describe("parameters", () => {
  it("turns named parameters into positional ones, repeating reused names", () => {
    expect(prepareOne("SELECT :a, @b, $c, :a", { a: "x", b: null, c: new Uint8Array([1]) })).toEqual({
      sql: 'SELECT ? AS ":a", ? AS "@b", ? AS "$c", ? AS ":a"',
      params: ["x", null, new Uint8Array([1]), "x"],
    });
    expect(prepareOne("SELECT :a", { ":a": "prefixed" })).toEqual({ sql: 'SELECT ? AS ":a"', params: ["prefixed"] });
    expect(prepareOne("INSERT INTO t VALUES (:a)", { a: "x" })).toEqual({
      sql: "INSERT INTO t VALUES (?)",
      params: ["x"],
    });
  });

  it("numbers parameters as SQLite does (?NNN and following ?)", () => {
    // A numbered or named parameter keeps the column name SQLite gives it (its text), as in rqlite.
    expect(prepareOne("SELECT ?2, ?, ?1", ["one", "two", "three"])).toEqual({
      sql: 'SELECT ? AS "?2", ?, ? AS "?1"',
      params: ["two", "three", "one"],
    });
  });

  it("names a result column holding a named parameter by its text, as SQLite and rqlite do", () => {
    expect(prepareOne("SELECT $first, $last", { first: "Ada", last: "Lovelace" })).toEqual({
      sql: 'SELECT ? AS "$first", ? AS "$last"',
      params: ["Ada", "Lovelace"],
    });
    expect(prepareOne("SELECT upper(:name) , :a AS given, @b", { name: "ab", a: "x", b: null })).toEqual({
      sql: 'SELECT upper(?) AS "upper(:name)" , ? AS given, ? AS "@b"',
      params: ["ab", "x", null],
    });
  });

  it("writes whole numbers as integer literals (the platform binds numbers as REAL) and binds the rest", () => {
    expect(prepareOne("INSERT INTO t VALUES (?, ?, ?, ?)", [42, -7, 2.5, "s"])).toEqual({
      sql: "INSERT INTO t VALUES ((42+0), (-7+0), ?, ?)",
      params: [2.5, "s"],
    });
    // A subtraction followed by a negative value must not become a comment.
    expect(prepareOne("SELECT 1-?", [-1]).sql).toBe('SELECT 1-(-1+0) AS "1-?"');
  });

  it("refuses missing, extra and mismatched parameters", () => {
    expect(refusal("SELECT ?, ?", [1])).toMatch(/has 2 parameter\(s\) but 1 value\(s\) were given/);
    expect(refusal("SELECT ?", [1, 2])).toMatch(/has 1 parameter\(s\) but 2 value\(s\)/);
    expect(refusal("SELECT ?")).toMatch(/has 1 parameter\(s\) but no values were given/);
    expect(refusal("SELECT :a", { b: 1 })).toMatch(/no value was given for parameter :a/);
    expect(refusal("SELECT :a", { a: 1, typo: 2 })).toMatch(/params "typo" match no parameter/);
    expect(refusal("SELECT ?", { a: 1 })).toMatch(/parameter \?1 is positional, but params were given by name/);
    expect(refusal("SELECT ?", [Number.NaN])).toMatch(/NaN/);
    expect(refusal("SELECT ?", [{ not: "a value" } as unknown as string])).toMatch(/is not a SQL value/);
  });
});

describe("limits", () => {
  it("refuses more than 100 parameters", () => {
    const sql = `SELECT ${Array.from({ length: 101 }, () => "?").join(", ")}`;
    expect(
      refusal(
        sql,
        Array.from({ length: 101 }, () => "v"),
      ),
    ).toMatch(/101 parameters; at most 100/);
    expect(refusal("SELECT ?101", [])).toMatch(/parameter \?101 is out of range/);
    const hundred = `SELECT ${Array.from({ length: 100 }, () => "?").join(", ")}`;
    expect(
      prepareOne(
        hundred,
        Array.from({ length: 100 }, () => "v"),
      ).params,
    ).toHaveLength(100);
  });

  it("refuses statements over 100 KB, as given or once rewritten", () => {
    expect(refusal(`SELECT '${"x".repeat(100_000)}'`)).toMatch(/the statement is 100009 bytes; at most 100000/);
    expect(refusal(`SELECT '${"é".repeat(50_000)}'`)).toMatch(/100009 bytes/); // counted in UTF-8
    expect(refusal(`SELECT '${"x".repeat(99_900)}', randomblob(100)`)).toMatch(/once made deterministic/);
    expect(refusal("SELECT randomblob(60000)")).toMatch(/would not fit in a 100000-byte statement/);
  });

  it("refuses values over 2 MB", () => {
    expect(refusal("SELECT ?", ["y".repeat(2_000_001)])).toMatch(
      /parameter 1 is 2000001 bytes; a value may be at most 2000000/,
    );
    expect(refusal("SELECT ?", [new Uint8Array(2_000_001)])).toMatch(/2000001 bytes/);
  });
});

describe("prepareRead", () => {
  it("refuses writes with rqlite's message and internal objects with a clear one", () => {
    expect(prepareRead([{ sql: "SELECT 1" }, { sql: "INSERT INTO t VALUES (1)" }])).toEqual({
      ok: false,
      error: READ_ONLY_VIOLATION,
    });
    expect(READ_ONLY_VIOLATION).toBe("attempt to change database via query operation");
    expect(prepareRead([{ sql: "SELECT * FROM _cf_KV" }])).toEqual({
      ok: false,
      error:
        'statements[0]: "_cf_KV" is an internal object: names starting with _cf_, _dha_, __miniflare_ are reserved',
    });
  });

  it("makes parameters positional and leaves non-deterministic functions alone", () => {
    expect(prepareRead([{ sql: "SELECT random(), :x WHERE datetime('now') > ?1", params: { x: 3 } }])).toEqual({
      ok: true,
      statements: [{ sql: "SELECT random(), (3+0) AS \":x\" WHERE datetime('now') > (3+0)" }],
    });
  });
});

describe("request codec", () => {
  it("round-trips blobs, infinities and named parameters losslessly", () => {
    const original: SqlRequest = {
      id: "r-42",
      transaction: true,
      statements: [
        { sql: "INSERT INTO t VALUES (?, ?, ?, ?)", params: [new Uint8Array([0, 255, 10]), Infinity, -Infinity, null] },
        { sql: "SELECT :a", params: { a: "é😀" } },
        { sql: "SELECT 1" },
      ],
    };
    const encoded = encodeSqlRequest(original);
    expect(encoded).toContain('{"$blob":"AP8K"}');
    expect(decodeSqlRequest(encoded)).toEqual(original);
    expect(sqlRequestSizeBytes(original)).toBe(new TextEncoder().encode(encoded).length);
  });

  it.each([
    ["not json", /not JSON/],
    ["[]", /not an object/],
    ['{"id":"a","transaction":false}', /statements must be an array/],
    ['{"id":"","transaction":false,"statements":[]}', /id must be a string of 1 to 256/],
    ['{"id":"a","transaction":"yes","statements":[]}', /transaction must be a boolean/],
    ['{"id":"a","transaction":false,"statements":[{"sql":1}]}', /statements\[0\]\.sql is not a string/],
    [
      '{"id":"a","transaction":false,"statements":[{"sql":"x","params":[{"$blob":"!!"}]}]}',
      /\$blob is not valid base64/,
    ],
    ['{"id":"a","transaction":false,"statements":[{"sql":"x","params":[{"$what":1}]}]}', /unknown value tag/],
    ['{"id":"a","transaction":false,"statements":[{"sql":"x","params":[true]}]}', /not a SQL value/],
    ['{"id":"a","transaction":false,"statements":[],"extra":1}', /unexpected field "extra"/],
  ])("refuses %s", (data, message) => {
    expect(() => decodeSqlRequest(data)).toThrow(SqlCodecError);
    expect(() => decodeSqlRequest(data)).toThrow(message);
  });
});
