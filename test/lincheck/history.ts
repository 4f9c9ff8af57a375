import type { Operation } from "./types";

const DEFAULT_MAX_OPERATIONS = 1_000_000;

interface Pending<I> {
  readonly clientId: number;
  readonly input: I;
  readonly call: number;
}

/**
 * Records a client history as it happens: invoke when a request is sent, complete when its answer arrives, and
 * leave it open (or call `indeterminate`) when the client gave up without an answer. `operations()` turns every
 * still-open call into an indeterminate operation, which is what a timed-out request is.
 */
export class HistoryRecorder<I, O> {
  private readonly pending = new Map<number, Pending<I>>();
  private readonly openByClient = new Map<number, number>();
  private readonly finished: Operation<I, O>[] = [];
  private nextHandle = 0;
  private readonly maxOperations: number;

  constructor(options: { maxOperations?: number } = {}) {
    this.maxOperations = options.maxOperations ?? DEFAULT_MAX_OPERATIONS;
  }

  /** Records a call; returns the handle to complete it with. A client has at most one call open. */
  invoke(clientId: number, input: I, time: number): number {
    if (!Number.isFinite(time)) {
      throw new Error(`invoke time must be finite, got ${time}`);
    }
    const open = this.openByClient.get(clientId);
    if (open !== undefined) {
      throw new Error(`client ${clientId} invokes while its call #${open} is still open`);
    }
    if (this.nextHandle >= this.maxOperations) {
      throw new Error(`history is full: more than ${this.maxOperations} operations`);
    }
    const handle = this.nextHandle++;
    this.pending.set(handle, { clientId, input, call: time });
    this.openByClient.set(clientId, handle);
    return handle;
  }

  /** Records the answer to a call. */
  complete(handle: number, output: O, time: number): void {
    const open = this.pending.get(handle);
    // Checked before the call is closed, so that a bad time loses nothing.
    if (open !== undefined && (!(time >= open.call) || !Number.isFinite(time))) {
      throw new Error(`call #${handle}: return time ${time} is not a finite time at or after its call ${open.call}`);
    }
    const call = this.take(handle);
    this.finished.push({ clientId: call.clientId, input: call.input, output, call: call.call, ret: time });
  }

  /** Closes a call whose outcome is unknown (timed out, connection lost): it may take effect any time or never. */
  indeterminate(handle: number): void {
    const call = this.take(handle);
    this.finished.push({
      clientId: call.clientId,
      input: call.input,
      output: undefined,
      call: call.call,
      ret: Number.POSITIVE_INFINITY,
    });
  }

  /** Every operation so far, by call time; calls still open are indeterminate. */
  operations(): Operation<I, O>[] {
    const open = [...this.pending.values()].map((call): Operation<I, O> => ({
      clientId: call.clientId,
      input: call.input,
      output: undefined,
      call: call.call,
      ret: Number.POSITIVE_INFINITY,
    }));
    return [...this.finished, ...open].sort((a, b) => a.call - b.call);
  }

  get size(): number {
    return this.nextHandle;
  }

  private take(handle: number): Pending<I> {
    const call = this.pending.get(handle);
    if (call === undefined) {
      throw new Error(`call #${handle} is not open (never invoked, or already closed)`);
    }
    this.pending.delete(handle);
    this.openByClient.delete(call.clientId);
    return call;
  }
}
