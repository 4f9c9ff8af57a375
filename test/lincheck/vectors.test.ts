// Real Jepsen histories with Porcupine's verdicts, carried in the repository (test/data/linearizability; its
// README.md gives their source and licence), so a fresh clone checks them with nothing beside it.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import {
  appendKvModel,
  checkLinearizability,
  parseJepsenEtcdLog,
  parseKvLog,
  parseVerdicts,
  registerModel,
} from "./index";
import type { CheckResult } from "./index";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const vectorsDir = path.resolve(repoRoot, "test/data/linearizability");
if (!existsSync(path.join(vectorsDir, "README.md"))) {
  throw new Error(
    `linearizability test vectors not found at ${vectorsDir} (test/data/linearizability with jepsen-etcd/ and kv/)`,
  );
}

/** The whole suite must stay far below this on a 2-core machine; Porcupine does it in seconds. */
const SUITE_BUDGET_MS = 60_000;

interface VectorFolder {
  readonly folder: string;
  readonly dataFile: RegExp;
  check(text: string, source: string): CheckResult;
}

const folders: readonly VectorFolder[] = [
  {
    folder: "jepsen-etcd",
    dataFile: /^etcd_\d{3}\.log$/,
    check: (text, source) => checkLinearizability(registerModel, parseJepsenEtcdLog(text, { source })),
  },
  {
    folder: "kv",
    dataFile: /^c\d+-(ok|bad)\.txt$/,
    check: (text, source) => checkLinearizability(appendKvModel, parseKvLog(text, { source })),
  },
];

const timings: { file: string; ms: number; steps: number }[] = [];

afterAll(() => {
  if (timings.length === 0) {
    return;
  }
  const totalMs = timings.reduce((sum, t) => sum + t.ms, 0);
  const slowest = [...timings].sort((a, b) => b.ms - a.ms).slice(0, 3);
  console.log(
    `linearizability vectors: ${timings.length} checked in ${totalMs.toFixed(0)} ms; slowest: ` +
      slowest.map((t) => `${t.file} ${t.ms.toFixed(0)} ms (${t.steps} steps)`).join(", "),
  );
});

for (const { folder, dataFile, check } of folders) {
  describe(`vectors in ${folder}`, () => {
    const dir = path.join(vectorsDir, folder);
    const verdicts = parseVerdicts(readFileSync(path.join(dir, "verdicts.tsv"), "utf8"), `${folder}/verdicts.tsv`);

    it("lists a verdict for every history in the folder, and only those", () => {
      const files = readdirSync(dir).filter((name) => dataFile.test(name));
      expect(files.length).toBeGreaterThan(0);
      expect([...verdicts.keys()].sort()).toEqual(files.sort());
    });

    for (const [file, linearizable] of verdicts) {
      it(`${file} is ${linearizable ? "" : "not "}linearizable`, () => {
        const text = readFileSync(path.join(dir, file), "utf8");
        const started = performance.now();
        const result = check(text, `${folder}/${file}`);
        timings.push({ file: `${folder}/${file}`, ms: performance.now() - started, steps: result.steps ?? 0 });
        expect(result.verdict, result.detail).toBe(linearizable ? "linearizable" : "not-linearizable");
        expect(result.operations).toBeGreaterThan(0);
        if (!linearizable) {
          expect(result.detail).toMatch(/cannot place/);
        }
      });
    }
  });
}

describe("the vector suite as a whole", () => {
  it(`checks every vector within ${SUITE_BUDGET_MS / 1000} s`, () => {
    const expected = folders.reduce(
      (sum, { folder }) =>
        sum + parseVerdicts(readFileSync(path.join(vectorsDir, folder, "verdicts.tsv"), "utf8")).size,
      0,
    );
    expect(timings).toHaveLength(expected);
    const totalMs = timings.reduce((sum, t) => sum + t.ms, 0);
    expect(totalMs).toBeLessThan(SUITE_BUDGET_MS);
  });
});
