// Runs sql-fixture.json against any storage with the platform's shape (ctx.storage in workerd, SqliteStorage in
// Node) and reports every step whose outcome differs from the fixture. Both test/workers/sim-sql-fixture.test.ts
// and test/sim/platform/sqlite-storage.test.ts run it, so the adapter and the platform must agree on every step.
// No platform or Node imports here: the same file runs in both.
import { isStatementResultError } from "../../../src/objects/sqlite/storage-failure";

/** A value in the fixture: JSON, plus tagged forms for what JSON cannot hold. */
export type FixtureValue =
  | null
  | number
  | string
  | boolean
  | { readonly $blob: readonly number[] }
  | { readonly $ab: readonly number[] }
  | { readonly $bigint: string }
  | { readonly $undefined: true }
  | { readonly [key: string]: FixtureValue };

export interface FixtureStep {
  readonly name: string;
  readonly sql?: string;
  readonly params?: readonly FixtureValue[];
  /** How to read the cursor: raw rows (default), toArray() objects, one(), or the column names only. */
  readonly read?: "raw" | "toArray" | "one" | "columns" | "rowsWritten" | "firstThenRowsRead";
  readonly kvPut?: readonly [string, FixtureValue];
  readonly kvGet?: string;
  readonly kvDelete?: string;
  readonly kvList?: {
    readonly prefix?: string;
    readonly start?: string;
    readonly end?: string;
    readonly reverse?: boolean;
    readonly limit?: number;
  };
  /** Steps run inside transactionSync, which then throws: nothing they wrote may remain. */
  readonly rolledBack?: readonly FixtureStep[];
  /** Steps run inside transactionSync. */
  readonly inTransaction?: readonly FixtureStep[];
  readonly expect?: FixtureValue;
  /** The error message must start with this. */
  readonly expectError?: string;
}

export interface Fixture {
  readonly steps: readonly FixtureStep[];
}

export interface StorageUnderTest {
  readonly sql: { exec(query: string, ...bindings: unknown[]): unknown };
  readonly kv: {
    get(key: string): unknown;
    put(key: string, value: unknown): void;
    delete(key: string): boolean;
    list(options?: object): Iterable<[string, unknown]>;
  };
  transactionSync<T>(fn: () => T): T;
}

interface CursorLike {
  readonly columnNames: string[];
  readonly rowsRead: number;
  readonly rowsWritten: number;
  raw(): Iterable<unknown[]>;
  toArray(): Record<string, unknown>[];
  one(): Record<string, unknown>;
  next(): IteratorResult<Record<string, unknown>>;
}

function decode(value: FixtureValue): unknown {
  if (value === null || typeof value !== "object") {
    return value;
  }
  if ("$blob" in value && Array.isArray(value.$blob)) {
    return new Uint8Array(value.$blob as number[]);
  }
  if ("$ab" in value && Array.isArray(value.$ab)) {
    return new Uint8Array(value.$ab as number[]).buffer;
  }
  if ("$bigint" in value && typeof value.$bigint === "string") {
    return BigInt(value.$bigint);
  }
  if ("$undefined" in value) {
    return undefined;
  }
  return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, decode(inner as FixtureValue)]));
}

/** What a result looks like in the fixture: ArrayBuffers as {$blob}, bigints as {$bigint}, undefined as {$undefined}. */
export function encode(value: unknown): unknown {
  if (value === undefined) {
    return { $undefined: true };
  }
  if (typeof value === "bigint") {
    return { $bigint: String(value) };
  }
  if (value instanceof ArrayBuffer) {
    return { $blob: [...new Uint8Array(value)] };
  }
  if (ArrayBuffer.isView(value)) {
    return { $typedArray: [...new Uint8Array(value.buffer, value.byteOffset, value.byteLength)] };
  }
  if (Array.isArray(value)) {
    return value.map(encode);
  }
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, encode(inner)]));
  }
  return value;
}

class RollbackOnPurpose extends Error {}

