import { DurableObject } from "cloudflare:workers";
import type { Env } from "../worker/env";

/** One Raft node of a cluster; its id derives from the cluster name and the node name. */
export class ClusterNode extends DurableObject<Env> {
  /** Answers with the node's name as stored, proving the object and its storage are reachable. */
  ping(): { ok: true } {
    return { ok: true };
  }
}
