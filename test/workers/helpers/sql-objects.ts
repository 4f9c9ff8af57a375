// Durable Objects used as bare SQL storage by the state machine's tests, and log entries made the way a leader makes
// them.
import { env, runInDurableObject } from "cloudflare:test";
import type { SqlRequest, Statement } from "../../../src/shared/sql";
import { encodeSqlRequest, prepareWrite } from "../../../src/objects/sql/index";

let objectCounter = 0;

/** A fresh object, named after the test file's `prefix` and a `label`. */
export function newSqlObject(prefix: string, label: string): DurableObjectStub {
  objectCounter += 1;
  return env.CLUSTER_NODE.getByName(`${prefix}-${label}-${objectCounter}-${crypto.randomUUID()}`);
}

export function inObject<T>(stub: DurableObjectStub, fn: (storage: DurableObjectStorage) => T): Promise<T> {
  return runInDurableObject(stub, (_instance, state) => fn(state.storage));
}

/** An encoded log entry, prepared as a leader prepares it (the clock at `nowMs`, random bytes all 3). */
export function preparedEntry(
  statements: Statement[],
  options: { readonly id?: string; readonly transaction?: boolean; readonly nowMs: number },
): string {
  const request: SqlRequest = {
    id: options.id ?? crypto.randomUUID(),
    transaction: options.transaction ?? false,
    statements,
  };
  const prepared = prepareWrite(request, { nowMs: options.nowMs, randomBytes: (n) => new Uint8Array(n).fill(3) });
  if (!prepared.ok) {
    throw new Error(`refused: ${prepared.error}`);
  }
  return encodeSqlRequest(prepared.request);
}
