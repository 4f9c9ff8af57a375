import { describe, expect, it } from "vitest";
import { appendKvModel, checkLinearizability, registerModel } from "./index";
import type { KvInput, KvOutput, Model, Operation, RegisterInput, RegisterOutput, RegisterValue } from "./index";

type RegisterOp = Operation<RegisterInput, RegisterOutput>;

const K = "k";
const read = (key = K): RegisterInput => ({ kind: "read", key });
const write = (value: string, key = K): RegisterInput => ({ kind: "write", key, value });
const cas = (from: RegisterValue, to: string, key = K): RegisterInput => ({ kind: "cas", key, from, to });

function done<I, O>(clientId: number, call: number, ret: number, input: I, output: O): Operation<I, O> {
  return { clientId, call, ret, input, output };
}

function timedOut<I, O>(clientId: number, call: number, input: I): Operation<I, O> {
  return { clientId, call, ret: Number.POSITIVE_INFINITY, input, output: undefined };
}

function verdictOf(history: readonly RegisterOp[]): string {
  return checkLinearizability(registerModel, history).verdict;
}

describe("register histories", () => {
  it("accepts a sequential history and reports its size", () => {
    const history: RegisterOp[] = [
      done(1, 0, 1, read(), { value: null }),
      done(1, 2, 3, write("a"), {}),
      done(2, 4, 5, read(), { value: "a" }),
      done(2, 6, 7, cas("a", "b"), { ok: true }),
      done(1, 8, 9, read(), { value: "b" }),
    ];
    const result = checkLinearizability(registerModel, history);
    expect(result).toMatchObject({ verdict: "linearizable", operations: 5, partitions: 1 });
    expect(result.detail).toBeUndefined();
  });

  it("accepts an empty history", () => {
    expect(checkLinearizability(registerModel, [])).toMatchObject({
      verdict: "linearizable",
      operations: 0,
      partitions: 0,
    });
  });

  it("accepts concurrent operations that only one order explains", () => {
    // The reads overlap both writes; b's read of "a" then a's read of "b" forces write(a) < read < write(b) < read.
    const history: RegisterOp[] = [
      done(1, 0, 10, write("a"), {}),
      done(2, 0, 10, write("b"), {}),
      done(3, 1, 4, read(), { value: "a" }),
      done(4, 5, 9, read(), { value: "b" }),
    ];
    expect(verdictOf(history)).toBe("linearizable");
  });

  it("treats operations that touch at an instant as concurrent", () => {
    const history: RegisterOp[] = [done(1, 0, 5, write("a"), {}), done(2, 5, 6, read(), { value: null })];
    expect(verdictOf(history)).toBe("linearizable");
  });

  it("rejects a stale read and says which operation could not be placed", () => {
    const history: RegisterOp[] = [
      done(1, 0, 1, write("a"), {}),
      done(1, 2, 3, write("b"), {}),
      done(2, 4, 5, read(), { value: "a" }),
    ];
    const result = checkLinearizability(registerModel, history);
    expect(result.verdict).toBe("not-linearizable");
    expect(result.detail).toContain('cannot place #2 client 2 [4, 5] read(k) -> "a"');
    expect(result.detail).toContain("longest linearizable prefix found has 2");
  });

  it("rejects reads that see a value and then the older one again", () => {
    const history: RegisterOp[] = [
      done(1, 0, 1, write("a"), {}),
      done(1, 2, 20, write("b"), {}),
      done(2, 3, 4, read(), { value: "b" }),
      done(3, 5, 6, read(), { value: "a" }),
    ];
    expect(verdictOf(history)).toBe("not-linearizable");
  });

  it("accepts an indeterminate write that later shows up", () => {
    const history: RegisterOp[] = [
      done(1, 0, 1, write("a"), {}),
      timedOut(2, 2, write("b")),
      done(3, 3, 4, read(), { value: "a" }),
      done(3, 50, 51, read(), { value: "b" }),
    ];
    expect(verdictOf(history)).toBe("linearizable");
  });

  it("accepts an indeterminate write that never shows up", () => {
    const history: RegisterOp[] = [
      done(1, 0, 1, write("a"), {}),
      timedOut(2, 2, write("b")),
      done(3, 3, 4, read(), { value: "a" }),
      done(3, 50, 51, read(), { value: "a" }),
    ];
    expect(verdictOf(history)).toBe("linearizable");
  });

  it("rejects an indeterminate write seen before it was called", () => {
    const history: RegisterOp[] = [done(1, 0, 1, read(), { value: "b" }), timedOut(2, 2, write("b"))];
    expect(verdictOf(history)).toBe("not-linearizable");
  });

  it("rejects an indeterminate write that shows up and then vanishes", () => {
    const history: RegisterOp[] = [
      done(1, 0, 1, write("a"), {}),
      timedOut(2, 2, write("b")),
      done(3, 3, 4, read(), { value: "b" }),
      done(3, 5, 6, read(), { value: "a" }),
    ];
    expect(verdictOf(history)).toBe("not-linearizable");
  });

  it("drops indeterminate reads, whatever they claim", () => {
    const history: RegisterOp[] = [done(1, 0, 1, write("a"), {}), timedOut(2, 2, read())];
    expect(checkLinearizability(registerModel, history)).toMatchObject({ verdict: "linearizable", operations: 2 });
  });

  it("checks cas success and failure against the value", () => {
    const base: RegisterOp[] = [done(1, 0, 1, write("a"), {})];
    expect(
      verdictOf([...base, done(2, 2, 3, cas("a", "b"), { ok: true }), done(2, 4, 5, read(), { value: "b" })]),
    ).toBe("linearizable");
    expect(
      verdictOf([...base, done(2, 2, 3, cas("x", "b"), { ok: false }), done(2, 4, 5, read(), { value: "a" })]),
    ).toBe("linearizable");
    expect(verdictOf([...base, done(2, 2, 3, cas("x", "b"), { ok: true })])).toBe("not-linearizable");
    expect(verdictOf([...base, done(2, 2, 3, cas("a", "b"), { ok: false })])).toBe("not-linearizable");
    // A failed cas took no effect.
    expect(
      verdictOf([...base, done(2, 2, 3, cas("x", "b"), { ok: false }), done(2, 4, 5, read(), { value: "b" })]),
    ).toBe("not-linearizable");
    // cas from null creates the key only when it is absent.
    expect(verdictOf([done(1, 0, 1, cas(null, "n"), { ok: true }), done(1, 2, 3, read(), { value: "n" })])).toBe(
      "linearizable",
    );
    expect(verdictOf([...base, done(2, 2, 3, cas(null, "n"), { ok: true })])).toBe("not-linearizable");
  });

  it("lets an indeterminate cas have succeeded or not", () => {
    const base: RegisterOp[] = [done(1, 0, 1, write("a"), {}), timedOut(2, 2, cas("a", "b"))];
    expect(verdictOf([...base, done(3, 10, 11, read(), { value: "b" })])).toBe("linearizable");
    expect(verdictOf([...base, done(3, 10, 11, read(), { value: "a" })])).toBe("linearizable");
    // It can only have succeeded while the value was "a".
    const afterOverwrite: RegisterOp[] = [
      done(1, 0, 1, write("c"), {}),
      timedOut(2, 2, cas("a", "b")),
      done(3, 10, 11, read(), { value: "b" }),
    ];
    expect(verdictOf(afterOverwrite)).toBe("not-linearizable");
  });

  it("checks keys independently and counts the partitions", () => {
    const history: RegisterOp[] = [
      done(1, 0, 10, write("a", "x"), {}),
      done(2, 0, 10, write("a", "y"), {}),
      done(3, 1, 2, read("x"), { value: "a" }),
      done(3, 3, 4, read("y"), { value: null }),
    ];
    expect(checkLinearizability(registerModel, history)).toMatchObject({
      verdict: "linearizable",
      partitions: 2,
      operations: 4,
    });
    const stale: RegisterOp[] = [...history, done(3, 11, 12, read("y"), { value: null })];
    const result = checkLinearizability(registerModel, stale);
    expect(result.verdict).toBe("not-linearizable");
    expect(result.detail).toMatch(/^partition 2 of 2: /);
  });
});

