import { describe, expect, it } from "vitest";
import { HistoryParseError, parseEdnMap, parseJepsenEtcdLog, parseKvLog, parseVerdicts } from "./index";

const INF = Number.POSITIVE_INFINITY;

describe("parseJepsenEtcdLog", () => {
  it("pairs calls with completions, using line numbers as times", () => {
    const log = [
      "INFO  jepsen.core - Running test", // noise
      "INFO  jepsen.util - 0\t:invoke\t:write\t3",
      "INFO  jepsen.util - 1\t:invoke\t:read\tnil",
      "INFO  jepsen.util - 1\t:ok\t:read\tnil",
      "INFO  jepsen.util - 0\t:ok\t:write\t3",
      "INFO  jepsen.util - 1\t:invoke\t:cas\t[3 4]",
      "INFO  jepsen.util - 1\t:ok\t:cas\t[3 4]",
      "INFO  jepsen.util - 0\t:invoke\t:cas\t[1 2]",
      "INFO  jepsen.util - 0\t:fail\t:cas\t[1 2]",
      "INFO  jepsen.util - 1\t:invoke\t:read\tnil",
      "INFO  jepsen.util - 1\t:ok\t:read\t4",
    ].join("\n");
    expect(parseJepsenEtcdLog(log, { key: "r" })).toEqual([
      { clientId: 0, call: 2, ret: 5, input: { kind: "write", key: "r", value: "3" }, output: {} },
      { clientId: 1, call: 3, ret: 4, input: { kind: "read", key: "r" }, output: { value: null } },
      { clientId: 1, call: 6, ret: 7, input: { kind: "cas", key: "r", from: "3", to: "4" }, output: { ok: true } },
      { clientId: 0, call: 8, ret: 9, input: { kind: "cas", key: "r", from: "1", to: "2" }, output: { ok: false } },
      { clientId: 1, call: 10, ret: 11, input: { kind: "read", key: "r" }, output: { value: "4" } },
    ]);
  });

  it("makes :info and still-open calls indeterminate, and drops a failed write", () => {
    const log = [
      "INFO  jepsen.util - 2\t:invoke\t:write\t1",
      "INFO  jepsen.util - 2\t:info\t:write\t:timed-out",
      "INFO  jepsen.util - 3\t:invoke\t:write\t2",
      "INFO  jepsen.util - 3\t:fail\t:write\t2",
      "INFO  jepsen.util - 4\t:invoke\t:cas\t[1 2]",
    ].join("\n");
    const ops = parseJepsenEtcdLog(log);
    expect(ops).toEqual([
      { clientId: 2, call: 1, ret: INF, input: { kind: "write", key: "register", value: "1" }, output: undefined },
      {
        clientId: 4,
        call: 5,
        ret: INF,
        input: { kind: "cas", key: "register", from: "1", to: "2" },
        output: undefined,
      },
    ]);
  });

  it("rejects malformed or inconsistent lines with the line number", () => {
    const bad = (lines: string[]) => () => parseJepsenEtcdLog(lines.join("\n"), { source: "t.log" });
    expect(bad(["INFO  jepsen.util - 0\t:invoke\t:delete\tnil"])).toThrow(/t\.log:1: unrecognised jepsen\.util line/);
    expect(bad(["INFO  jepsen.util - 0\t:ok\t:read\tnil"])).toThrow(
      /t\.log:1: process 0 completes :read with no open call/,
    );
    expect(bad(["INFO  jepsen.util - 0\t:invoke\t:read\tnil", "INFO  jepsen.util - 0\t:invoke\t:read\tnil"])).toThrow(
      /t\.log:2: .*still open/,
    );
    expect(bad(["INFO  jepsen.util - 0\t:invoke\t:write\t1", "INFO  jepsen.util - 0\t:ok\t:write\t2"])).toThrow(
      /t\.log:2: .*does not echo/,
    );
    expect(bad(["INFO  jepsen.util - 0\t:invoke\t:write\t1", "INFO  jepsen.util - 0\t:ok\t:read\t1"])).toThrow(
      /its open call .* is :write/,
    );
    expect(bad(["INFO  jepsen.util - 0\t:invoke\t:cas\t[1]"])).toThrow(/t\.log:1: a cas argument is \[from to\]/);
    expect(bad(["INFO  jepsen.util - 0\t:invoke\t:read\tnil", "INFO  jepsen.util - 0\t:ok\t:read\tx"])).toThrow(
      HistoryParseError,
    );
  });
});

