// Everything a request needs beyond its own input, built once per environment and shared by its requests.
import type { ClusterConfig } from "../objects/api";
import { ConfigError, parseClusterConfig, type AppEnv } from "./config";
import { DEFAULT_LIMITS, type RequestLimits } from "../shared/sql-text/limits";
import { durableObjectDirectory, type NodeDirectory } from "./directory";
import { tracedDirectory } from "./metrics/trace-context";
import { spannedDirectory, workerExporter } from "./tracing/otlp";
import { ApiError } from "./http/errors";
import type { Runtime } from "./types";
import { RecentWrites, recentWritesTiming } from "./data/recent-writes";
import { isolateLeaderCache, type LeaderCache } from "./routing/leader-cache";
import {
  ClusterRouter,
  DEFAULT_ROUTING_POLICY,
  defaultRouterDeps,
  type RouterBugs,
  type RoutingPolicy,
  type RoutingSeams,
} from "./routing/router";

/** How the app is wired; everything is optional and production needs none of it. Tests inject fakes here. */
export interface AppOptions extends Partial<RoutingSeams> {
  /** Builds the node directory; defaults to the Durable Objects of env.CLUSTER_NODE. */
  readonly directory?: (env: AppEnv, config: ClusterConfig) => NodeDirectory;
  /** Defaults to one cache per isolate. */
  readonly leaders?: LeaderCache;
  readonly policy?: Partial<RoutingPolicy>;
  readonly limits?: Partial<RequestLimits>;
  /** Test only: routing defects to put back (see routing/router-bugs.ts). */
  readonly routerBugs?: RouterBugs;
}

export type { Runtime } from "./types";

export function resolveLimits(options: AppOptions): RequestLimits {
  return { ...DEFAULT_LIMITS, ...options.limits };
}

/** Returns a function that builds (and caches per env object) the runtime, or throws a 500 naming the bad setting. */
export function runtimeFactory(options: AppOptions): (env: AppEnv) => Runtime {
  const built = new WeakMap<object, Runtime>();
  const clusterRuntime = clusterRuntimeFactory(options);
  return (env) => {
    const cached = built.get(env);
    if (cached !== undefined) {
      return cached;
    }
    const runtime = clusterRuntime(env, deploymentConfig(env));
    built.set(env, runtime);
    return runtime;
  };
}

/** The cluster of wrangler.toml (the default database), or a 500 naming the bad setting. */
export function deploymentConfig(env: AppEnv): ClusterConfig {
  try {
    return parseClusterConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      throw new ApiError(500, `the cluster configuration is invalid: ${error.message}`, { code: "CONFIG" });
    }
    throw error;
  }
}

/** Runtimes cached per env object, per cluster name (one per database generation); bounded. */
const MAX_CLUSTER_RUNTIMES = 256;

/** Builds (and caches per env object and cluster name) the runtime of any cluster: a database of the deployment. */
export function clusterRuntimeFactory(options: AppOptions): (env: AppEnv, config: ClusterConfig) => Runtime {
  const built = new WeakMap<object, Map<string, Runtime>>();
  const policy: RoutingPolicy = { ...DEFAULT_ROUTING_POLICY, ...options.policy };
  const limits = resolveLimits(options);
  const random = options.random ?? defaultRouterDeps.random;
  const now = options.now ?? defaultRouterDeps.now;
  const sleep = options.sleep ?? defaultRouterDeps.sleep;
  return (env, config) => {
    let perEnv = built.get(env);
    if (perEnv === undefined) {
      perEnv = new Map();
      built.set(env, perEnv);
    }
    const cached = perEnv.get(config.name);
    if (cached !== undefined) {
      return cached;
    }
    const traced = tracedDirectory((options.directory ?? durableObjectDirectory)(env, config));
    const exporter = workerExporter(env);
    const directory = exporter === null ? traced : spannedDirectory(traced, exporter);
    const router = new ClusterRouter({
      directory,
      leaders: options.leaders ?? isolateLeaderCache,
      policy,
      random,
      now,
      sleep,
      ...(options.routerBugs === undefined ? {} : { bugs: options.routerBugs }),
    });
    const recentWrites = new RecentWrites(recentWritesTiming(config));
    const runtime: Runtime = { config, router, limits, policy, now, random, sleep, recentWrites };
    if (perEnv.size >= MAX_CLUSTER_RUNTIMES) {
      perEnv.clear();
    }
    perEnv.set(config.name, runtime);
    return runtime;
  };
}
