// The Hono environment of the app: bindings from wrangler and the per-request variables middleware sets.
import type { z } from "zod";
import type { AppEnv } from "./config";
import type { Principal } from "./principal";
import type { ClusterConfig } from "../objects/api";
import type { RequestLimits } from "../shared/sql-text/limits";
import type { ClusterRouter, RoutingPolicy, RoutingSeams } from "./routing/router";
import type { RecentWrites } from "./data/recent-writes";

/** Everything a request needs beyond its own input, built once per environment by runtime.ts. */
export interface Runtime extends RoutingSeams {
  readonly config: ClusterConfig;
  readonly router: ClusterRouter;
  readonly limits: RequestLimits;
  readonly policy: RoutingPolicy;
  /** The writes this isolate acknowledged lately: the floor of its level-none reads (data/recent-writes.ts). */
  readonly recentWrites: RecentWrites;
}

export interface AppVariables {
  /** Set by the auth middleware once the request is authenticated. */
  principal: Principal | undefined;
  /** The cluster, router and limits for this request's environment; throws a 500 ApiError when misconfigured. */
  runtime: () => Runtime;
  /** The query schema of the matched route (routes/spec.ts), set by app.ts before the route's handlers run. */
  querySchema: z.ZodType | undefined;
  /** The database a per-database route addresses ("default": wrangler.toml's); unset on deployment routes. */
  database: string | undefined;
  /**
   * Set on the routes of a named database: records a node name in the catalog before an admin call adds or removes
   * it, so that a drop of the database wipes it (databases/lifecycle.ts, recordNode). Unset for the default database,
   * which is never dropped.
   */
  recordNode:
    | ((
        node: string,
        options: { readonly deadlineAt: number; readonly change: "addition" | "removal" },
      ) => Promise<void>)
    | undefined;
  /** Epoch milliseconds at which the request arrived (deadlines and `timings` count from here). */
  startedAt: number;
}

export interface AppBindings {
  Bindings: AppEnv;
  Variables: AppVariables;
}
