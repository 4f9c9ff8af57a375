// The local server as `npm start` runs it (scripts/start.mjs: wrangler dev), for end-to-end tests: started from an
// empty state directory on free ports, in its own process group, and always stopped, even when a test fails.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";

const REPO_ROOT = resolve(import.meta.dirname, "../..");
export const STARTUP_TIMEOUT_MS = 45_000;
export const STOP_TIMEOUT_MS = 5_000;
const MAX_OUTPUT_CHARS = 64 * 1024;

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

function tokensOf(path: string): Record<string, string[]> {
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

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolvePort(port) : reject(new Error("no free port"))));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

/** Polls `probe` every 100 ms until it returns a value, or throws naming `what` after `timeoutMs`. */
export async function pollUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(100);
  }
}

export class LocalServer {
  private output = "";
  private exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly exit: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    readonly baseUrl: string,
    private readonly stateDir: string,
  ) {
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString("utf8")).slice(-MAX_OUTPUT_CHARS);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    this.exit = new Promise((done) => {
      child.once("exit", (code, signal) => {
        this.exited = { code, signal };
        done();
      });
    });
  }

  /** `node scripts/start.mjs` from the repository root, in its own process group, with an empty state directory. */
  static async start(options: { readonly extraArgs?: readonly string[] } = {}): Promise<LocalServer> {
    const [port, inspectorPort] = [await freePort(), await freePort()];
    const stateDir = mkdtempSync(join(tmpdir(), "durable-ha-e2e-"));
    const args = [
      "scripts/start.mjs",
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--inspector-port",
      String(inspectorPort),
      "--persist-to",
      stateDir,
      ...(options.extraArgs ?? []),
    ];
    const child = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      // As under `npm start`: the project's binaries (wrangler, and Node 22 itself) come first on the PATH.
      env: {
        ...process.env,
        PATH: `${join(REPO_ROOT, "node_modules", ".bin")}${delimiter}${process.env["PATH"] ?? ""}`,
      },
    });
    const server = new LocalServer(child, `http://127.0.0.1:${port}`, stateDir);
    try {
      await server.waitUntilLive(STARTUP_TIMEOUT_MS);
    } catch (error) {
      await server.stop();
      throw error;
    }
    return server;
  }

  private async waitUntilLive(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.exited !== null) {
        throw new Error(`the server exited (${JSON.stringify(this.exited)}) before answering /livez:\n${this.output}`);
      }
      try {
        const response = await fetch(`${this.baseUrl}/livez`, { signal: AbortSignal.timeout(2_000) });
        if (response.status === 200 && (await response.text()) === "ok\n") {
          return;
        }
      } catch {
        // Not listening yet.
      }
      await sleep(200);
    }
    throw new Error(`the server did not answer /livez within ${timeoutMs} ms:\n${this.output}`);
  }

  /** Ends the whole process group (start.mjs, wrangler, workerd), forcibly if it lingers; removes the state. */
  async stop(): Promise<void> {
    const pid = this.child.pid;
    if (pid !== undefined && this.exited === null) {
      signalGroup(pid, "SIGTERM");
      const stopped = await Promise.race([this.exit.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)]);
      if (!stopped) {
        signalGroup(pid, "SIGKILL");
      }
    }
    // Children of the group may outlive its leader by a moment: make sure none is left.
    if (pid !== undefined) {
      signalGroup(pid, "SIGKILL");
    }
    rmSync(this.stateDir, { recursive: true, force: true });
  }

  get log(): string {
    return this.output;
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") {
      throw error;
    }
  }
}
