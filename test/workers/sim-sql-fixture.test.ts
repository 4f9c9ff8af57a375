// The platform side of the simulator's storage fixture: every step of test/sim/platform/sql-fixture.json against
// the real ctx.storage of a Durable Object. The node:sqlite adapter runs the same file
// (test/sim/platform/sqlite-storage.test.ts), so the simulator's storage and the platform's cannot drift apart.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import fixture from "../sim/platform/sql-fixture.json";
import { runFixture, type Fixture, type StorageUnderTest } from "../sim/platform/fixture-runner";

describe("simulator storage fixture on the platform", () => {
  it("ctx.storage behaves as the fixture says on every step", async () => {
    const stub = env.CLUSTER_NODE.getByName(`sim-sql-fixture-${crypto.randomUUID()}`);
    const outcome = await runInDurableObject(stub, (_instance, state) =>
      runFixture(state.storage as unknown as StorageUnderTest, fixture as unknown as Fixture),
    );
    expect(outcome.problems).toEqual([]);
    expect(outcome.steps).toBeGreaterThan(50);
  });
});
