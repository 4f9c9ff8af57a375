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
