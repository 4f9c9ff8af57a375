// Ids for writes that carry no Idempotency-Key. Every node remembers each write's id for deduplication in its
// storage (src/objects/sql/dedup-window.ts), keyed by the id: random ids (UUIDv4) put each new record, and each one
// forgotten, on another B-tree page, so one commit of a batch of writes wrote a page per write to SQLite's WAL.
// Time-ordered ids (UUIDv7, RFC 9562) append at the end of the window and forget at its start.
import { v7 as uuidv7 } from "uuid";

/**
 * A new, unique, time-ordered request id (a UUIDv7, in the usual text form). Its 74 bits after the millisecond are
 * all random: the library's default counts up within a millisecond, which would show one tenant how many keyless
 * writes others sent through the same isolate between two of its own.
 */
export function newRequestId(): string {
  return uuidv7({ random: crypto.getRandomValues(new Uint8Array(16)) });
}
