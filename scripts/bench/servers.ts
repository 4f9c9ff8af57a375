// The systems the benchmark drives, each started from empty state on free loopback ports and always stopped: the
// cluster as `npm start` runs it (wrangler dev with the repository's config), the baseline (bench/baseline, wrangler dev on the
// same runtime) and, when an `etcd` binary is on the PATH, a three-member etcd cluster.
import { spawnSync } from "node:child_process";
import { copyFileSync, cpSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  freePort,
  pollUntil,
  REPO_ROOT,
  spawnGroup,
  waitUntilLive,
  wranglerDevPlaceArgs,
  type ProcessGroup,
} from "../lib/processes";

const STARTUP_TIMEOUT_MS = 60_000;

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
   * `sourceRoot`: where the cluster's sources are copied from (scripts/bench/ab.ts runs an earlier commit's).
   */
  static async start(kind: "cluster" | "baseline", sourceRoot = REPO_ROOT): Promise<WranglerServer> {
    const [port, inspectorPort] = [await freePort(), await freePort()];
    const stateDir = mkdtempSync(join(tmpdir(), `durable-ha-bench-${kind}-`));
    const common = [
      "--local",
      "--show-interactive-dev-session=false",
      ...wranglerDevPlaceArgs({ port, inspectorPort, stateDir: join(stateDir, "state") }),
    ];
    const wrangler = join(REPO_ROOT, "node_modules", ".bin", "wrangler");
    let group: ProcessGroup;
    if (kind === "cluster") {
      const tree = copyOfSources(sourceRoot, join(stateDir, "tree"));
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
      await waitUntilLive(group, server.baseUrl, STARTUP_TIMEOUT_MS);
    } catch (error) {
      await server.stop();
      throw new Error(`${kind} did not start: ${String(error)}\n${group.log.slice(-4_000)}`, { cause: error });
    }
    return server;
  }

  /** The process group every process of this server runs in (wrangler and workerd). */
  get processGroupId(): number | undefined {
    return this.group.pid;
  }

  async stop(): Promise<void> {
    await this.group.stop();
    rmSync(this.stateDir, { recursive: true, force: true });
  }
}

/** The files of a source tree the cluster runs from (node_modules apart). */
export const CLUSTER_SOURCES = [
  "src",
  "wrangler.toml",
  "package.json",
  "tsconfig.json",
  "tsconfig.base.json",
  ".dev.vars.example",
];

/** What wrangler dev needs to run the cluster, copied from `root` (node_modules linked) into `dir`; returns `dir`. */
function copyOfSources(root: string, dir: string): string {
  for (const path of CLUSTER_SOURCES) {
    cpSync(join(root, path), join(dir, path), { recursive: true });
  }
  // The development tokens, as scripts/start.mjs provides them on a fresh clone.
  copyFileSync(join(root, ".dev.vars.example"), join(dir, ".dev.vars"));
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
