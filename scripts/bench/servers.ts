// The systems the benchmark drives, each started from empty state on free loopback ports and always stopped: the
// cluster as `npm start` runs it (wrangler dev with the repository's config), the baseline (bench/baseline, wrangler dev on the
// same runtime) and, when an `etcd` binary is on the PATH, a three-member etcd cluster.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, cpSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join, resolve } from "node:path";

export const REPO_ROOT = resolve(import.meta.dirname, "../..");
const STARTUP_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 5_000;
const MAX_OUTPUT_CHARS = 64 * 1024;
const POLL_INTERVAL_MS = 200;

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

/** Polls `probe` until it returns a value; throws naming `what` once `timeoutMs` passed, or what `probe` throws. */
export async function pollUntil<T>(
  what: string,
  options: { readonly timeoutMs: number; readonly intervalMs?: number },
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}`);
    }
    await sleep(options.intervalMs ?? POLL_INTERVAL_MS);
  }
}

/** A process group the benchmark started (one child and everything it spawned), with the tail of its output. */
class ProcessGroup {
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

function spawnGroup(name: string, command: string, args: readonly string[], cwd: string = REPO_ROOT): ProcessGroup {
  const child = spawn(command, args, {
    cwd,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    // As under `npm run`: the project's binaries (wrangler, and Node 22 itself) first on the PATH.
    env: {
      ...process.env,
      WRANGLER_SEND_METRICS: "false",
      PATH: `${join(REPO_ROOT, "node_modules", ".bin")}${delimiter}${process.env["PATH"] ?? ""}`,
    },
  });
  return new ProcessGroup(name, child);
}

/** One `wrangler dev` server: the cluster or the baseline. */
export class WranglerServer {
  private constructor(
    private readonly group: ProcessGroup,
    readonly baseUrl: string,
    /** The V8 inspector of the worker's isolate (wrangler's inspector proxy). */
    readonly inspectorPort: number,
    private readonly stateDir: string,
  ) {}

  /**
   * `kind` "cluster": wrangler dev as `npm start` runs it (scripts/start.mjs: the repository's wrangler.toml and the
   * development tokens), with the test-only fault hook switched on so that the benchmark can cut a node off from its
   * peers. It runs from a copy of the sources taken now: wrangler dev reloads the worker (resetting every node) when
   * a source file changes, and a benchmark must measure one version of the code.
   * `kind` "baseline": wrangler dev with bench/baseline's config.
   */
  static async start(kind: "cluster" | "baseline"): Promise<WranglerServer> {
    const [port, inspectorPort] = [await freePort(), await freePort()];
    const stateDir = mkdtempSync(join(tmpdir(), `durable-ha-bench-${kind}-`));
    const common = [
      "--local",
      "--show-interactive-dev-session=false",
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--inspector-port",
      String(inspectorPort),
      "--persist-to",
      join(stateDir, "state"),
    ];
    const wrangler = join(REPO_ROOT, "node_modules", ".bin", "wrangler");
    let group: ProcessGroup;
    if (kind === "cluster") {
      const tree = copyOfSources(join(stateDir, "tree"));
      group = spawnGroup(
        kind,
        wrangler,
        ["dev", ...common, "--var", "DHA_TEST_FAULTS:1", "--var", "DHA_LOG_LEVEL:warn"],
        tree,
      );
    } else {
      group = spawnGroup(kind, wrangler, ["dev", ...common, "-c", "bench/baseline/wrangler.toml"]);
    }
    const server = new WranglerServer(group, `http://127.0.0.1:${port}`, inspectorPort, stateDir);
    try {
      await pollUntil(`${kind} to answer /livez`, { timeoutMs: STARTUP_TIMEOUT_MS }, async () => {
        if (group.exited !== null) {
          throw new Error(`${kind} exited (${group.exited}):\n${group.log}`);
        }
        const response = await fetch(`${server.baseUrl}/livez`, { signal: AbortSignal.timeout(2_000) }).catch(
          () => null,
        );
        return response?.status === 200 ? true : undefined;
      });
    } catch (error) {
      await server.stop();
      throw new Error(`${kind} did not start: ${String(error)}\n${group.log.slice(-4_000)}`, { cause: error });
    }
    return server;
  }

  async stop(): Promise<void> {
    await this.group.stop();
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/** What wrangler dev needs to run the cluster, copied (node_modules linked) into `dir`; returns `dir`. */
function copyOfSources(dir: string): string {
  cpSync(join(REPO_ROOT, "src"), join(dir, "src"), { recursive: true });
  for (const file of ["wrangler.toml", "package.json", "tsconfig.json", "tsconfig.base.json"]) {
    copyFileSync(join(REPO_ROOT, file), join(dir, file));
  }
  // The development tokens, as scripts/start.mjs provides them on a fresh clone.
  copyFileSync(join(REPO_ROOT, ".dev.vars.example"), join(dir, ".dev.vars"));
  symlinkSync(join(REPO_ROOT, "node_modules"), join(dir, "node_modules"), "dir");
  return dir;
}

/** Three etcd members on loopback, each with its own data directory; the benchmark talks to member 1's v3 gateway. */
export class EtcdCluster {
  private constructor(
    private readonly groups: readonly ProcessGroup[],
    readonly clientUrls: readonly string[],
    private readonly dataDir: string,
  ) {}

  /** The installed etcd's version line, or null when there is no `etcd` on the PATH. */
  static version(): string | null {
    const answer = spawnSync("etcd", ["--version"], { encoding: "utf8" });
    if (answer.error !== undefined || answer.status !== 0) {
      return null;
    }
    return answer.stdout.split("\n")[0]?.trim() ?? null;
  }

  static async start(): Promise<EtcdCluster> {
    const dataDir = mkdtempSync(join(tmpdir(), "durable-ha-bench-etcd-"));
    const members = [];
    for (const name of ["e1", "e2", "e3"]) {
      members.push({ name, client: await freePort(), peer: await freePort() });
    }
    const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(",");
    const groups = members.map((m) =>
      spawnGroup(`etcd ${m.name}`, "etcd", [
        "--name",
        m.name,
        "--data-dir",
        join(dataDir, m.name),
        "--listen-client-urls",
        `http://127.0.0.1:${m.client}`,
        "--advertise-client-urls",
        `http://127.0.0.1:${m.client}`,
        "--listen-peer-urls",
        `http://127.0.0.1:${m.peer}`,
        "--initial-advertise-peer-urls",
        `http://127.0.0.1:${m.peer}`,
        "--initial-cluster",
        initialCluster,
        "--initial-cluster-state",
        "new",
        "--initial-cluster-token",
        "durable-ha-bench",
        // The same timing as the cluster's defaults (wrangler.toml): 100 ms heartbeat, 1 s election timeout.
        "--heartbeat-interval",
        "100",
        "--election-timeout",
        "1000",
        "--log-level",
        "warn",
      ]),
    );
    const cluster = new EtcdCluster(
      groups,
      members.map((m) => `http://127.0.0.1:${m.client}`),
      dataDir,
    );
    try {
      await pollUntil("etcd to accept a write", { timeoutMs: STARTUP_TIMEOUT_MS }, async () => {
        const dead = groups.find((g) => g.exited !== null);
        if (dead !== undefined) {
          throw new Error(`${dead.name} exited (${dead.exited}):\n${dead.log}`);
        }
        const response = await fetch(`${cluster.clientUrls[0]}/v3/kv/put`, {
          method: "POST",
          body: JSON.stringify({ key: btoa("bench-ready"), value: btoa("1") }),
          signal: AbortSignal.timeout(2_000),
        }).catch(() => null);
        return response?.status === 200 ? true : undefined;
      });
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  async stop(): Promise<void> {
    await Promise.all(this.groups.map((g) => g.stop()));
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