describe("budgets", () => {
  // Twelve concurrent writes of distinct values and a read of a value nobody wrote: every order must be refuted.
  const hard: RegisterOp[] = [
    ...Array.from({ length: 12 }, (_, i) => done(i, 0, 100, write(`v${i}`), {})),
    done(99, 101, 102, read(), { value: "nobody" }),
  ];

  it("refutes the hard history when given room", () => {
    expect(checkLinearizability(registerModel, hard).verdict).toBe("not-linearizable");
  });

  it("returns unknown when the step budget runs out", () => {
    const result = checkLinearizability(registerModel, hard, { maxSteps: 50 });
    expect(result.verdict).toBe("unknown");
    expect(result.steps).toBe(51);
    expect(result.detail).toContain("step budget of 50 exceeded");
  });

  it("returns unknown when the time budget runs out", () => {
    const result = checkLinearizability(registerModel, hard, { timeoutMs: 0 });
    expect(result.verdict).toBe("unknown");
    expect(result.detail).toContain("time budget exceeded");
  });

  it("returns unknown when the cache outgrows its memory budget", () => {
    const result = checkLinearizability(registerModel, hard, { maxCacheWords: 100 });
    expect(result.verdict).toBe("unknown");
    expect(result.detail).toContain("memory budget");
  });

  describe("partitions are searched interleaved", () => {
    // 14 concurrent writes then a read of a value nobody wrote: about 860,000 steps to refute, far above the budget.
    const undecidable: RegisterOp[] = [
      ...Array.from({ length: 14 }, (_, i) => done(i, 0, 100, write(`v${i}`, "a"), {})),
      done(99, 101, 102, read("a"), { value: "nobody" }),
    ];
    const violating: RegisterOp[] = [done(1, 0, 1, write("x", "b"), {}), done(2, 2, 3, read("b"), { value: "y" })];
    const linearizable: RegisterOp[] = [done(1, 0, 1, write("x", "b"), {}), done(2, 2, 3, read("b"), { value: "x" })];

    it("answers not-linearizable when one partition violates while another cannot be decided", () => {
      const result = checkLinearizability(registerModel, [...undecidable, ...violating], { maxSteps: 50_000 });
      expect(result.verdict).toBe("not-linearizable");
      expect(result.detail).toMatch(/^partition 2 of 2: /);
      // The violation is found in the first round, long before the undecidable partition spends the budget.
      expect(result.steps).toBeLessThan(10_000);
    });

    it("answers unknown, naming the undecided partition, when every other partition is linearizable", () => {
      const result = checkLinearizability(registerModel, [...undecidable, ...linearizable], { maxSteps: 50_000 });
      expect(result.verdict).toBe("unknown");
      expect(result.detail).toMatch(/^partition 1 of 2: step budget of 50000 exceeded/);
    });

    it("leaves a partition undecided once it spends its own step budget, and goes on with the others", () => {
      const result = checkLinearizability(
        registerModel,
        [...undecidable, ...undecidable.map((op) => ({ ...op, input: { ...op.input, key: "c" } }))],
        {
          maxStepsPerPartition: 20_000,
        },
      );
      expect(result.verdict).toBe("unknown");
      expect(result.detail).toMatch(
        /^partition 1 of 2: the partition's step budget of 20000 exceeded.*\(and 1 more undecided partitions\)$/s,
      );
      expect(result.steps).toBeGreaterThan(40_000);
      expect(result.steps).toBeLessThan(40_010);
    });
  });

  it("rejects nonsensical budgets", () => {
    expect(() => checkLinearizability(registerModel, hard, { maxSteps: -1 })).toThrow(/maxSteps/);
    expect(() => checkLinearizability(registerModel, hard, { timeoutMs: Number.NaN })).toThrow(/timeoutMs/);
    expect(() => checkLinearizability(registerModel, hard, { maxStepsPerPartition: 1.5 })).toThrow(
      /maxStepsPerPartition/,
    );
  });
});