describe("parseEdnMap", () => {
  it("reads keywords, strings with escapes, integers and nil", () => {
    const map = parseEdnMap('{:process 12, :type :ok, :f :get, :key "a\\"b", :value nil, :n -3, :flag true}');
    expect(Object.fromEntries(map)).toEqual({
      process: { type: "integer", value: 12 },
      type: { type: "keyword", name: "ok" },
      f: { type: "keyword", name: "get" },
      key: { type: "string", value: 'a"b' },
      value: { type: "nil" },
      n: { type: "integer", value: -3 },
      flag: { type: "boolean", value: true },
    });
  });

  it("rejects what it does not understand", () => {
    expect(() => parseEdnMap("{:a 1")).toThrow(/unterminated map/);
    expect(() => parseEdnMap('{:a "x}')).toThrow(/unterminated string/);
    expect(() => parseEdnMap("{:a 1, :a 2}")).toThrow(/duplicate key :a/);
    expect(() => parseEdnMap('{"a" 1}')).toThrow(/keys must be keywords/);
    expect(() => parseEdnMap("{:a 1} x")).toThrow(/trailing/);
    expect(() => parseEdnMap("{:a [1 2]}")).toThrow(/expected a token|unsupported/);
  });
});

describe("parseKvLog", () => {
  it("builds get/put/append operations; :info and unanswered calls are indeterminate", () => {
    const log = [
      '{:process 0, :type :invoke, :f :append, :key "k", :value "x 0 0 y"}',
      '{:process 1, :type :invoke, :f :get, :key "k", :value nil}',
      '{:process 0, :type :ok, :f :append, :key "k", :value "x 0 0 y"}',
      '{:process 1, :type :ok, :f :get, :key "k", :value ""}',
      "",
      '{:process 2, :type :invoke, :f :put, :key "j", :value "v"}',
      '{:process 2, :type :info, :f :put, :key "j", :value "v"}',
      '{:process 3, :type :invoke, :f :put, :key "j", :value "w"}',
    ].join("\n");
    expect(parseKvLog(log)).toEqual([
      { clientId: 0, call: 1, ret: 3, input: { kind: "append", key: "k", value: "x 0 0 y" }, output: {} },
      { clientId: 1, call: 2, ret: 4, input: { kind: "get", key: "k" }, output: { value: "" } },
      { clientId: 2, call: 6, ret: INF, input: { kind: "put", key: "j", value: "v" }, output: undefined },
      { clientId: 3, call: 8, ret: INF, input: { kind: "put", key: "j", value: "w" }, output: undefined },
    ]);
  });

  it("rejects broken lines with the line number", () => {
    expect(() =>
      parseKvLog(
        '{:process 0, :type :invoke, :f :get, :key "k", :value nil}\n{:process 0, :type :ok, :f :get, :key "z", :value ""}',
        { source: "kv" },
      ),
    ).toThrow(/kv:2: completion for key "z"/);
    expect(() => parseKvLog('{:process 0, :type :invoke, :f :delete, :key "k", :value nil}', { source: "kv" })).toThrow(
      /kv:1: unknown operation :delete/,
    );
    expect(() => parseKvLog("not edn", { source: "kv" })).toThrow(/kv:1: expected \{/);
  });
});

describe("parseVerdicts", () => {
  it("reads the table", () => {
    const verdicts = parseVerdicts("file\tlinearizable\na.log\ttrue\nb.log\tfalse\n");
    expect([...verdicts]).toEqual([
      ["a.log", true],
      ["b.log", false],
    ]);
  });

  it("rejects a bad header, a bad verdict and duplicates", () => {
    expect(() => parseVerdicts("name\tverdict\n")).toThrow(/header/);
    expect(() => parseVerdicts("file\tlinearizable\na.log\tyes\n")).toThrow(/:2: expected/);
    expect(() => parseVerdicts("file\tlinearizable\na.log\ttrue\na.log\ttrue\n")).toThrow(/listed twice/);
  });
});
