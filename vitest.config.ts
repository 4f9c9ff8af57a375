import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        // The pure core and the simulator: plain Node, no Workers runtime.
        test: {
          name: "core",
          include: [
            "test/core/**/*.test.ts",
            "test/sim/**/*.test.ts",
            "test/lincheck/**/*.test.ts",
            "test/e2e/**/*.test.ts",
            "test/nemesis/**/*.test.ts",
            "test/bench/**/*.test.ts",
          ],
          environment: "node",
          testTimeout: 120_000,
        },
      },
      {
        // The Durable Object shell and the worker, in workerd with real alarms, RPC and SQLite.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            // Test-only switch for the transport's fault hook; wrangler.toml never sets it.
            miniflare: { bindings: { DHA_TEST_FAULTS: "1", DHA_LOG_LEVEL: process.env["DHA_LOG_LEVEL"] ?? "warn" } },
          }),
        ],
        test: {
          name: "workers",
          include: ["test/workers/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
    ],
  },
});
