// The SQL state machine behind the node runtime's StateMachinePort (src/objects/state-machine-port.ts).
import type { PrepareResult, StateMachinePort } from "../state-machine-port";
import type { SnapshotChunk, SnapshotId, SnapshotImage } from "../snapshot-types";
import type { SqlRequest, Statement, StatementResult } from "../../shared/sql";
import { encodeSqlRequest } from "./codec";
import { SnapshotError, type SnapshotOptions } from "./snapshot";
import { SnapshotInstaller, type SnapshotInstallerOptions } from "./snapshot-install";
import { ResultLimitError, SqlStateMachine, type SqlStateMachineOptions } from "./state-machine";
import { nodeError } from "../node-failure";
import { prepareRead, prepareWrite } from "./validate";
import { readDivergedFlag, readRecords, type CheckpointRecord, type DivergedFlag } from "../monitor/records";

/** crypto.getRandomValues fills at most 65,536 bytes per call. */
const RANDOM_BYTES_PER_CALL = 65_536;

export function secureRandomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let offset = 0; offset < length; offset += RANDOM_BYTES_PER_CALL) {
    crypto.getRandomValues(bytes.subarray(offset, Math.min(length, offset + RANDOM_BYTES_PER_CALL)));
  }
  return bytes;
}

export interface StateMachineOptions {
  readonly stateMachine?: SqlStateMachineOptions;
  readonly snapshot?: SnapshotOptions;
  readonly installer?: SnapshotInstallerOptions;
}

class SqlStateMachinePort implements StateMachinePort {
  private readonly machine: SqlStateMachine;
  private readonly installer: SnapshotInstaller;

  constructor(
    private readonly storage: DurableObjectStorage,
    private readonly options: StateMachineOptions,
  ) {
    this.machine = new SqlStateMachine(storage, options.stateMachine);
    this.installer = new SnapshotInstaller(storage, options.installer);
  }

  appliedIndex(): number {
    return this.machine.appliedIndex();
  }

  schemaInfo(): { readonly version: number; readonly hash: string } {
    return this.machine.schemaInfo();
  }

  prepareWrite(request: SqlRequest, context: { readonly nowMs: number }): PrepareResult<string> {
    const prepared = prepareWrite(request, { nowMs: context.nowMs, randomBytes: secureRandomBytes });
    if (!prepared.ok) {
      return prepared;
    }
    // Only the leader prepares writes, just before proposing: a write that could never finish is stopped here.
    const checked = this.machine.checkBeforeProposing(prepared.request);
    return checked.ok ? { ok: true, value: encodeSqlRequest(prepared.request) } : checked;
  }

  prepareRead(statements: readonly Statement[]): PrepareResult<readonly Statement[]> {
    const prepared = prepareRead(statements);
    return prepared.ok ? { ok: true, value: prepared.statements } : prepared;
  }

  rememberedResults(requestId: string): readonly StatementResult[] | null {
    return this.machine.rememberedResults(requestId);
  }

  reusedIdRefusal(request: SqlRequest): string | null {
    return this.machine.reusedIdRefusal(request);
  }

  applyEntry(entry: {
    readonly index: number;
    readonly kind: "normal" | "noop" | "config";
    readonly data: string;
  }): readonly StatementResult[] | null {
    return this.machine.applyEntry(entry);
  }

  query(statements: readonly Statement[], options: { readonly transaction: boolean }): readonly StatementResult[] {
    try {
      return this.machine.query(statements, options);
    } catch (error) {
      // Too large a result is the request's fault, not the node's: the caller gets a 4xx and nothing else happens.
      if (error instanceof ResultLimitError) {
        throw nodeError("INVALID_REQUEST", error.message, { retryable: false });
      }
      throw error;
    }
  }

  createSnapshotImage(): SnapshotImage {
    return this.machine.createSnapshot(this.options.snapshot);
  }

  stageSnapshotChunk(chunk: SnapshotChunk): boolean {
    try {
      this.installer.receive(chunk);
      return true;
    } catch (error) {
      if (error instanceof SnapshotError) {
        return false;
      }
      throw error;
    }
  }

  hasCompleteSnapshot(snapshot: SnapshotId): boolean {
    return this.installer.isComplete(snapshot);
  }

  installStagedSnapshot(snapshot: SnapshotId, options: { readonly alongside?: () => void } = {}): number {
    try {
      return this.installer.finish(snapshot, options.alongside === undefined ? {} : { alongside: options.alongside })
        .appliedIndex;
    } finally {
      this.machine.forgetCachedState();
    }
  }

  dumpSql(options: { readonly maxBytes?: number } = {}): string {
    return this.machine.dumpSql(options);
  }

  installRepairImage(snapshot: SnapshotId, options: { readonly minImageIndex: number }): number {
    try {
      return this.installer.finish(snapshot, { replace: { minImageIndex: options.minImageIndex } }).appliedIndex;
    } finally {
      this.machine.forgetCachedState();
    }
  }

  consistencyState(): { readonly records: readonly CheckpointRecord[]; readonly diverged: DivergedFlag | null } {
    return { records: readRecords(this.storage.kv), diverged: readDivergedFlag(this.storage.kv) };
  }
}

/** The deployment's variables this module reads (wrangler.toml [vars]); see README "Limits". */
export interface StateMachineEnv {
  readonly DHA_MAX_RESULT_ROWS?: string;
  readonly DHA_MAX_RESULT_BYTES?: string;
}

function positiveIntegerVar(env: StateMachineEnv, name: keyof StateMachineEnv): number | undefined {
  const text = env[name];
  if (text === undefined || text.trim() === "") {
    return undefined;
  }
  const value = Number(text);
  if (!/^\s*[0-9]+\s*$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    throw new Error(`${name} must be a positive integer, got ${JSON.stringify(text)}`);
  }
  return value;
}

/** The state machine's options from the deployment's variables; unset ones keep their defaults. Throws on garbage. */
export function stateMachineOptionsFromEnv(env: StateMachineEnv): StateMachineOptions {
  const maxResultRows = positiveIntegerVar(env, "DHA_MAX_RESULT_ROWS");
  const maxResultBytes = positiveIntegerVar(env, "DHA_MAX_RESULT_BYTES");
  return {
    stateMachine: {
      ...(maxResultRows === undefined ? {} : { maxResultRows }),
      ...(maxResultBytes === undefined ? {} : { maxResultBytes }),
    },
  };
}

/** The node runtime's state machine over the object's storage. */
export function createStateMachine(storage: DurableObjectStorage, options: StateMachineOptions = {}): StateMachinePort {
  return new SqlStateMachinePort(storage, options);
}
