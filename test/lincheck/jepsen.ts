// Parsers for the shared linearizability vectors (test/data/linearizability, see its README.md):
// Jepsen's etcd logs (one register) and the kv service's EDN-like histories. The line number is the time.
// Anything malformed is an error naming the line, never silently skipped.

import type { KvInput, KvOutput, RegisterInput, RegisterOutput, RegisterValue } from "./models";
import type { Operation } from "./types";

type CompletionType = "ok" | "fail" | "info";

/** A malformed history line, already naming its source and line number. */
export class HistoryParseError extends Error {
  override readonly name = "HistoryParseError";
}

function rethrowAtLine(error: unknown, builder: { error(line: number, message: string): Error }, line: number): never {
  if (error instanceof HistoryParseError) {
    throw error;
  }
  throw builder.error(line, error instanceof Error ? error.message : String(error));
}

interface OpenOperation<I> {
  readonly input: I;
  readonly call: number;
  readonly f: string;
  readonly argument: string;
}

/**
 * Pairs invocations with completions per process. :ok gives an output; :fail means the operation definitely did
 * not take effect (for a cas that is the output ok=false, otherwise the operation is dropped); :info and a call
 * still open at the end are indeterminate.
 */
class HistoryBuilder<I, O> {
  private readonly open = new Map<number, OpenOperation<I>>();
  private readonly done: Operation<I, O>[] = [];

  constructor(private readonly source: string) {}

  invoke(process: number, line: number, f: string, argument: string, input: I): void {
    const already = this.open.get(process);
    if (already) {
      throw this.error(line, `process ${process} invokes while its call on line ${already.call} is still open`);
    }
    this.open.set(process, { input, call: line, f, argument });
  }

  /** Closes the open call of `process`; `output` undefined = indeterminate, null = drop (did not take effect). */
  complete(process: number, line: number, f: string, output: (open: OpenOperation<I>) => O | undefined | null): void {
    const open = this.open.get(process);
    if (!open) {
      throw this.error(line, `process ${process} completes :${f} with no open call`);
    }
    if (open.f !== f) {
      throw this.error(line, `process ${process} completes :${f} but its open call (line ${open.call}) is :${open.f}`);
    }
    this.open.delete(process);
    const result = output(open);
    if (result === null) {
      return;
    }
    const ret = result === undefined ? Number.POSITIVE_INFINITY : line;
    this.done.push({ clientId: process, input: open.input, output: result, call: open.call, ret });
  }

  finish(): Operation<I, O>[] {
    for (const [process, open] of this.open) {
      this.done.push({
        clientId: process,
        input: open.input,
        output: undefined,
        call: open.call,
        ret: Number.POSITIVE_INFINITY,
      });
    }
    this.open.clear();
    return this.done.sort((a, b) => a.call - b.call);
  }

  error(line: number, message: string): HistoryParseError {
    return new HistoryParseError(`${this.source}:${line}: ${message}`);
  }
}

function lines(text: string): string[] {
  return text.split(/\r?\n/);
}

// ---------------------------------------------------------------------------------------------------------------
// jepsen-etcd/etcd_NNN.log

const JEPSEN_LINE = /^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+(.*?)\s*$/;
const INTEGER = /^-?\d+$/;
const CAS_ARGUMENT = /^\[\s*(-?\d+|nil)\s+(-?\d+)\s*\]$/;

function etcdValue(text: string): RegisterValue {
  if (text === "nil") {
    return null;
  }
  if (INTEGER.test(text)) {
    return text;
  }
  throw new Error(`not a register value: ${JSON.stringify(text)}`);
}

function etcdInput(f: string, argument: string, key: string): RegisterInput {
  switch (f) {
    case "read":
      if (argument !== "nil") {
        throw new Error(`a read is invoked with nil, got ${argument}`);
      }
      return { kind: "read", key };
    case "write": {
      const value = etcdValue(argument);
      if (value === null) {
        throw new Error("a write needs a value, got nil");
      }
      return { kind: "write", key, value };
    }
    case "cas": {
      const match = CAS_ARGUMENT.exec(argument);
      if (!match?.[1] || !match[2]) {
        throw new Error(`a cas argument is [from to], got ${argument}`);
      }
      return { kind: "cas", key, from: etcdValue(match[1]), to: match[2] };
    }
    default:
      throw new Error(`unknown operation :${f}`);
  }
}