describe("malformed input", () => {
  it("names the operation whose times are wrong", () => {
    expect(() => verdictOf([done(1, 5, 4, read(), { value: null })])).toThrow(/history\[0\].*before call/);
    expect(() => verdictOf([done(1, 0, Number.POSITIVE_INFINITY, read(), { value: null })])).toThrow(
      /finite return time/,
    );
    expect(() => verdictOf([{ clientId: 1, call: 0, ret: 3, input: write("a"), output: undefined }])).toThrow(
      /\+Infinity/,
    );
    expect(() => verdictOf([done(1, Number.NaN, 1, read(), { value: null })])).toThrow(/call time/);
  });

  it("rejects an output of the wrong shape", () => {
    expect(() => verdictOf([done(1, 0, 1, read(), {})])).toThrow(/read's output needs a value/);
    expect(() => verdictOf([done(1, 0, 1, cas("a", "b"), {})])).toThrow(/cas output needs ok/);
  });

  it("rejects a partition function that loses operations", () => {
    const lossy: Model<RegisterValue, RegisterInput, RegisterOutput> = {
      ...registerModel,
      partition: (h) => [h.slice(1)],
    };
    expect(() => checkLinearizability(lossy, [done(1, 0, 1, write("a"), {}), done(1, 2, 3, write("b"), {})])).toThrow(
      /partition/,
    );
  });
});

describe("models with several possible outcomes", () => {
  // A coin: an indeterminate flip may have landed either way, and only a later look tells which.
  type Coin = "heads" | "tails" | "unflipped";
  type CoinInput = { kind: "flip" } | { kind: "look" };
  const coinModel: Model<Coin, CoinInput, Coin> = {
    init: () => "unflipped",
    step: (state, input, output) => {
      if (input.kind === "look") {
        return { ok: output === undefined || output === state, state };
      }
      if (output !== undefined) {
        return { ok: true, state: output };
      }
      return [
        { ok: true, state: "heads" },
        { ok: true, state: "tails" },
      ];
    },
    hashState: (state) => state,
  };

  it("tries every successor state of an indeterminate operation", () => {
    for (const seen of ["heads", "tails"] as const) {
      const history: Operation<CoinInput, Coin>[] = [
        timedOut(1, 0, { kind: "flip" }),
        done(2, 1, 2, { kind: "look" }, seen),
        done(2, 3, 4, { kind: "look" }, seen),
      ];
      expect(checkLinearizability(coinModel, history).verdict).toBe("linearizable");
    }
    const inconsistent: Operation<CoinInput, Coin>[] = [
      timedOut(1, 0, { kind: "flip" }),
      done(2, 1, 2, { kind: "look" }, "heads"),
      done(2, 3, 4, { kind: "look" }, "tails"),
    ];
    expect(checkLinearizability(coinModel, inconsistent).verdict).toBe("not-linearizable");
  });
});

describe("the append kv model", () => {
  type KvOp = Operation<KvInput, KvOutput>;
  it("reads a missing key as the empty string and appends in order", () => {
    const history: KvOp[] = [
      done(1, 0, 1, { kind: "get", key: "a" }, { value: "" }),
      done(1, 2, 3, { kind: "append", key: "a", value: "x" }, {}),
      done(2, 2, 5, { kind: "append", key: "a", value: "y" }, {}),
      done(1, 6, 7, { kind: "get", key: "a" }, { value: "yx" }),
      done(1, 8, 9, { kind: "put", key: "b", value: "z" }, {}),
      done(2, 10, 11, { kind: "get", key: "b" }, { value: "z" }),
    ];
    expect(checkLinearizability(appendKvModel, history)).toMatchObject({ verdict: "linearizable", partitions: 2 });
    const wrongOrder: KvOp[] = [
      done(1, 0, 1, { kind: "append", key: "a", value: "x" }, {}),
      done(2, 2, 3, { kind: "append", key: "a", value: "y" }, {}),
      done(1, 4, 5, { kind: "get", key: "a" }, { value: "yx" }),
    ];
    expect(checkLinearizability(appendKvModel, wrongOrder).verdict).toBe("not-linearizable");
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Differential check against a brute-force oracle on small random histories: every subset of the indeterminate
// operations, every order of the chosen ones that respects real time, replayed on an independent register spec.

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function legalSequentially(order: readonly RegisterOp[]): boolean {
  const values = new Map<string, string>();
  for (const op of order) {
    const current = values.get(op.input.key) ?? null;
    const { input, output } = op;
    if (input.kind === "write") {
      values.set(input.key, input.value);
    } else if (input.kind === "read") {
      if (output !== undefined && output.value !== current) {
        return false;
      }
    } else if (output === undefined || output.ok === true) {
      if (current === input.from) {
        values.set(input.key, input.to);
      } else if (output !== undefined) {
        return false;
      }
    } else if (current === input.from) {
      return false;
    }
  }
  return true;
}

function bruteForceLinearizable(history: readonly RegisterOp[]): boolean {
  const determinate = history.filter((op) => op.output !== undefined);
  const indeterminate = history.filter((op) => op.output === undefined);
  const orderExists = (placed: RegisterOp[], rest: RegisterOp[]): boolean => {
    if (rest.length === 0) {
      return legalSequentially(placed);
    }
    if (!legalSequentially(placed)) {
      return false;
    }
    return rest.some((op, i) => {
      const others = rest.filter((_, j) => j !== i);
      // op may go next only if nothing left returned strictly before op was called.
      if (others.some((other) => other.ret < op.call)) {
        return false;
      }
      return orderExists([...placed, op], others);
    });
  };
  for (let mask = 0; mask < 1 << indeterminate.length; mask++) {
    const chosen = indeterminate.filter((_, i) => (mask & (1 << i)) !== 0);
    if (orderExists([], [...determinate, ...chosen])) {
      return true;
    }
  }
  return false;
}

function randomHistory(random: () => number): RegisterOp[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const values = ["a", "b", "c"];
  const keys = random() < 0.3 ? ["x", "y"] : ["x"];
  const count = 1 + Math.floor(random() * 7);
  return Array.from({ length: count }, (_, clientId) => {
    const key = pick(keys);
    const call = Math.floor(random() * 12);
    const ret = call + Math.floor(random() * 6);
    const kind = pick(["read", "read", "write", "write", "cas"] as const);
    const input: RegisterInput =
      kind === "read"
        ? read(key)
        : kind === "write"
          ? write(pick(values), key)
          : cas(pick([null, ...values]), pick(values), key);
    if (kind !== "read" && random() < 0.3) {
      return timedOut<RegisterInput, RegisterOutput>(clientId, call, input);
    }
    const output: RegisterOutput =
      kind === "read" ? { value: pick([null, ...values]) } : kind === "write" ? {} : { ok: random() < 0.5 };
    return done(clientId, call, ret, input, output);
  });
}

describe("agreement with a brute-force oracle", () => {
  it("gives the oracle's verdict on 3000 random small histories", () => {
    const random = mulberry32(20240601);
    const tally = { linearizable: 0, "not-linearizable": 0 };
    for (let i = 0; i < 3000; i++) {
      const history = randomHistory(random);
      const expected = bruteForceLinearizable(history) ? "linearizable" : "not-linearizable";
      const actual = checkLinearizability(registerModel, history).verdict;
      if (actual !== expected) {
        expect.fail(`history ${i}: expected ${expected}, got ${actual}: ${JSON.stringify(history)}`);
      }
      tally[expected]++;
    }
    // Both verdicts must be well represented, or the comparison proves little.
    expect(tally.linearizable).toBeGreaterThan(500);
    expect(tally["not-linearizable"]).toBeGreaterThan(500);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Long histories of the shape the simulator produces: clients hammer a few keys of an atomic register; each
// operation takes effect at one instant inside its [call, ret] window, and a timed-out one may never take effect.

interface LongHistoryShape {
  readonly seed: number;
  readonly operations: number;
  readonly clients: number;
  readonly keys: number;
  readonly timedOutFraction: number;
}

function atomicRegisterHistory(shape: LongHistoryShape): RegisterOp[] {
  const random = mulberry32(shape.seed);
  const clientFreeAt = new Array<number>(shape.clients).fill(0);
  const effects: { at: number; index: number }[] = [];
  const inputs: RegisterInput[] = [];
  const windows: { clientId: number; call: number; ret: number; indeterminate: boolean }[] = [];
  for (let index = 0; index < shape.operations; index++) {
    const clientId = index % shape.clients;
    const call = (clientFreeAt[clientId] ?? 0) + Math.floor(random() * 5);
    const ret = call + 1 + Math.floor(random() * 30);
    clientFreeAt[clientId] = ret + 1;
    const key = `k${Math.floor(random() * shape.keys)}`;
    const roll = random();
    // Unique values, as the simulator writes them; a cas expects a recent value, so it sometimes succeeds.
    const recent = `v${Math.max(0, index - Math.floor(random() * 3 * shape.clients))}`;
    const input: RegisterInput =
      roll < 0.5 ? read(key) : roll < 0.85 ? write(`v${index}`, key) : cas(recent, `v${index}`, key);
    const indeterminate = input.kind !== "read" && random() < shape.timedOutFraction;
    inputs.push(input);
    windows.push({ clientId, call, ret, indeterminate });
    if (!(indeterminate && random() < 0.5)) {
      effects.push({ at: call + random() * (ret - call), index });
    }
  }
  const outputs: (RegisterOutput | undefined)[] = new Array(shape.operations).fill(undefined);
  const values = new Map<string, string>();
  for (const { index } of effects.sort((a, b) => a.at - b.at)) {
    const input = inputs[index] as RegisterInput;
    const current = values.get(input.key) ?? null;
    if (input.kind === "read") {
      outputs[index] = { value: current };
    } else if (input.kind === "write") {
      values.set(input.key, input.value);
      outputs[index] = {};
    } else {
      if (current === input.from) {
        values.set(input.key, input.to);
      }
      outputs[index] = { ok: current === input.from };
    }
  }
  return windows.map(({ clientId, call, ret, indeterminate }, index): RegisterOp => {
    const input = inputs[index] as RegisterInput;
    if (indeterminate) {
      return timedOut(clientId, call, input);
    }
    const output = outputs[index];
    if (output === undefined) {
      throw new Error(`generator bug: operation ${index} completed without taking effect`);
    }
    return done(clientId, call, ret, input, output);
  });
}

describe("long histories", () => {
  const shapes: LongHistoryShape[] = [
    { seed: 1, operations: 3000, clients: 5, keys: 4, timedOutFraction: 0.05 },
    { seed: 2, operations: 2000, clients: 5, keys: 1, timedOutFraction: 0.02 },
    { seed: 3, operations: 1000, clients: 8, keys: 1, timedOutFraction: 0.02 },
  ];

  for (const shape of shapes) {
    it(`decides ${shape.operations} operations of ${shape.clients} clients on ${shape.keys} key(s) both ways`, () => {
      const history = atomicRegisterHistory(shape);
      const accepted = checkLinearizability(registerModel, history);
      expect(accepted.verdict, accepted.detail).toBe("linearizable");
      // Steps are deterministic; the bound catches a search that lost its pruning.
      expect(accepted.steps).toBeLessThan(2_000_000);

      // A read, halfway through, of a value nobody wrote.
      const victim = history.findIndex(
        (op, i) => i > history.length / 2 && op.input.kind === "read" && op.output !== undefined,
      );
      const corrupted = history.map((op, i) => (i === victim ? { ...op, output: { value: "never-written" } } : op));
      const rejected = checkLinearizability(registerModel, corrupted);
      expect(rejected.verdict, rejected.detail).toBe("not-linearizable");
      expect(rejected.detail).toContain('"never-written"');
      expect(rejected.steps).toBeLessThan(2_000_000);
    });
  }
});
