import { describe, expect, it } from "vitest";
import { checkLinearizability, HistoryRecorder, registerModel } from "./index";
import type { RegisterInput, RegisterOutput } from "./index";

describe("HistoryRecorder", () => {
  it("records completed, abandoned and still-open calls", () => {
    const recorder = new HistoryRecorder<RegisterInput, RegisterOutput>();
    const w = recorder.invoke(1, { kind: "write", key: "k", value: "a" }, 0);
    const r = recorder.invoke(2, { kind: "read", key: "k" }, 1);
    recorder.complete(w, {}, 2);
    recorder.complete(r, { value: "a" }, 3);
    const lost = recorder.invoke(1, { kind: "write", key: "k", value: "b" }, 4);
    recorder.indeterminate(lost);
    recorder.invoke(2, { kind: "cas", key: "k", from: "b", to: "c" }, 5);
    expect(recorder.size).toBe(4);
    const ops = recorder.operations();
    expect(ops.map((op) => [op.clientId, op.call, op.ret, op.output])).toEqual([
      [1, 0, 2, {}],
      [2, 1, 3, { value: "a" }],
      [1, 4, Number.POSITIVE_INFINITY, undefined],
      [2, 5, Number.POSITIVE_INFINITY, undefined],
    ]);
    expect(checkLinearizability(registerModel, ops).verdict).toBe("linearizable");
  });

  it("refuses misuse", () => {
    const recorder = new HistoryRecorder<RegisterInput, RegisterOutput>({ maxOperations: 2 });
    const first = recorder.invoke(1, { kind: "read", key: "k" }, 5);
    expect(() => recorder.invoke(1, { kind: "read", key: "k" }, 6)).toThrow(/still open/);
    expect(() => recorder.complete(first, { value: null }, 4)).toThrow(/at or after its call/);
    recorder.complete(first, { value: null }, 6);
    expect(() => recorder.complete(first, { value: null }, 7)).toThrow(/not open/);
    expect(() => recorder.invoke(2, { kind: "read", key: "k" }, Number.NaN)).toThrow(/finite/);
    recorder.invoke(2, { kind: "read", key: "k" }, 8);
    expect(() => recorder.invoke(3, { kind: "read", key: "k" }, 9)).toThrow(/history is full/);
  });
});