function etcdOutput(
  type: CompletionType,
  f: string,
  argument: string,
  open: OpenOperation<RegisterInput>,
): RegisterOutput | undefined | null {
  if (type === "info") {
    return undefined;
  }
  if (type === "fail") {
    return f === "cas" ? { ok: false } : null;
  }
  if (f === "read") {
    return { value: etcdValue(argument) };
  }
  // Jepsen echoes the invocation's argument on completion; anything else means a mispaired line.
  if (argument !== open.argument) {
    throw new Error(`:ok :${f} ${argument} does not echo its invocation's ${open.argument}`);
  }
  return f === "cas" ? { ok: true } : {};
}

/** Parses a Jepsen etcd log into operations on one register, `key` (the log has a single anonymous key). */
export function parseJepsenEtcdLog(
  text: string,
  options: { source?: string; key?: string } = {},
): Operation<RegisterInput, RegisterOutput>[] {
  const key = options.key ?? "register";
  const builder = new HistoryBuilder<RegisterInput, RegisterOutput>(options.source ?? "etcd log");
  lines(text).forEach((content, index) => {
    const line = index + 1;
    if (!content.includes("jepsen.util")) {
      return;
    } // noise: other loggers, blank lines
    const match = JEPSEN_LINE.exec(content);
    const [, processText, type, f, argument] = match ?? [];
    if (!processText || !type || !f || argument === undefined) {
      throw builder.error(line, `unrecognised jepsen.util line: ${content}`);
    }
    const process = Number(processText);
    try {
      if (type === "invoke") {
        builder.invoke(process, line, f, argument, etcdInput(f, argument, key));
      } else {
        builder.complete(process, line, f, (open) => etcdOutput(type as CompletionType, f, argument, open));
      }
    } catch (error) {
      rethrowAtLine(error, builder, line);
    }
  });
  return builder.finish();
}

// ---------------------------------------------------------------------------------------------------------------
// kv/cNN-{ok,bad}.txt: one EDN map per line.

export type EdnScalar =
  | { readonly type: "keyword"; readonly name: string }
  | { readonly type: "string"; readonly value: string }
  | { readonly type: "integer"; readonly value: number }
  | { readonly type: "boolean"; readonly value: boolean }
  | { readonly type: "nil" };

const EDN_STRING_ESCAPES: Readonly<Record<string, string>> = { '"': '"', "\\": "\\", n: "\n", t: "\t", r: "\r" };

