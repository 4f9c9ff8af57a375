// The recorded history of a linearizability run, as a JSON file an independent checker can read
// (`npm run test:lin -- --history FILE`; the format is described in README, "Testing").
import { readFileSync, writeFileSync } from "node:fs";
import type { RegisterValue } from "../lincheck/index";

export const HISTORY_FORMAT = "durable-ha-history/1";

/** How a read asked for consistency: a level of the data API, or read-your-writes (a raft index, no level). */
export type ReadMode = "none" | "weak" | "strong" | "linearizable" | "auto" | "read-your-writes";

export const READ_MODES: readonly ReadMode[] = ["linearizable", "strong", "weak", "none", "auto", "read-your-writes"];

export type HistoryInput =
  | {
      readonly kind: "read";
      readonly key: string;
      readonly level: ReadMode;
      /** read-your-writes: the raft index sent as X-DHA-Raft-Index, and the id of the client's write it came from. */
      readonly minRaftIndex?: number;
      readonly afterWrite?: number;
    }
  | { readonly kind: "write"; readonly key: string; readonly value: string }
  | { readonly kind: "cas"; readonly key: string; readonly from: RegisterValue; readonly to: string }
  | { readonly kind: "backup" };

export type HistoryOutput =
  | { readonly value: RegisterValue }
  | { readonly ok: boolean }
  | Record<string, never>
  /** A backup: the value of every key the dump holds. */
  | { readonly values: Readonly<Record<string, string>> };

export interface HistoryOperation {
  readonly id: number;
  readonly client: number;
  /** Milliseconds since the run started, when the request was sent. */
  readonly call: number;
  /** When the answer arrived; null when the outcome is unknown. */
  readonly return: number | null;
  readonly input: HistoryInput;
  /** null when the outcome is unknown (or a read failed: it constrains nothing). */
  readonly output: HistoryOutput | null;
  /** The request may or may not have taken effect (a write that timed out, failed with 5xx, or lost its answer). */
  readonly unknown: boolean;
  /** X-DHA-Node of the answer, when there was one. */
  readonly node?: string;
  /** X-DHA-Raft-Index of the answer: the write's log index, or the applied index a read or backup saw. */
  readonly raftIndex?: number;
  /** HTTP status of the answer (absent when none came). */
  readonly status?: number;
  /** Why the request failed: the answer's error, or the statement's (a 200 whose statement failed). */
  readonly error?: string;
}

export interface HistoryFile {
  readonly format: typeof HISTORY_FORMAT;
  readonly seed: number;
  readonly startedAt: string;
  /** The model the register operations follow. */
  readonly model: "register-per-key";
  readonly operations: readonly HistoryOperation[];
}

export function writeHistoryFile(path: string, history: HistoryFile): void {
  writeFileSync(path, `${JSON.stringify(history, null, 1)}\n`);
}

export function readHistoryFile(path: string): HistoryFile {
  const parsed = JSON.parse(readFileSync(path, "utf8")) as Partial<HistoryFile>;
  if (parsed.format !== HISTORY_FORMAT || !Array.isArray(parsed.operations)) {
    throw new Error(`${path} is not a ${HISTORY_FORMAT} history file`);
  }
  return parsed as HistoryFile;
}
