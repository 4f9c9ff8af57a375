// The one Ready loop of the codebase: it takes every pending Ready from the core and hands its parts to the driver,
// strictly in the order the Ready contract numbers (types.ts, above `interface Ready`), then advances. The driver
// only says what each step means for it: NodeRuntime (src/objects) persists to the node's storage, sends through
// its peer links and applies to the SQL state machine; the core's unit tests keep an in-memory store and a message
// queue. Nothing here may depend on either, so the order the tests prove is the order the runtime follows.
import type { LogEntry, Message, RaftEvent, RaftNodeApi, Ready, SnapshotMeta } from "./types.js";

/** What a driver does at each step of a Ready. Steps with nothing to do are still called, with empty parts. */
export interface ReadyPorts {
  /** Before step 1, optional: the whole Ready as the core handed it out (the core's tests record them). */
  received?(ready: Ready): void;
  /** Step 1 (only when the Ready carries one): the received image replaces the state machine; the log is discarded. */
  installSnapshot(snapshot: SnapshotMeta): void;
  /**
   * Step 2: delete entries from `truncateFrom` (if set), append `entries`, write `hardState` (if set), atomically. The
   * whole Ready, so that a driver may judge what else it carries: a leader's new entries may wait for the next write
   * when nothing acts on their commit before that write (types.ts, `interface Ready`, step 2).
   */
  persist(ready: Ready): void;
  /** Step 3: only now, since messages may depend on what step 2 persisted. */
  send(messages: readonly Message[]): void;
  /** Step 4: in order, each entry atomically with the applied index it advances (a batch may share one commit). */
  apply(entries: readonly LogEntry[]): void;
  /** Step 5 (only when set): record the snapshot at `meta.index` (the applied index now), drop the log up to it. */
  compact(meta: SnapshotMeta): void;
  /** Step 6: serve `readStates` once applied reaches their index; fail `failedReads`. */
  settleReads(ready: Pick<Ready, "readStates" | "failedReads">): void;
  /** What happened in this Ready (role changes, membership, ...), once its work is done and before it is advanced. */
  observeEvents(events: readonly RaftEvent[]): void;
}

/** What the loop needs of the core. */
export type ReadySource = Pick<RaftNodeApi, "hasReady" | "ready" | "advance">;

/** Each round either makes progress or empties the Ready: this many rounds in one loop means something is wrong. */
export const MAX_READIES_PER_LOOP = 1000;

/**
 * Handles every pending Ready (step 7 is the advance), at most MAX_READIES_PER_LOOP of them; returns how many. What a
 * port does may step the core again: that goes into the next Ready, handled in a later round. A port that throws
 * leaves its Ready out (never advanced): the core hands out no other, and the driver must reload from storage.
 */
export function handleReadies(core: ReadySource, ports: ReadyPorts): number {
  let handled = 0;
  while (handled < MAX_READIES_PER_LOOP && core.hasReady()) {
    const ready = core.ready();
    ports.received?.(ready);
    if (ready.snapshot !== null) {
      ports.installSnapshot(ready.snapshot);
    }
    ports.persist(ready);
    ports.send(ready.messages);
    ports.apply(ready.committedEntries);
    if (ready.compact !== null) {
      ports.compact(ready.compact);
    }
    ports.settleReads(ready);
    ports.observeEvents(ready.events);
    core.advance(ready);
    handled++;
  }
  return handled;
}
