// `npm run bench` is a benchmark, not a test: nothing here asserts a timing. This smoke test runs it in its smallest
// mode (--smoke: every kind of measurement once, 3 s points, without etcd) into a temporary directory and checks
// that each part produced its figures and files: a broken benchmark fails here instead of on the day it is needed.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseOptions, runBench, writeResults } from "../../scripts/bench/run";
import type { BenchResults } from "../../scripts/bench/results";

const outDir = mkdtempSync(join(tmpdir(), "durable-ha-bench-smoke-"));
afterAll(() => rmSync(outDir, { recursive: true, force: true }));

describe("npm run bench --smoke", () => {
  it("measures every part once and writes the JSON, the table and the chart", { timeout: 300_000 }, async () => {
    const lines: string[] = [];
    const options = {
      ...parseOptions(["--smoke", "--no-etcd", "--out", outDir]),
      log: (line: string) => lines.push(line),
    };
    const results = await runBench(options);
    writeResults(results, options);

    const written = JSON.parse(readFileSync(join(outDir, "latest.json"), "utf8")) as BenchResults;
    expect(written.format).toBe("durable-ha-bench/1");
    expect(written.etcdVersion).toBeNull();
    // Writes went through on both systems, and errors are counted (none expected on a healthy local run).
    const [write] = written.writes;
    expect(write?.connections).toBe(1);
    expect(write?.baseline.ok).toBeGreaterThan(0);
    expect(write?.cluster.ok).toBeGreaterThan(0);
    expect(write?.cluster.errors.total).toBe(0);
    // Billed work comes from the nodes' counters: a replicated write costs peer RPCs; the baseline one RPC.
    expect(write?.cluster.billed?.valid).toBe(true);
    expect(write?.cluster.billed?.peerRpcs).toBeGreaterThan(0);
    // About one RPC per write, not exactly: a request cut off when a run stops may still reach the object (one more),
    // and the write in flight when counting starts (one client: one write) is answered inside the measured window
    // but reached the object before it (one fewer).
    const baselineOk = write?.baseline.ok ?? 0;
    expect(write?.baseline.rpcsPerWrite).toBeGreaterThanOrEqual((baselineOk - 1) / baselineOk);
    expect(write?.baseline.rpcsPerWrite).toBeLessThan(2);
    // The replication floor took writes too: each costs the worker's RPC and its share of the peer calls.
    expect(write?.replicationFloor.all.ok).toBeGreaterThan(0);
    expect(write?.replicationFloor.majority.ok).toBeGreaterThan(0);
    expect(write?.replicationFloor.all.rpcsPerWrite).toBeGreaterThan(1);
    expect(written.reads[0]?.cluster.linearizable?.ok).toBeGreaterThan(0);
    // One failover of each kind, each ended by an acknowledged write.
    expect(written.failover.runs.map((r) => r.kind).sort()).toEqual(["crash", "cut-off"]);
    expect(written.failover.runs.every((r) => !r.gaveUp && r.newLeader !== null)).toBe(true);
    // The follower really missed entries and caught up on them.
    expect(written.catchUp[0]?.entriesBehind).toBeGreaterThanOrEqual(20);
    expect(written.memory.cluster.atRest).toHaveProperty("usedBytes");
    expect(written.targets.length).toBeGreaterThan(0);

    expect(readFileSync(join(outDir, "latest.md"), "utf8")).toContain("| durable-ha, 1 clients |");
    expect(readFileSync(join(outDir, "latest.md"), "utf8")).toContain("| replication floor, 1 clients |");
    expect(readFileSync(join(outDir, "latest.svg"), "utf8")).toMatch(/^<svg [^>]*>[\s\S]*<rect[\s\S]*<\/svg>\n$/);
    expect(lines.some((line) => line.startsWith("catch-up by log"))).toBe(true);
  });
});
