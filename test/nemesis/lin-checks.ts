// What each read level promises, checked on a recorded run: writes with linearizable and strong reads form a
// linearizable history; reads at weak, none and auto return only values that were written; a read carrying a
// write's raft index sees that write (or a later one); a backup holds every write acknowledged before it started.
import {
  checkLinearizability,
  registerModel,
  type CheckResult,
  type Operation,
  type RegisterInput,
  type RegisterOutput,
} from "../lincheck/index";
import type { HistoryOperation, ReadMode } from "./history-file";

export interface RunChecks {
  readonly linearizability: CheckResult;
  /** Operations checked, by what was checked: writes, each read mode, backups. */
  readonly checked: Readonly<Record<"writes" | ReadMode | "backups", number>>;
  readonly problems: readonly string[];
  readonly verdict: "linearizable" | "not-linearizable" | "unknown";
  readonly detail?: string;
}

export interface RunCheckOptions {
  /** Read modes whose reads go into the linearizability check (besides linearizable and strong). */
  readonly alsoLinearizable?: readonly ReadMode[];
  readonly maxSteps?: number;
}

type ReadOp = HistoryOperation & { readonly input: { readonly kind: "read" } };

const LINEARIZABLE_MODES: readonly ReadMode[] = ["linearizable", "strong"];

export function checkRun(operations: readonly HistoryOperation[], options: RunCheckOptions = {}): RunChecks {
  const linearizableModes = new Set([...LINEARIZABLE_MODES, ...(options.alsoLinearizable ?? [])]);
  // A write that definitely failed (4xx, 503) took no effect and is left out; one whose outcome is unknown may
  // take effect at any time after its call or never.
  const history = operations
    .filter(
      (op) =>
        (isWrite(op) && (op.unknown || op.output !== null)) || (isRead(op) && linearizableModes.has(op.input.level)),
    )
    .map(toRegisterOperation);
  const linearizability = checkLinearizability(registerModel, history, { maxSteps: options.maxSteps ?? 20_000_000 });
  const writes = new WriteIndex(operations);
  const problems: string[] = [];
  const checked = {
    writes: 0,
    linearizable: 0,
    strong: 0,
    weak: 0,
    none: 0,
    auto: 0,
    "read-your-writes": 0,
    backups: 0,
  };
  for (const op of operations) {
    if (isWrite(op)) {
      checked.writes++;
    } else if (isRead(op)) {
      if (op.output === null) {
        continue;
      }
      checked[op.input.level]++;
      problems.push(...readProblems(op, writes));
    } else if (op.output !== null) {
      checked.backups++;
      problems.push(...backupProblems(op, writes));
    }
  }
  const verdict =
    linearizability.verdict !== "linearizable"
      ? linearizability.verdict
      : problems.length > 0
        ? "not-linearizable"
        : "linearizable";
  const detail = linearizability.detail ?? (problems.length > 0 ? problems.slice(0, 10).join("\n") : undefined);
  return { linearizability, checked, problems, verdict, ...(detail === undefined ? {} : { detail }) };
}

function isRead(op: HistoryOperation): op is ReadOp {
  return op.input.kind === "read";
}

function isWrite(op: HistoryOperation): boolean {
  return op.input.kind === "write" || op.input.kind === "cas";
}

function toRegisterOperation(op: HistoryOperation): Operation<RegisterInput, RegisterOutput> {
  const input = op.input;
  const registerInput: RegisterInput =
    input.kind === "read"
      ? { kind: "read", key: input.key }
      : input.kind === "write"
        ? { kind: "write", key: input.key, value: input.value }
        : input.kind === "cas"
          ? { kind: "cas", key: input.key, from: input.from, to: input.to }
          : unexpected(op);
  if (op.unknown || op.output === null || op.return === null) {
    return {
      clientId: op.client,
      call: op.call,
      ret: Number.POSITIVE_INFINITY,
      input: registerInput,
      output: undefined,
    };
  }
  return {
    clientId: op.client,
    call: op.call,
    ret: op.return,
    input: registerInput,
    output: op.output as RegisterOutput,
  };
}

function unexpected(op: HistoryOperation): never {
  throw new Error(`operation ${op.id} is not a register operation: ${JSON.stringify(op.input)}`);
}

/** Every value some operation may have written, and by which operation (values are unique per run). */
class WriteIndex {
  private readonly byValue = new Map<string, HistoryOperation>();
  private readonly byKey = new Map<string, HistoryOperation[]>();
  private readonly ids = new Map<number, HistoryOperation>();

