/** One client operation as observed from outside: what was asked, what came back, and when. */
export interface Operation<Input, Output> {
  readonly clientId: number;
  readonly input: Input;
  /** undefined = indeterminate (timed out / unknown): may or may not have taken effect, any time after call. */
  readonly output: Output | undefined;
  readonly call: number; // logical or real time of invocation
  readonly ret: number; // time of return; Number.POSITIVE_INFINITY when indeterminate
}

/** One possible outcome of applying an operation to a state. */
export interface StepResult<State> {
  ok: boolean;
  state: State;
}

/**
 * A sequential specification. The checker never mutates states: `step` must return fresh states (or the same
 * object when nothing changed) and `hashState` must be a pure function that identifies a state exactly.
 */
export interface Model<State, Input, Output> {
  init(): State;
  /**
   * Apply input to state; `output` undefined means the op is indeterminate and any outcome is allowed.
   * Return one result, or a list when several successor states are possible (e.g. an indeterminate operation
   * whose effect depends on something the history does not show). Results with ok=false are discarded.
   * An indeterminate op that "never happened" needs no result here: the checker may always leave it out.
   */
  step(state: State, input: Input, output: Output | undefined): StepResult<State>[] | StepResult<State>;
  /** Split a history into independent sub-histories (e.g. per key); default: one partition. */
  partition?(history: readonly Operation<Input, Output>[]): Operation<Input, Output>[][];
  /** A string that identifies a state, for the search cache. Equal strings must mean equal states. */
  hashState(state: State): string;
  describeOperation?(input: Input, output: Output | undefined): string;
  /**
   * True when the operation never changes the state (a read). An indeterminate read-only operation constrains
   * nothing, so the checker drops it before searching. Default: no operation is read-only.
   */
  isReadOnly?(input: Input): boolean;
}

export type Verdict = "linearizable" | "not-linearizable" | "unknown";

export interface CheckResult {
  verdict: Verdict;
  operations: number;
  partitions: number;
  /** on failure: the longest linearizable prefix found / the ops that could not be placed, described */
  detail?: string;
  /** Search iterations used, summed over partitions (the unit of `maxSteps`). */
  steps?: number;
  /** Wall time the check took. */
  elapsedMs?: number;
}

export interface CheckOptions {
  /** Search iterations allowed over the whole check before giving up with "unknown". Default 10,000,000. */
  maxSteps?: number;
  /**
   * Search iterations one partition may use (partitions are searched round-robin, so an undecidable one cannot
   * starve the others). Default: maxSteps.
   */
  maxStepsPerPartition?: number;
  /** Wall-clock budget; none by default, so that a verdict depends only on the history and maxSteps. */
  timeoutMs?: number;
  /**
   * Memory cap for the search caches of the partitions being searched, in 32-bit words (each entry costs the linearized-set bitset plus a fixed
   * overhead); "unknown" when exceeded. Default 32 Mi words (128 MiB).
   */
  maxCacheWords?: number;
}
