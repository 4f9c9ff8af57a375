import type { Model, Operation, StepResult } from "./types";

/** Groups operations by key, keys in order of first appearance so that partition numbers are reproducible. */
export function partitionByKey<I extends { readonly key: string }, O>(
  history: readonly Operation<I, O>[],
): Operation<I, O>[][] {
  const byKey = new Map<string, Operation<I, O>[]>();
  for (const op of history) {
    const group = byKey.get(op.input.key);
    if (group) {
      group.push(op);
    } else {
      byKey.set(op.input.key, [op]);
    }
  }
  return [...byKey.values()];
}

function unreachable(value: never, what: string): never {
  throw new Error(`unknown ${what}: ${JSON.stringify(value)}`);
}

// ---------------------------------------------------------------------------------------------------------------
// A register per key, initially absent (null). The simulator's model.

export type RegisterValue = string | null;

export type RegisterInput =
  | { readonly kind: "read"; readonly key: string }
  | { readonly kind: "write"; readonly key: string; readonly value: string }
  /** Sets `to` if the value is `from` (null: if the key is absent). */
  | { readonly kind: "cas"; readonly key: string; readonly from: RegisterValue; readonly to: string };

/**
 * read -> { value } (null: absent); write -> {}; cas -> { ok } (ok=false: it definitely did not take effect
 * because the value was not `from`). Flat rather than a union so that `{}` is a valid write output.
 */
export interface RegisterOutput {
  readonly value?: RegisterValue;
  readonly ok?: boolean;
}

function registerReadValue(output: RegisterOutput): RegisterValue {
  if (output.value === undefined) {
    throw new Error(`a read's output needs a value (string or null), got ${JSON.stringify(output)}`);
  }
  return output.value;
}

function casSucceeded(output: RegisterOutput): boolean {
  if (typeof output.ok !== "boolean") {
    throw new Error(`a cas output needs ok: boolean, got ${JSON.stringify(output)}`);
  }
  return output.ok;
}

function stepRegister(
  state: RegisterValue,
  input: RegisterInput,
  output: RegisterOutput | undefined,
): StepResult<RegisterValue> {
  switch (input.kind) {
    case "read":
      return { ok: output === undefined || registerReadValue(output) === state, state };
    case "write":
      return { ok: true, state: input.value };
    case "cas": {
      const matches = state === input.from;
      // Indeterminate: if it took effect here it succeeded exactly when the value matched; "failed" and "never
      // happened" leave the same state, and not taking effect at all is the checker's business.
      if (output === undefined) {
        return { ok: true, state: matches ? input.to : state };
      }
      return casSucceeded(output) ? { ok: matches, state: input.to } : { ok: !matches, state };
    }
    default:
      return unreachable(input, "register operation");
  }
}

function quoted(value: RegisterValue): string {
  return value === null ? "null" : JSON.stringify(value);
}

function describeRegisterOperation(input: RegisterInput, output: RegisterOutput | undefined): string {
  switch (input.kind) {
    case "read":
      return `read(${input.key}) -> ${output === undefined ? "?" : quoted(output.value ?? null)}`;
    case "write":
      return `write(${input.key}, ${quoted(input.value)})${output === undefined ? " -> ?" : ""}`;
    case "cas": {
      const result = output === undefined ? "?" : output.ok === true ? "ok" : "fail";
      return `cas(${input.key}, ${quoted(input.from)} -> ${quoted(input.to)}) -> ${result}`;
    }
    default:
      return unreachable(input, "register operation");
  }
}

/** State: the value of the one key of the partition being checked (histories are always partitioned by key). */
export const registerModel: Model<RegisterValue, RegisterInput, RegisterOutput> = {
  init: () => null,
  step: stepRegister,
  partition: partitionByKey,
  // A prefix keeps "absent" distinct from every string value.
  hashState: (state) => (state === null ? "\u0000absent" : `=${state}`),
  describeOperation: describeRegisterOperation,
  isReadOnly: (input) => input.kind === "read",
};

// ---------------------------------------------------------------------------------------------------------------
// A map of string keys with get / put / append; a missing key reads as "". The model of the kv test vectors.

export type KvInput =
  | { readonly kind: "get"; readonly key: string }
  | { readonly kind: "put"; readonly key: string; readonly value: string }
  | { readonly kind: "append"; readonly key: string; readonly value: string };

/** get -> { value }; put and append -> {}. */
export interface KvOutput {
  readonly value?: string;
}

function stepKv(state: string, input: KvInput, output: KvOutput | undefined): StepResult<string> {
  switch (input.kind) {
    case "get": {
      if (output === undefined) {
        return { ok: true, state };
      }
      if (typeof output.value !== "string") {
        throw new Error(`a get's output needs value: string, got ${JSON.stringify(output)}`);
      }
      return { ok: output.value === state, state };
    }
    case "put":
      return { ok: true, state: input.value };
    case "append":
      return { ok: true, state: state + input.value };
    default:
      return unreachable(input, "kv operation");
  }
}

function describeKvOperation(input: KvInput, output: KvOutput | undefined): string {
  switch (input.kind) {
    case "get":
      return `get(${input.key}) -> ${output === undefined ? "?" : JSON.stringify(output.value)}`;
    case "put":
    case "append":
      return `${input.kind}(${input.key}, ${JSON.stringify(input.value)})${output === undefined ? " -> ?" : ""}`;
    default:
      return unreachable(input, "kv operation");
  }
}

/** State: the string under the one key of the partition being checked. */
export const appendKvModel: Model<string, KvInput, KvOutput> = {
  init: () => "",
  step: stepKv,
  partition: partitionByKey,
  hashState: (state) => state,
  describeOperation: describeKvOperation,
  isReadOnly: (input) => input.kind === "get",
};
