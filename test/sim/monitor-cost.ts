// CPU per consistency checkpoint (README "Consistency monitor"): builds a table of 10k, 100k and 1M rows on the
// simulator's node:sqlite adapter and times computeCheckpoint (schema hash plus one 1,000-row slice) at the start
// and in the middle of the table, then an image checkpoint (computeWholeCheckpoint: every row) and the snapshot
// image the leader builds with it. Prints one line per size. Run: npm run monitor:cost -- [rows...]
import { computeCheckpoint, computeWholeCheckpoint } from "../../src/objects/monitor/digest";
import { SqliteStorage } from "./platform/sqlite-storage";

const SIZES = process.argv
  .slice(2)
  .map(Number)
  .filter((n) => n > 0);
const REPEATS = 20;

function build(rows: number): SqliteStorage {
  const storage = new SqliteStorage();
  storage.sql.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, payload BLOB)");
  storage.sql.exec("CREATE INDEX t_name ON t (name)");
  storage.transactionSync(() => {
    for (let id = 1; id <= rows; id++) {
      storage.sql.exec("INSERT INTO t VALUES (?, ?, ?, randomblob(32))", id, `name-${id}`, id / 7);
    }
  });
  return storage;
}

function timeSlice(storage: SqliteStorage, after: string | null): { ms: number; rows: number } {
  const sql = storage.sql as unknown as SqlStorage;
  let rows = 0;
  const started = performance.now();
  for (let i = 0; i < REPEATS; i++) {
    rows = computeCheckpoint(sql, {
      table: "t",
      after: after === null ? null : [["i", after]],
      maxRows: 1000,
      maxBytes: 1024 * 1024,
    }).rows;
  }
  return { ms: (performance.now() - started) / REPEATS, rows };
}

/** An image checkpoint's digest (every row) and, for comparison, a snapshot image of the same state. */
function timeWhole(storage: SqliteStorage): { digestMs: number; imageMs: number } {
  const sql = storage.sql as unknown as SqlStorage;
  const repeats = 3;
  const started = performance.now();
  for (let i = 0; i < repeats; i++) {
    computeWholeCheckpoint(sql, { table: null, after: null });
  }
  const digestMs = (performance.now() - started) / repeats;
  const imageStarted = performance.now();
  const chunks = [...sql.exec("SELECT * FROM t").raw()].length;
  return { digestMs, imageMs: chunks >= 0 ? performance.now() - imageStarted : 0 };
}

for (const size of SIZES.length > 0 ? SIZES : [10_000, 100_000, 1_000_000]) {
  const builtAt = performance.now();
  const storage = build(size);
  const buildMs = performance.now() - builtAt;
  const first = timeSlice(storage, null);
  const middle = timeSlice(storage, String(Math.floor(size / 2)));
  console.log(
    `${size} rows (built in ${Math.round(buildMs)} ms): checkpoint from the first row ${first.ms.toFixed(2)} ms ` +
      `(${first.rows} rows), from the middle ${middle.ms.toFixed(2)} ms (${middle.rows} rows); a sweep takes ` +
      `${Math.ceil(size / 1000)} checkpoints`,
  );
  const whole = timeWhole(storage);
  console.log(
    `${size} rows: image checkpoint (whole-database digest) ${whole.digestMs.toFixed(1)} ms; reading every row ` +
      `once, for comparison, ${whole.imageMs.toFixed(1)} ms`,
  );
}
