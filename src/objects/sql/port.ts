// The SQL state machine behind the node runtime's StateMachinePort (src/objects/state-machine-port.ts).
import type { PrepareResult, SnapshotImage, StateMachinePort } from "../state-machine-port";
import type { SqlRequest, Statement, StatementResult } from "../../shared/sql";
import { encodeSqlRequest } from "./codec";
import { SnapshotError, type SnapshotOptions } from "./snapshot";
import { SnapshotInstaller, type SnapshotInstallerOptions } from "./snapshot-install";
import { SqlStateMachine, type SqlStateMachineOptions } from "./state-machine";
import { prepareRead, prepareWrite } from "./validate";

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
    storage: DurableObjectStorage,
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
    return prepared.ok ? { ok: true, value: encodeSqlRequest(prepared.request) } : prepared;
  }

  prepareRead(statements: readonly Statement[]): PrepareResult<readonly Statement[]> {
    const prepared = prepareRead(statements);
    return prepared.ok ? { ok: true, value: prepared.statements } : prepared;
  }

  rememberedResults(requestId: string): readonly StatementResult[] | null {
    return this.machine.rememberedResults(requestId);
  }

  applyEntry(entry: { readonly index: number; readonly kind: "normal" | "noop" | "config"; readonly data: string }): readonly StatementResult[] | null {
    return this.machine.applyEntry(entry);
  }

  query(statements: readonly Statement[], options: { readonly transaction: boolean }): readonly StatementResult[] {
    return this.machine.query(statements, options);
  }

  createSnapshotImage(): SnapshotImage {
    const image = this.machine.createSnapshot(this.options.snapshot);
    return { appliedIndex: image.index, chunks: image.chunks };
  }

  stageSnapshotChunk(chunk: {
    readonly snapshotIndex: number;
    readonly snapshotTerm: number;
    readonly seq: number;
    readonly last: boolean;
    readonly data: string;
  }): boolean {
    try {
      this.installer.receive(chunk);
      return true;
    } catch (error) {
      if (error instanceof SnapshotError) return false;
      throw error;
    }
  }

  hasCompleteSnapshot(snapshot: { readonly snapshotIndex: number; readonly snapshotTerm: number }): boolean {
    return this.installer.isComplete(snapshot);
  }

  installStagedSnapshot(snapshot: { readonly snapshotIndex: number; readonly snapshotTerm: number }): number {
    return this.installer.finish(snapshot).appliedIndex;
  }

  dumpSql(): string {
    return this.machine.dumpSql();
  }
}

/** The node runtime's state machine over the object's storage. */
export function createStateMachine(storage: DurableObjectStorage, options: StateMachineOptions = {}): StateMachinePort {
  return new SqlStateMachinePort(storage, options);
}
