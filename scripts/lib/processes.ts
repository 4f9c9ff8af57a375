// Local processes for the benchmark (scripts/bench) and the end-to-end tests (test/e2e, test/nemesis): free loopback
// ports, polling with a deadline, and process groups (a child and everything it spawns, e.g. wrangler and workerd)
// that keep the tail of their output and are always stopped, forcibly when they linger.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { delimiter, join, resolve } from "node:path";

export const REPO_ROOT = resolve(import.meta.dirname, "../..");
/** How long a process group may take to exit on SIGTERM before it is killed. */
export const STOP_TIMEOUT_MS = 5_000;
const MAX_OUTPUT_CHARS = 64 * 1024;
const POLL_INTERVAL_MS = 100;

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

/**
 * Polls `probe` until it returns a value; throws naming `what` once `timeoutMs` passed, or what `probe` throws. With
 * `retryErrors`, a probe that throws counts as "not yet" (a server still starting) and the timeout names its last error.
 */
export async function pollUntil<T>(
  what: string,
  options: { readonly timeoutMs: number; readonly intervalMs?: number; readonly retryErrors?: boolean },
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown = null;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) {
        return value;
      }
    } catch (error) {
      if (options.retryErrors !== true) {
        throw error;
      }
      lastError = error;
    }
    if (Date.now() > deadline) {
      const last = lastError === null ? "" : ` (last error: ${(lastError as Error).message ?? String(lastError)})`;
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}${last}`);
    }
    await sleep(options.intervalMs ?? POLL_INTERVAL_MS);
  }
}

/** A process group: one child started in its own group (and everything it spawned), with the tail of its output. */
export class ProcessGroup {
  private output = "";
  private exitedWith: string | null = null;
  private readonly exit: Promise<void>;

  constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString("utf8")).slice(-MAX_OUTPUT_CHARS);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    this.exit = new Promise((done) => {
      child.once("exit", (code, signal) => {
        this.exitedWith = `code ${code}, signal ${signal}`;
        done();
      });
    });
  }

  /** The process id of the group's leader, which is also the group's id (it is spawned detached). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** How the group's leader exited, or null while it runs. */
  get exited(): string | null {
    return this.exitedWith;
  }

  get log(): string {
    return this.output;
  }

  /** SIGTERM to the whole group, SIGKILL if it lingers, and SIGKILL again for children that outlive the leader. */
  async stop(): Promise<void> {
    const pid = this.child.pid;
    if (pid === undefined) {
      return;
    }
    if (this.exitedWith === null) {
      signalGroup(pid, "SIGTERM");
      await Promise.race([this.exit, sleep(STOP_TIMEOUT_MS)]);
    }
    signalGroup(pid, "SIGKILL");
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

/**
 * wrangler dev attaches a local trace collector to every worker unless X_LOCAL_OBSERVABILITY is "false". It turns
 * each invocation's events (one span per storage call) into JavaScript objects on the thread that runs the worker and
 * every object: after a snapshot install or a large append, a node stopped answering for 90 to 160 ms while it did.
 * On the platform the traces are collected outside the isolate, so the benchmark and the end-to-end tests run without
 * it (both the cluster and the baseline); set X_LOCAL_OBSERVABILITY=true to keep it.
 */
export function localObservability(): "true" | "false" {
  return process.env["X_LOCAL_OBSERVABILITY"] === "true" ? "true" : "false";
}

/** Starts `command` in a process group of its own, with the project's binaries first on the PATH, as under `npm run`. */
export function spawnGroup(
  name: string,
  command: string,
  args: readonly string[],
  cwd: string = REPO_ROOT,
): ProcessGroup {
  const child = spawn(command, args, {
    cwd,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    // wrangler, and Node 22 itself (the `node` devDependency), come from node_modules/.bin.
    env: {
      ...process.env,
      WRANGLER_SEND_METRICS: "false",
      X_LOCAL_OBSERVABILITY: localObservability(),
      PATH: `${join(REPO_ROOT, "node_modules", ".bin")}${delimiter}${process.env["PATH"] ?? ""}`,
    },
  });
  return new ProcessGroup(name, child);
}

/** Where a local wrangler dev listens and keeps its state: loopback only, on the given (free) ports. */
export function wranglerDevPlaceArgs(place: { port: number; inspectorPort: number; stateDir: string }): string[] {
  return [
    "--ip",
    "127.0.0.1",
    "--port",
    String(place.port),
    "--inspector-port",
    String(place.inspectorPort),
    "--persist-to",
    place.stateDir,
  ];
}

/** Waits until a server the group runs answers GET /livez with 200; throws with the group's output if it exits first. */
export async function waitUntilLive(group: ProcessGroup, baseUrl: string, timeoutMs: number): Promise<void> {
  await pollUntil(`${group.name} to answer /livez`, { timeoutMs, intervalMs: 200 }, async () => {
    if (group.exited !== null) {
      throw new Error(`${group.name} exited (${group.exited}) before answering /livez:\n${group.log}`);
    }
    const response = await fetch(`${baseUrl}/livez`, { signal: AbortSignal.timeout(2_000) }).catch(() => null);
    return response?.status === 200 ? true : undefined;
  });
}
