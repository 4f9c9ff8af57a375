// The end-to-end linearizability run as part of `npm test`: a short run against `npm start`'s server with the
// nemesis on, reads at every level and backups. `npm run test:lin -- --seconds 60` runs a longer one.
import { expect, it } from "vitest";
import { runLinearizability } from "./lin-run";

it("concurrent HTTP clients under crashes, partitions and leader changes see a linearizable history", async () => {
  const seed = Number(process.env["LIN_SEED"] ?? Date.now() % 1_000_000);
  const result = await runLinearizability({ seconds: 12, clients: 5, keys: 3, seed, log: () => undefined });
  const checked = Object.entries(result.checked)
    .map(([what, count]) => `${what} ${count}`)
    .join(", ");
  console.log(
    `linearizability run (seed ${seed}): ${result.operations} operations, ${result.indeterminate} with unknown outcome; checked ${checked}; nemesis: ${result.nemesisActions.join(", ")}; verdict ${result.verdict}`,
  );
  expect(result.nemesisActions.length).toBeGreaterThan(2);
  expect(result.operations).toBeGreaterThan(50);
  // Every read level and backups were exercised, not just written about.
  for (const [what, count] of Object.entries(result.checked)) {
    expect(count, `${what} operations checked`).toBeGreaterThan(0);
  }
  expect(result.verdict, result.detail).toBe("linearizable");
}, 150_000);
