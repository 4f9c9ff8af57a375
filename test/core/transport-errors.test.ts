import { describe, expect, it } from "vitest";
import { DeadlineExceeded } from "../../src/objects/deadline";
import { classifyError, DeliveryError, describeError, FaultInjectedError } from "../../src/objects/transport/errors";

/** An Error carrying the flags Workers RPC sets on its exceptions. */
function rpcError(flags: { retryable?: boolean; overloaded?: boolean; remote?: boolean }): Error {
  return Object.assign(new Error("rpc failed"), flags);
}

describe("classifyError", () => {
  it("classifies a retryable infrastructure error as retryable", () => {
    expect(classifyError(rpcError({ retryable: true }))).toBe("retryable");
  });

  it("never retries an overloaded object, even when it is also marked retryable", () => {
    expect(classifyError(rpcError({ overloaded: true }))).toBe("overloaded");
    expect(classifyError(rpcError({ overloaded: true, retryable: true }))).toBe("overloaded");
  });

  it("classifies an exception thrown by the peer's code as remote", () => {
    expect(classifyError(rpcError({ remote: true }))).toBe("remote");
  });

  it("lets retryable win over remote (an infrastructure error may carry both)", () => {
    expect(classifyError(rpcError({ remote: true, retryable: true }))).toBe("retryable");
  });

  it("classifies our own timeouts as timeout", () => {
    expect(classifyError(new DeadlineExceeded("slow", 10))).toBe("timeout");
  });

  it("classifies errors without flags, and non-errors, as broken", () => {
    expect(classifyError(new Error("Network connection lost."))).toBe("broken");
    expect(classifyError(new TypeError("stub is disposed"))).toBe("broken");
    expect(classifyError(new FaultInjectedError("dropped"))).toBe("broken");
    expect(classifyError("a string")).toBe("broken");
    expect(classifyError(undefined)).toBe("broken");
    expect(classifyError(null)).toBe("broken");
  });

  it("only counts flags that are exactly true", () => {
    expect(classifyError(Object.assign(new Error("x"), { retryable: "yes", overloaded: 1 }))).toBe("broken");
  });

  it("keeps the class of a DeliveryError", () => {
    const err = new DeliveryError({ classification: "overloaded", attempts: 2, cause: rpcError({ overloaded: true }) });
    expect(classifyError(err)).toBe("overloaded");
    expect(err.attempts).toBe(2);
    expect(err.message).toBe("overloaded after 2 attempt(s): Error: rpc failed");
  });
});

describe("describeError", () => {
  it("describes errors, strings, plain values and unserialisable values", () => {
    expect(describeError(new RangeError("bad"))).toBe("RangeError: bad");
    expect(describeError("plain")).toBe("plain");
    expect(describeError({ code: 1 })).toBe('{"code":1}');
    const cyclic: Record<string, unknown> = {};
    cyclic["self"] = cyclic;
    expect(describeError(cyclic)).toBe("[object Object]");
  });
});