  constructor(operations: readonly HistoryOperation[]) {
    for (const op of operations) {
      this.ids.set(op.id, op);
      const written = writtenValue(op);
      if (written === undefined) {
        continue;
      }
      this.byValue.set(written.value, op);
      if (acknowledged(op)) {
        this.byKey.set(written.key, [...(this.byKey.get(written.key) ?? []), op]);
      }
    }
  }

  byId(id: number): HistoryOperation | undefined {
    return this.ids.get(id);
  }

  /** Keys with at least one acknowledged write. */
  keys(): string[] {
    return [...this.byKey.keys()];
  }

  writerOf(value: string): HistoryOperation | undefined {
    return this.byValue.get(value);
  }

  /** Writes of `key` acknowledged before `time`. */
  acknowledgedBefore(key: string, time: number): HistoryOperation[] {
    return (this.byKey.get(key) ?? []).filter((op) => op.return !== null && op.return < time);
  }
}

/** The key and value an operation may have written: a write, or a cas that succeeded or whose outcome is unknown. */
function writtenValue(op: HistoryOperation): { key: string; value: string } | undefined {
  const input = op.input;
  if (input.kind === "write") {
    return { key: input.key, value: input.value };
  }
  if (input.kind === "cas") {
    const failed = !op.unknown && op.output !== null && "ok" in op.output && op.output.ok === false;
    return failed ? undefined : { key: input.key, value: input.to };
  }
  return undefined;
}

function acknowledged(op: HistoryOperation): boolean {
  return (
    !op.unknown &&
    op.return !== null &&
    op.output !== null &&
    (op.input.kind === "write" || ("ok" in op.output && op.output.ok === true))
  );
}

function describe(op: HistoryOperation): string {
  return `#${op.id} client ${op.client} [${op.call.toFixed(1)}, ${op.return === null ? "?" : op.return.toFixed(1)}] ${JSON.stringify(op.input)} -> ${JSON.stringify(op.output)}${op.node === undefined ? "" : ` from ${op.node}`}`;
}

/** Every read: only values that were written, before the read returned; read-your-writes: that write or a later one. */
function readProblems(op: ReadOp, writes: WriteIndex): string[] {
  const value = op.output !== null && "value" in op.output ? op.output.value : null;
  if (value !== null) {
    const writer = writes.writerOf(value);
    if (writer === undefined || writer.call > (op.return ?? Number.POSITIVE_INFINITY)) {
      return [`${describe(op)}: read a value no write had sent`];
    }
  }
  if (op.input.level !== "read-your-writes" || op.input.afterWrite === undefined) {
    return [];
  }
  const own = op.input.afterWrite;
  const ownWrite = writes.byId(own);
  if (value === null) {
    return [`${describe(op)}: a read carrying the raft index of write #${own} saw no value`];
  }
  const writer = writes.writerOf(value);
  if (writer === undefined || writer.id === own || ownWrite === undefined) {
    return [];
  }
  if (acknowledged(writer) && writer.return !== null && writer.return < ownWrite.call) {
    return [
      `${describe(op)}: a read carrying the raft index of write #${own} saw ${describe(writer)}, acknowledged before #${own} was sent`,
    ];
  }
  return [];
}

/** A backup holds, for every key, a value no older than any write acknowledged before the backup was sent. */
function backupProblems(op: HistoryOperation, writes: WriteIndex): string[] {
  const output = op.output as { values: Readonly<Record<string, string>> };
  const problems: string[] = [];
  const keys = new Set(Object.keys(output.values));
  for (const key of keysWithAcknowledgedWrites(writes, op.call)) {
    keys.add(key);
  }
  for (const key of keys) {
    const value = output.values[key] ?? null;
    const acked = writes.acknowledgedBefore(key, op.call);
    if (value === null) {
      if (acked.length > 0) {
        problems.push(
          `${describe(op)}: holds no ${key}, although ${describe(acked[0] as HistoryOperation)} was acknowledged before the backup`,
        );
      }
      continue;
    }
    const writer = writes.writerOf(value);
    if (writer === undefined || writer.call > (op.return ?? Number.POSITIVE_INFINITY)) {
      problems.push(`${describe(op)}: holds ${key} = ${value}, which no write had sent`);
      continue;
    }
    const newer = acked.find((other) => other.id !== writer.id && writer.return !== null && writer.return < other.call);
    if (newer !== undefined) {
      problems.push(
        `${describe(op)}: holds ${key} = ${value} from ${describe(writer)}, missing ${describe(newer)} acknowledged before the backup`,
      );
    }
  }
  return problems;
}

function keysWithAcknowledgedWrites(writes: WriteIndex, before: number): string[] {
  return writes.keys().filter((key) => writes.acknowledgedBefore(key, before).length > 0);
}
