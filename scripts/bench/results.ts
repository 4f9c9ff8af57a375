// The shape of bench/results/latest.json: everything one `npm run bench` measured, with the machine it ran on.
import type { CatchUpRun, FailoverRun } from "./cluster";
import type { HeapSample } from "./heap";
import type { PointResult } from "./load";

export const RESULTS_FORMAT = "durable-ha-bench/1";
export const READ_LEVELS = ["none", "weak", "linearizable", "strong"] as const;
export type ReadLevel = (typeof READ_LEVELS)[number];

export interface Machine {
  readonly cpuModel: string;
  readonly cpus: number;
  readonly memoryGiB: number;
  readonly os: string;
  readonly node: string;
  /** 1-minute load average when the run started and ended: other work on the machine skews absolute figures. */
  readonly loadAverageAtStart: number;
  readonly loadAverageAtEnd: number;
}

export interface BilledPerWrite {
  readonly peerRpcs: number;
  readonly workerRpcs: number;
  readonly alarmWakeups: number;
  /** Every billed request (RPCs received by nodes plus alarm wake-ups) per acknowledged write. */
  readonly total: number;
  /** total less what the idle cluster bills in the same time (heartbeats and alarms go on under load too). */
  readonly aboveIdle: number;
  /** Calls between nodes that failed during the point, in all (not per write): timeouts under load show here. */
  readonly peerCallFailures: number;
  /** Seconds between the two scrapes the counts come from. */
  readonly windowS: number;
  /** False when a node restarted during the point (its counters reset). */
  readonly valid: boolean;
}

/** A write point of an object system: with the RPCs its objects received per acknowledged write. */
export type ObjectPoint = PointResult & { readonly rpcsPerWrite: number | null };

export interface WritePoint {
  readonly connections: number;
  readonly baseline: ObjectPoint;
  /**
   * The replication floor (bench/baseline's POST /fanout/execute): one object runs the write and sends it, batched,
   * to two others; answered when both copies are applied (`all`) or one (`majority`). No log, no Raft.
   */
  readonly replicationFloor: { readonly all: ObjectPoint; readonly majority: ObjectPoint };
  readonly cluster: PointResult & { readonly billed: BilledPerWrite | null };
  readonly etcd?: PointResult;
}

export interface ReadPoint {
  readonly connections: number;
  readonly baseline: PointResult;
  readonly cluster: Partial<Record<ReadLevel, PointResult>>;
  readonly etcd?: { readonly serializable: PointResult; readonly linearizable: PointResult };
}

export type Heap = HeapSample | { readonly unavailable: string };

export interface Summary {
  readonly medianMs: number;
  readonly worstMs: number;
  readonly runs: number;
}

export interface TargetCheck {
  readonly target: string;
  readonly measured: string;
  /** null: could not be checked in this run (say why in `measured`). */
  readonly met: boolean | null;
}

export interface BenchResults {
  readonly format: typeof RESULTS_FORMAT;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly machine: Machine;
  readonly options: Record<string, unknown>;
  readonly etcdVersion: string | null;
  readonly electionTimeoutMs: number;
  readonly writes: readonly WritePoint[];
  readonly reads: readonly ReadPoint[];
  /** GET /livez on the cluster's worker: no object touched, the runtime's floor. */
  readonly floor: readonly PointResult[];
  readonly failover: {
    readonly runs: readonly FailoverRun[];
    readonly crash: Summary | null;
    readonly cutOff: Summary | null;
  };
  readonly catchUp: readonly CatchUpRun[];
  readonly idle: {
    readonly seconds: number;
    readonly alarmWakeupsPerS: number;
    readonly peerRpcsPerS: number;
    readonly valid: boolean;
  } | null;
  readonly memory: {
    readonly note: string;
    readonly cluster: { readonly atRest: Heap; readonly at128Clients: Heap | null; readonly afterRun: Heap };
    readonly baseline: { readonly atRest: Heap; readonly at128Clients: Heap | null };
    readonly soak: readonly { readonly atS: number; readonly heap: Heap }[];
  };
  readonly targets: readonly TargetCheck[];
}
