// Issue 11 (CPU per write): every replica inspects every statement it applies; inspections of recent statement texts
// are kept (a pure function of the text), bounded in count and text length.
import { describe, expect, it } from "vitest";
import { inspectStatement } from "../../src/objects/sql/validate";

describe("inspectStatement keeps recent inspections", () => {
  it("answers a repeated text from what it kept, the same as a fresh inspection", () => {
    const sql = "INSERT INTO cache_probe_a (v) VALUES (?)";
    const first = inspectStatement(sql);
    expect(inspectStatement(sql)).toBe(first);
    expect(first.shape.isDml).toBe(true);
    expect(first.hazard).toBeNull();
    const refused = inspectStatement("BEGIN");
    expect(inspectStatement("BEGIN")).toBe(refused);
    expect(refused.hazard).toMatch(/not supported/);
  });

  it("keeps at most 256 texts, the oldest forgotten first, and none longer than 2,048 characters", () => {
    const oldest = inspectStatement("SELECT 'cache-probe-oldest'");
    for (let i = 0; i < 256; i++) {
      inspectStatement(`SELECT ${i} AS cache_probe_filler`);
    }
    const again = inspectStatement("SELECT 'cache-probe-oldest'");
    expect(again).not.toBe(oldest);
    expect(again).toEqual(oldest);
    const long = `SELECT '${"x".repeat(2_100)}'`;
    expect(inspectStatement(long)).not.toBe(inspectStatement(long));
  });
});