/** Parses a flat EDN map of keyword keys to scalars, e.g. `{:process 0, :type :ok, :value "x"}`. */
export function parseEdnMap(text: string): Map<string, EdnScalar> {
  let position = 0;
  const fail = (message: string): never => {
    throw new Error(`${message} at column ${position + 1} of ${JSON.stringify(text)}`);
  };
  const skipSpace = (): void => {
    while (position < text.length && /[\s,]/.test(text.charAt(position))) {
      position++;
    }
  };
  const token = (pattern: RegExp): string => {
    pattern.lastIndex = position;
    const match = pattern.exec(text);
    if (!match) {
      return fail("expected a token");
    }
    position += match[0].length;
    return match[0];
  };
  const scalar = (): EdnScalar => {
    const first = text.charAt(position);
    if (first === ":") {
      return { type: "keyword", name: token(/:[^\s,{}[\]"]+/y).slice(1) };
    }
    if (first === '"') {
      position++;
      let value = "";
      for (;;) {
        if (position >= text.length) {
          return fail("unterminated string");
        }
        const char = text.charAt(position++);
        if (char === '"') {
          return { type: "string", value };
        }
        if (char !== "\\") {
          value += char;
          continue;
        }
        const escaped = EDN_STRING_ESCAPES[text.charAt(position++)];
        if (escaped === undefined) {
          return fail("unsupported string escape");
        }
        value += escaped;
      }
    }
    const word = token(/[^\s,{}[\]"]+/y);
    if (word === "nil") {
      return { type: "nil" };
    }
    if (word === "true" || word === "false") {
      return { type: "boolean", value: word === "true" };
    }
    if (INTEGER.test(word)) {
      return { type: "integer", value: Number(word) };
    }
    return fail(`unsupported value ${JSON.stringify(word)}`);
  };

  const map = new Map<string, EdnScalar>();
  skipSpace();
  if (text.charAt(position) !== "{") {
    fail("expected {");
  }
  position++;
  for (;;) {
    skipSpace();
    if (position >= text.length) {
      fail("unterminated map");
    }
    if (text.charAt(position) === "}") {
      break;
    }
    const key = scalar();
    if (key.type !== "keyword") {
      fail("map keys must be keywords");
    }
    skipSpace();
    const name = key.type === "keyword" ? key.name : "";
    if (map.has(name)) {
      fail(`duplicate key :${name}`);
    }
    map.set(name, scalar());
  }
  position++;
  skipSpace();
  if (position !== text.length) {
    fail("trailing characters after the map");
  }
  return map;
}

function field(map: Map<string, EdnScalar>, name: string): EdnScalar {
  const value = map.get(name);
  if (value === undefined) {
    throw new Error(`missing :${name}`);
  }
  return value;
}

function keywordField(map: Map<string, EdnScalar>, name: string): string {
  const value = field(map, name);
  if (value.type !== "keyword") {
    throw new Error(`:${name} must be a keyword`);
  }
  return value.name;
}

function stringField(map: Map<string, EdnScalar>, name: string): string {
  const value = field(map, name);
  if (value.type !== "string") {
    throw new Error(`:${name} must be a string`);
  }
  return value.value;
}

function kvInput(f: string, map: Map<string, EdnScalar>): KvInput {
  const key = stringField(map, "key");
  switch (f) {
    case "get":
      return { kind: "get", key };
    case "put":
    case "append":
      return { kind: f, key, value: stringField(map, "value") };
    default:
      throw new Error(`unknown operation :${f}`);
  }
}

function kvOutput(type: string, f: string, map: Map<string, EdnScalar>): KvOutput | undefined | null {
  switch (type) {
    case "info":
      return undefined;
    case "fail":
      return null;
    case "ok":
      return f === "get" ? { value: stringField(map, "value") } : {};
    default:
      throw new Error(`unknown :type :${type}`);
  }
}

/** Parses a kv history (one EDN map per line; blank lines allowed) into get/put/append operations. */
export function parseKvLog(text: string, options: { source?: string } = {}): Operation<KvInput, KvOutput>[] {
  const source = options.source ?? "kv log";
  const builder = new HistoryBuilder<KvInput, KvOutput>(source);
  lines(text).forEach((content, index) => {
    const line = index + 1;
    if (content.trim() === "") {
      return;
    }
    try {
      const map = parseEdnMap(content);
      const processField = field(map, "process");
      if (processField.type !== "integer") {
        throw new Error(":process must be an integer");
      }
      const type = keywordField(map, "type");
      const f = keywordField(map, "f");
      const key = stringField(map, "key");
      if (type === "invoke") {
        builder.invoke(processField.value, line, f, key, kvInput(f, map));
      } else {
        builder.complete(processField.value, line, f, (open) => {
          if (open.argument !== key) {
            throw new Error(
              `completion for key ${JSON.stringify(key)} but the call was on ${JSON.stringify(open.argument)}`,
            );
          }
          return kvOutput(type, f, map);
        });
      }
    } catch (error) {
      rethrowAtLine(error, builder, line);
    }
  });
  return builder.finish();
}

// ---------------------------------------------------------------------------------------------------------------
// verdicts.tsv: "file<TAB>linearizable" header, then one "name<TAB>true|false" per line.

export function parseVerdicts(text: string, source = "verdicts.tsv"): Map<string, boolean> {
  const verdicts = new Map<string, boolean>();
  const rows = lines(text);
  if (rows[0]?.trim() !== "file\tlinearizable") {
    throw new Error(`${source}:1: expected the header "file<TAB>linearizable"`);
  }
  rows.slice(1).forEach((row, index) => {
    if (row.trim() === "") {
      return;
    }
    const [file, verdict, ...rest] = row.split("\t");
    if (!file || (verdict !== "true" && verdict !== "false") || rest.length > 0) {
      throw new Error(`${source}:${index + 2}: expected "name<TAB>true|false", got ${JSON.stringify(row)}`);
    }
    if (verdicts.has(file)) {
      throw new Error(`${source}:${index + 2}: ${file} listed twice`);
    }
    verdicts.set(file, verdict === "true");
  });
  return verdicts;
}
