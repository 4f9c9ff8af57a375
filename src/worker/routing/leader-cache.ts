// Which node led each cluster when we last asked: a hint, refreshed whenever a node says otherwise.

export class LeaderCache {
  private readonly leaders = new Map<string, string>();

  constructor(private readonly maxClusters = 64) {}

  get(cluster: string): string | undefined {
    return this.leaders.get(cluster);
  }

  set(cluster: string, leader: string): void {
    this.leaders.delete(cluster);
    if (this.leaders.size >= this.maxClusters) {
      // Bounded: drop the least recently set cluster.
      const oldest = this.leaders.keys().next();
      if (!oldest.done) {
        this.leaders.delete(oldest.value);
      }
    }
    this.leaders.set(cluster, leader);
  }

  /** Forgets the hint if it still names `node` (another request may have refreshed it meanwhile). */
  forget(cluster: string, node: string): void {
    if (this.leaders.get(cluster) === node) {
      this.leaders.delete(cluster);
    }
  }
}

/** One per isolate: every request of this worker instance shares what the others learned. */
export const isolateLeaderCache = new LeaderCache();

/**
 * One cluster's entry of the cache, with the rules for what may set it: a node naming the leader (a NOT_LEADER
 * hint, waitForLeader, a finished transfer), or a success of a call that only the leader serves. A call that any
 * node may answer (reads at level none, backups on nodes that do not check their role) teaches nothing.
 */
export class ClusterLeaderHint {
  constructor(
    private readonly cache: LeaderCache,
    private readonly cluster: string,
  ) {}

  get(): string | undefined {
    return this.cache.get(this.cluster);
  }

  /** A node said who leads. */
  learn(leader: string): void {
    this.cache.set(this.cluster, leader);
  }

  /** `node` served a call that only the leader serves. */
  servedAsLeader(node: string): void {
    this.cache.set(this.cluster, node);
  }

  /** The hint named `node` and `node` turned out not to lead (or not to answer). */
  forget(node: string): void {
    this.cache.forget(this.cluster, node);
  }
}
