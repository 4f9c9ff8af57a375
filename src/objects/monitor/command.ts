// The monitor's log entries. They travel as "normal" entries like SQL requests, told apart by their first bytes (a
// request's encoding starts with {"id":), so the pure core carries them unchanged. Only the leader's monitor makes
// them: a client's request is always re-encoded by prepareWrite and can never look like one.
import type { SliceKey } from "./digest";

/** Every monitor entry's data starts with this. */
const PREFIX = '{"dha":"';

/** Digest, at this entry's index, the schema and one slice of rows: `table` from after `after`, within the bounds. */
export interface CheckpointCommand {
  readonly dha: "checkpoint";
  /** The table whose rows are digested; null: the first table of the sweep order. */
  readonly table: string | null;
  /** Rows after this key (exclusive); null: from the table's first row. */
  readonly after: SliceKey | null;
  readonly maxRows: number;
  readonly maxBytes: number;
  /**
   * True: an image checkpoint. It digests the schema and every row of every table (not one slice), and the leader
   * builds its snapshot image at exactly this index: the image goes out only once a majority computed the same
   * digests (monitor.ts, "Verified images"). `table` and `after` are null then.
   */
  readonly whole?: true;
}

/** A majority of voters computed this digest at checkpoint `index`: a node whose own differs has diverged. */
export interface VerdictCommand {
  readonly dha: "verdict";
  readonly index: number;
  readonly schemaDigest: string;
  readonly rowsDigest: string;
}

export type MonitorCommand = CheckpointCommand | VerdictCommand;

export function isMonitorCommand(data: string): boolean {
  return data.startsWith(PREFIX);
}

export function encodeMonitorCommand(command: MonitorCommand): string {
  // Key order is fixed by the literal: PREFIX must come first.
  return command.dha === "checkpoint"
    ? JSON.stringify({
        dha: "checkpoint",
        table: command.table,
        after: command.after,
        maxRows: command.maxRows,
        maxBytes: command.maxBytes,
        ...(command.whole === true ? { whole: true } : {}),
      })
    : JSON.stringify({
        dha: "verdict",
        index: command.index,
        schemaDigest: command.schemaDigest,
        rowsDigest: command.rowsDigest,
      });
}

function fail(message: string): never {
  throw new Error(`invalid monitor entry: ${message}`);
}

function isKeyPart(part: unknown): boolean {
  if (!Array.isArray(part)) {
    return false;
  }
  const [tag, value] = part as unknown[];
  if (part.length === 1) {
    return tag === "n";
  }
  if (part.length !== 2) {
    return false;
  }
  switch (tag) {
    case "i":
      return typeof value === "string" && /^-?[0-9]{1,20}$/.test(value);
    case "r":
      return typeof value === "number" && Number.isFinite(value);
    case "t":
      return typeof value === "string";
    case "b":
      return typeof value === "string" && /^[0-9a-f]*$/.test(value);
    default:
      return false;
  }
}

function isSliceKey(value: unknown): value is SliceKey {
  return Array.isArray(value) && value.length >= 1 && value.length <= 64 && value.every(isKeyPart);
}

function positive(value: unknown, name: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    fail(`${name} must be a positive integer`);
  }
  return value;
}

/** Decodes and checks an entry made by encodeMonitorCommand; throws (the node stops rather than diverge) on garbage. */
export function decodeMonitorCommand(data: string): MonitorCommand {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch (error) {
    fail(`not JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null) {
    fail("not an object");
  }
  const fields = parsed as Record<string, unknown>;
  if (fields["dha"] === "checkpoint") {
    const table = fields["table"];
    const after = fields["after"];
    if (table !== null && typeof table !== "string") {
      fail("table must be a string or null");
    }
    if (after !== null && !isSliceKey(after)) {
      fail("after must be a slice key or null");
    }
    const whole = fields["whole"];
    if (whole !== undefined && whole !== true) {
      fail("whole must be true when present");
    }
    if (whole === true && (table !== null || after !== null)) {
      fail("an image checkpoint digests every table: table and after must be null");
    }
    return {
      dha: "checkpoint",
      table,
      after,
      maxRows: positive(fields["maxRows"], "maxRows"),
      maxBytes: positive(fields["maxBytes"], "maxBytes"),
      ...(whole === true ? { whole } : {}),
    };
  }
  if (fields["dha"] === "verdict") {
    const schemaDigest = fields["schemaDigest"];
    const rowsDigest = fields["rowsDigest"];
    if (typeof schemaDigest !== "string" || typeof rowsDigest !== "string") {
      fail("a verdict needs schemaDigest and rowsDigest strings");
    }
    return { dha: "verdict", index: positive(fields["index"], "index"), schemaDigest, rowsDigest };
  }
  fail(`unknown kind ${JSON.stringify(fields["dha"])}`);
}
