// The local server as `npm start` runs it (scripts/start.mjs: wrangler dev), for the end-to-end tests (test/e2e,
// test/nemesis) and the live metrics check (scripts/check-metrics.ts): started from an empty state directory on free
// ports, in its own process group, and always stopped, even when a check fails.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, REPO_ROOT, spawnGroup, waitUntilLive, wranglerDevPlaceArgs, type ProcessGroup } from "./processes";

export const STARTUP_TIMEOUT_MS = 45_000;

// ---------------------------------------------------------------------------------------------------------------
// The development token, as the README tells users to use it.

/** The admin token of .dev.vars.example; .dev.vars (what the server really reads) must not disagree. */
export function developmentAdminToken(): string {
  const example = tokensOf(join(REPO_ROOT, ".dev.vars.example"));
  const local = join(REPO_ROOT, ".dev.vars");
  if (existsSync(local) && JSON.stringify(tokensOf(local)) !== JSON.stringify(example)) {
    throw new Error(
      ".dev.vars sets other DHA_TOKENS than .dev.vars.example; this test uses the example's tokens (delete .dev.vars to reset it)",
    );
  }
  const admin = Object.entries(example).find(([, roles]) => roles.includes("admin"));
  if (admin === undefined) {
    throw new Error(".dev.vars.example has no admin token");
  }
  return admin[0];
}

/** The DHA_TOKENS of a .dev.vars file: each bearer token with its roles. */
export function tokensOf(path: string): Record<string, string[]> {
  const line = readFileSync(path, "utf8")
    .split("\n")
    .find((text) => text.startsWith("DHA_TOKENS="));
  if (line === undefined) {
    throw new Error(`${path} does not set DHA_TOKENS`);
  }
  const raw = line
    .slice("DHA_TOKENS=".length)
    .trim()
    .replace(/^'(.*)'$/, "$1");
  return JSON.parse(raw) as Record<string, string[]>;
}

// ---------------------------------------------------------------------------------------------------------------
// The server process

export class LocalServer {
  private constructor(
    private readonly group: ProcessGroup,
    readonly baseUrl: string,
    private readonly stateDir: string,
  ) {}

  /** `node scripts/start.mjs` from the repository root, in its own process group, with an empty state directory. */
  static async start(
    options: { readonly extraArgs?: readonly string[]; readonly startupTimeoutMs?: number } = {},
  ): Promise<LocalServer> {
    const [port, inspectorPort] = [await freePort(), await freePort()];
    const stateDir = mkdtempSync(join(tmpdir(), "durable-ha-local-"));
    const args = [
      "scripts/start.mjs",
      ...wranglerDevPlaceArgs({ port, inspectorPort, stateDir }),
      ...(options.extraArgs ?? []),
    ];
    const group = spawnGroup("the server", process.execPath, args);
    const server = new LocalServer(group, `http://127.0.0.1:${port}`, stateDir);
    try {
      await waitUntilLive(group, server.baseUrl, options.startupTimeoutMs ?? STARTUP_TIMEOUT_MS);
    } catch (error) {
      await server.stop();
      throw error;
    }
    return server;
  }

  /** Ends the whole process group (start.mjs, wrangler, workerd), forcibly if it lingers; removes the state. */
  async stop(): Promise<void> {
    await this.group.stop();
    rmSync(this.stateDir, { recursive: true, force: true });
  }

  get log(): string {
    return this.group.log;
  }
}