function runOne(storage: StorageUnderTest, step: FixtureStep): unknown {
  if (step.sql !== undefined) {
    const cursor = storage.sql.exec(step.sql, ...(step.params ?? []).map(decode)) as CursorLike;
    switch (step.read ?? "raw") {
      case "raw":
        return [...cursor.raw()];
      case "toArray":
        return cursor.toArray();
      case "one":
        return cursor.one();
      case "columns":
        return cursor.columnNames;
      case "rowsWritten":
        return [...cursor.raw()].length === 0 ? cursor.rowsWritten : "rows";
      case "firstThenRowsRead": {
        const before = cursor.rowsRead;
        const first = cursor.next();
        return [before, first.value, cursor.rowsRead];
      }
    }
  }
  if (step.kvPut !== undefined) {
    storage.kv.put(step.kvPut[0], decode(step.kvPut[1]));
    return null;
  }
  if (step.kvGet !== undefined) {
    return storage.kv.get(step.kvGet);
  }
  if (step.kvDelete !== undefined) {
    return storage.kv.delete(step.kvDelete);
  }
  if (step.kvList !== undefined) {
    return [...storage.kv.list(step.kvList)].map(([key, value]) => [key, value]);
  }
  if (step.inTransaction !== undefined) {
    const inner = step.inTransaction;
    return storage.transactionSync(() => inner.map((s) => checkStep(storage, s)).filter((problem) => problem !== null));
  }
  if (step.rolledBack !== undefined) {
    const inner = step.rolledBack;
    let problems: unknown[] = [];
    try {
      storage.transactionSync(() => {
        problems = inner.map((s) => checkStep(storage, s)).filter((problem) => problem !== null);
        throw new RollbackOnPurpose();
      });
    } catch (error) {
      if (!(error instanceof RollbackOnPurpose)) {
        throw error;
      }
    }
    return problems;
  }
  throw new Error(`fixture step ${step.name} does nothing`);
}

function same(left: unknown, right: unknown): boolean {
  return JSON.stringify(left) === JSON.stringify(right);
}

/** Null when the step behaved as the fixture says; otherwise what happened instead. */
function checkStep(storage: StorageUnderTest, step: FixtureStep): string | null {
  let outcome: unknown;
  try {
    outcome = runOne(storage, step);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (step.expectError !== undefined && message.startsWith(step.expectError)) {
      // The state machine records a statement's error as its result only when the statement decided it: every
      // error a statement of the fixture raises must be classified so (a cursor's one() is not a statement's).
      if (step.sql !== undefined && step.read !== "one" && !isStatementResultError(error)) {
        return `${step.name}: threw ${JSON.stringify(message)}, which the state machine would take for a storage failure`;
      }
      return null;
    }
    return `${step.name}: threw ${JSON.stringify(message)}, expected ${step.expectError === undefined ? JSON.stringify(step.expect) : `an error starting ${JSON.stringify(step.expectError)}`}`;
  }
  if (step.expectError !== undefined) {
    return `${step.name}: returned ${JSON.stringify(encode(outcome))}, expected an error starting ${JSON.stringify(step.expectError)}`;
  }
  if (step.rolledBack !== undefined || step.inTransaction !== undefined) {
    const problems = outcome as string[];
    return problems.length === 0 ? null : problems.join("; ");
  }
  const actual = encode(outcome);
  const expected = step.expect === undefined ? null : step.expect;
  return same(actual, expected)
    ? null
    : `${step.name}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`;
}

/** Every step that disagrees with the fixture (empty when the storage behaves as the fixture says). */
export function runFixture(
  storage: StorageUnderTest,
  fixture: Fixture,
): { readonly problems: string[]; readonly steps: number } {
  const problems: string[] = [];
  for (const step of fixture.steps) {
    const problem = checkStep(storage, step);
    if (problem !== null) {
      problems.push(problem);
    }
  }
  return { problems, steps: fixture.steps.length };
}
