// Wing & Gong / Lowe (WGL) linearizability search with Porcupine's memoisation, per partition (P-compositionality:
// a history is linearizable iff each of its independent sub-histories is). The partitions are searched interleaved,
// round-robin in slices of steps, each within its own step budget: one partition the search cannot decide does not
// hide another that is provably violated, and the first violation found ends the check.
//
// The history becomes a doubly linked list of call and return entries in real-time order. The search repeatedly
// takes an operation whose call is before the first pending return, applies it to the model and "lifts" both its
// entries out of the list; reaching a return entry means that operation had to take effect already and no order
// tried so far allows it, so the search backtracks. A cache of (set of linearized operations, model state) pairs
// already explored prunes the exponential blow-up: the future of the search depends on nothing else.
//
// Indeterminate operations (output undefined) return at +infinity: they may be linearized anywhere after their
// call, and since they may also never have taken effect the search succeeds as soon as every determinate operation
// is linearized. Additions to Porcupine: the cache also prunes a configuration dominated by an explored one
// (ExploredCache), candidates are tried in "must take effect soonest" order (enterLevel), and cache entries store
// only the window of the linearized set (PrefixBitset), so that long histories with timeouts stay tractable.

import { Bitset, hashString32, PrefixBitset, zobristKeys } from "./bitset";
import type { CheckOptions, CheckResult, Model, Operation, StepResult } from "./types";

const DEFAULT_MAX_STEPS = 10_000_000;
/** Reading the clock costs far more than one search iteration: look at it once per this many. */
const CLOCK_CHECK_INTERVAL_STEPS = 1024;
/** Steps one partition's search runs before the next partition gets its turn. */
const SLICE_STEPS = 4096;
/** Caps the memory the search cache may hold, counting the bitset words each entry stores. */
const DEFAULT_MAX_CACHE_WORDS = 32 * 1024 * 1024;
const CACHE_ENTRY_OVERHEAD_WORDS = 16;
const DETAIL_OPS_LIMIT = 10;
const HEAD_NODE = 0;
const NO_NODE = -1;

interface Budget {
  readonly maxSteps: number;
  readonly deadlineMs: number;
  stepsUsed: number;
  /** Steps one partition may use before it is left undecided. */
  readonly maxStepsPerPartition: number;
  /** Over the caches of the partitions still searched (a decided partition's cache is dropped). */
  readonly maxCacheWords: number;
  cacheWordsUsed: number;
  exhaustedBecause?: string;
}

type PartitionOutcome =
  { kind: "linearizable" } | { kind: "not-linearizable"; detail: string } | { kind: "unknown"; detail: string };

export function checkLinearizability<S, I, O>(
  model: Model<S, I, O>,
  history: readonly Operation<I, O>[],
  options: CheckOptions = {},
): CheckResult {
  const startedMs = performance.now();
  const maxSteps = options.maxSteps ?? DEFAULT_MAX_STEPS;
  if (!Number.isInteger(maxSteps) || maxSteps < 0) {
    throw new RangeError(`maxSteps must be a non-negative integer, got ${maxSteps}`);
  }
  const timeoutMs = options.timeoutMs ?? Number.POSITIVE_INFINITY;
  if (!(timeoutMs >= 0)) {
    throw new RangeError(`timeoutMs must be >= 0, got ${timeoutMs}`);
  }
  const maxCacheWords = options.maxCacheWords ?? DEFAULT_MAX_CACHE_WORDS;
  if (!(maxCacheWords >= 0)) {
    throw new RangeError(`maxCacheWords must be >= 0, got ${maxCacheWords}`);
  }
  history.forEach((op, index) => validateOperation(op, index));

  const maxStepsPerPartition = options.maxStepsPerPartition ?? maxSteps;
  if (!Number.isInteger(maxStepsPerPartition) || maxStepsPerPartition < 0) {
    throw new RangeError(`maxStepsPerPartition must be a non-negative integer, got ${maxStepsPerPartition}`);
  }
  const partitions = model.partition ? model.partition(history) : [history.slice()];
  assertPartitionsCoverHistory(partitions, history.length);
  const budget: Budget = {
    maxSteps,
    deadlineMs: startedMs + timeoutMs,
    stepsUsed: 0,
    maxStepsPerPartition,
    maxCacheWords,
    cacheWordsUsed: 0,
  };
  const result = (verdict: CheckResult["verdict"], detail?: string): CheckResult => ({
    verdict,
    operations: history.length,
    partitions: partitions.length,
    ...(detail === undefined ? {} : { detail }),
    steps: budget.stepsUsed,
    elapsedMs: performance.now() - startedMs,
  });

  // Round-robin: every partition still undecided runs one slice per round, until each is decided or out of budget.
  let searching = partitions.map((partition, index) => ({
    where: `partition ${index + 1} of ${partitions.length}`,
    search: searchPartition(
      model,
      partition.filter((op) => !(op.output === undefined && model.isReadOnly?.(op.input) === true)),
      budget,
    ),
  }));
  const undecided: string[] = [];
  while (searching.length > 0) {
    const stillSearching: typeof searching = [];
    for (const entry of searching) {
      const step = entry.search.next();
      if (!step.done) {
        stillSearching.push(entry);
        continue;
      }
      const outcome = step.value;
      if (outcome.kind === "not-linearizable") {
        return result("not-linearizable", `${entry.where}: ${outcome.detail}`);
      }
      if (outcome.kind === "unknown") {
        undecided.push(`${entry.where}: ${outcome.detail}`);
      }
    }
    searching = stillSearching;
  }
  if (undecided.length > 0) {
    const more = undecided.length > 1 ? ` (and ${undecided.length - 1} more undecided partitions)` : "";
    return result("unknown", `${undecided[0]}${more}`);
  }
  return result("linearizable");
}

function validateOperation<I, O>(op: Operation<I, O>, index: number): void {
  const problem = operationProblem(op);
  if (problem !== undefined) {
    throw new Error(
      `history[${index}] is malformed: ${problem} (call=${op.call}, ret=${op.ret}, client=${op.clientId})`,
    );
  }
}

function operationProblem<I, O>(op: Operation<I, O>): string | undefined {
  if (!Number.isFinite(op.call)) {
    return "call time must be a finite number";
  }
  if (op.output === undefined) {
    return op.ret === Number.POSITIVE_INFINITY
      ? undefined
      : "an indeterminate operation (output undefined) must have ret = +Infinity";
  }
  if (!Number.isFinite(op.ret)) {
    return "an operation with an output must have a finite return time";
  }
  if (op.ret < op.call) {
    return "return time is before call time";
  }
  return undefined;
}

function assertPartitionsCoverHistory<I, O>(
  partitions: readonly (readonly Operation<I, O>[])[],
  historyLength: number,
): void {
  const covered = partitions.reduce((sum, part) => sum + part.length, 0);
  if (covered !== historyLength) {
    throw new Error(
      `model.partition returned ${covered} operations for a history of ${historyLength}: it must place each exactly once`,
    );
  }
}

/** The linked list of call and return entries of one partition, in arrays indexed by node (0 is the head). */
interface EntryList {
  readonly nodeOp: Int32Array;
  readonly nodeIsCall: Uint8Array;
  /** For a call node, its return node. */
  readonly matchOf: Int32Array;
  readonly next: Int32Array;
  readonly prev: Int32Array;
}

function buildEntryList<I, O>(ops: readonly Operation<I, O>[]): EntryList {
  const events: { time: number; isCall: boolean; op: number }[] = [];
  ops.forEach((op, index) => {
    events.push({ time: op.call, isCall: true, op: index });
    events.push({ time: op.output === undefined ? Number.POSITIVE_INFINITY : op.ret, isCall: false, op: index });
  });
  // Calls before returns at equal times, so that operations touching at an instant count as concurrent.
  events.sort((a, b) => {
    if (a.time !== b.time) {
      return a.time < b.time ? -1 : 1;
    }
    if (a.isCall !== b.isCall) {
      return a.isCall ? -1 : 1;
    }
    return a.op - b.op;
  });
  const nodeCount = events.length + 1;
  const list: EntryList = {
    nodeOp: new Int32Array(nodeCount).fill(-1),
    nodeIsCall: new Uint8Array(nodeCount),
    matchOf: new Int32Array(nodeCount).fill(NO_NODE),
    next: new Int32Array(nodeCount),
    prev: new Int32Array(nodeCount),
  };
  const callNodeOfOp = new Int32Array(ops.length).fill(NO_NODE);
  events.forEach((event, index) => {
    const node = index + 1;
    list.nodeOp[node] = event.op;
    list.nodeIsCall[node] = event.isCall ? 1 : 0;
    if (event.isCall) {
      callNodeOfOp[event.op] = node;
    } else {
      const callNode = at(callNodeOfOp, event.op);
      if (callNode === NO_NODE) {
        throw new Error(`invariant: return of operation ${event.op} sorted before its call`);
      }
      list.matchOf[callNode] = node;
    }
  });
  for (let node = 0; node < nodeCount; node++) {
    list.next[node] = node + 1 < nodeCount ? node + 1 : NO_NODE;
    list.prev[node] = node - 1;
  }
  return list;
}

function at(array: Int32Array | Uint32Array | Uint8Array, index: number): number {
  const value = array[index];
  if (value === undefined) {
    throw new Error(`invariant: index ${index} outside an array of ${array.length}`);
  }
  return value;
}

/** Removes a call entry and its return entry from the list; they keep their own links for unlift. */
function lift(list: EntryList, callNode: number): void {
  const { next, prev } = list;
  next[at(prev, callNode)] = at(next, callNode);
  prev[at(next, callNode)] = at(prev, callNode);
  const returnNode = at(list.matchOf, callNode);
  next[at(prev, returnNode)] = at(next, returnNode);
  const afterReturn = at(next, returnNode);
  if (afterReturn !== NO_NODE) {
    prev[afterReturn] = at(prev, returnNode);
  }
}

/** Undoes lift: the exact reverse order restores the links even when the two entries were adjacent. */
function unlift(list: EntryList, callNode: number): void {
  const { next, prev } = list;
  const returnNode = at(list.matchOf, callNode);
  next[at(prev, returnNode)] = returnNode;
  const afterReturn = at(next, returnNode);
  if (afterReturn !== NO_NODE) {
    prev[afterReturn] = returnNode;
  }
  next[at(prev, callNode)] = callNode;
  prev[at(next, callNode)] = callNode;
}

function okSuccessors<S>(result: StepResult<S>[] | StepResult<S>): StepResult<S>[] {
  if (Array.isArray(result)) {
    return result.filter((r) => r.ok);
  }
  return result.ok ? [result] : [];
}

function budgetExhausted(budget: Budget): boolean {
  budget.stepsUsed++;
  if (budget.stepsUsed > budget.maxSteps) {
    budget.exhaustedBecause = `step budget of ${budget.maxSteps} exceeded`;
    return true;
  }
  if (budget.deadlineMs !== Number.POSITIVE_INFINITY && budget.stepsUsed % CLOCK_CHECK_INTERVAL_STEPS === 1) {
    if (performance.now() >= budget.deadlineMs) {
      budget.exhaustedBecause = `time budget exceeded after ${budget.stepsUsed} steps`;
      return true;
    }
  }
  return false;
}

/**
 * Which operations are linearized. Determinate and indeterminate operations are kept in separate bitsets because
 * the cache compares them differently (see ExploredCache); the Zobrist hash covers the determinate part only.
 * Determinate operations are numbered in call order, so their set is a long run of ones and a short window.
 */
class LinearizedSet {
  readonly determinate: PrefixBitset;
  readonly indeterminate: Bitset;
  determinateHash = 0;
  private readonly slotOf: Int32Array;
  private readonly zobrist: Uint32Array;

  constructor(private readonly isDeterminate: readonly boolean[]) {
    this.slotOf = new Int32Array(isDeterminate.length);
    let determinateCount = 0;
    let indeterminateCount = 0;
    isDeterminate.forEach((determinate, op) => {
      this.slotOf[op] = determinate ? determinateCount++ : indeterminateCount++;
    });
    this.determinate = new PrefixBitset(determinateCount);
    this.indeterminate = new Bitset(indeterminateCount);
    this.zobrist = zobristKeys(determinateCount);
  }

  add(op: number): void {
    const slot = at(this.slotOf, op);
    if (this.isDeterminate[op] === true) {
      this.determinate.set(slot);
      this.determinateHash = (this.determinateHash ^ at(this.zobrist, slot)) >>> 0;
    } else {
      this.indeterminate.set(slot);
    }
  }

  remove(op: number): void {
    const slot = at(this.slotOf, op);
    if (this.isDeterminate[op] === true) {
      this.determinate.clear(slot);
      this.determinateHash = (this.determinateHash ^ at(this.zobrist, slot)) >>> 0;
    } else {
      this.indeterminate.clear(slot);
    }
  }
}

interface CacheEntry {
  readonly determinateLowWord: number;
  readonly determinateWindow: Uint32Array;
  readonly indeterminate: Uint32Array;
  readonly stateKey: string;
}

/** True when every bit of `inner` is also set in `outer` (same length). */
function isSubsetOf(inner: Uint32Array, outer: Uint32Array): boolean {
  for (let i = 0; i < inner.length; i++) {
    if (((inner[i] ?? 0) & ~(outer[i] ?? 0)) !== 0) {
      return false;
    }
  }
  return true;
}

function entryWords(entry: CacheEntry): number {
  return entry.determinateWindow.length + entry.indeterminate.length + CACHE_ENTRY_OVERHEAD_WORDS;
}

/**
 * The configurations (linearized set, model state) the search has entered. Porcupine keys on equality; here a
 * configuration is also skipped when an entered one has the same state and determinate set and linearized a
 * subset of its indeterminate operations: that one kept more options open (an indeterminate operation may take
 * effect later or never, and its return never blocks), so every completion of the new configuration is a
 * completion of it too, and it has been or is being explored. This collapses the 2^k ways of placing k timed-out
 * writes that exact matching would tell apart.
 */
class ExploredCache {
  private readonly buckets = new Map<number, CacheEntry[]>();
  wordsUsed = 0;

  /** Records the configuration and returns true, or returns false when an entered configuration covers it. */
  enter(set: LinearizedSet, stateKey: string): boolean {
    const key = (set.determinateHash ^ Math.imul(hashString32(stateKey), 0x9e3779b1)) >>> 0;
    const bucket = this.buckets.get(key) ?? [];
    const covered = new Set<CacheEntry>();
    for (const entry of bucket) {
      if (
        entry.stateKey !== stateKey ||
        !set.determinate.equalsWindow(entry.determinateLowWord, entry.determinateWindow)
      ) {
        continue;
      }
      if (isSubsetOf(entry.indeterminate, set.indeterminate.words)) {
        return false;
      }
      if (isSubsetOf(set.indeterminate.words, entry.indeterminate)) {
        covered.add(entry);
      }
    }
    // Entries the new one covers can go: whatever they would prune, it prunes.
    const kept = covered.size === 0 ? bucket : bucket.filter((entry) => !covered.has(entry));
    for (const entry of covered) {
      this.wordsUsed -= entryWords(entry);
    }
    const entry: CacheEntry = {
      determinateLowWord: set.determinate.lowWord,
      determinateWindow: set.determinate.windowWords(),
      indeterminate: set.indeterminate.snapshotWords(),
      stateKey,
    };
    kept.push(entry);
    this.buckets.set(key, kept);
    this.wordsUsed += entryWords(entry);
    return true;
  }
}

/** Searches one partition, yielding every SLICE_STEPS steps so that the others get their turn; returns its outcome. */
function* searchPartition<S, I, O>(
  model: Model<S, I, O>,
  unordered: readonly Operation<I, O>[],
  budget: Budget,
): Generator<void, PartitionOutcome, void> {
  // Call order keeps the linearized set a prefix plus a small window (see PrefixBitset); the sort is stable.
  const ops = [...unordered].sort((a, b) => a.call - b.call);
  const opCount = ops.length;
  const isDeterminate = ops.map((op) => op.output !== undefined);
  let determinateLeft = isDeterminate.filter(Boolean).length;
  if (determinateLeft === 0) {
    return { kind: "linearizable" };
  }

  const list = buildEntryList(ops);
  const linearized = new LinearizedSet(isDeterminate);
  const cache = new ExploredCache();

  // Per search level: the candidates in the order they are tried, the next one to try, and the operation whose
  // return bounds the level (it must be linearized before anything that is called after that return).
  const levelCandidates: Int32Array[] = [];
  const levelNext = new Int32Array(opCount + 1);
  const levelBlockedOp = new Int32Array(opCount + 1);
  // Per linearized operation: what is needed to undo it and to try its next successor state.
  const frameNode = new Int32Array(opCount);
  const frameAlternative = new Int32Array(opCount);
  const frameState: S[] = [];
  const frameSuccessors: StepResult<S>[][] = [];
  let depth = 0;
  let state = model.init();

  let bestOrder: number[] | undefined;
  let bestBlockedOp = -1;

  /**
   * The candidates of a level are the operations called before the first pending return, whose operation (the
   * blocked one) must take effect before anything called later. Any order of trying them is complete; this one
   * finds witnesses soonest. If the blocked operation can take effect now, try it first (it is the one that must go
   * soonest), then other determinate operations by return time, then indeterminate ones by call time: trying
   * those last means a configuration that left a timed-out operation out is explored before the ones that put it
   * in, which it dominates. If the blocked operation cannot take effect now, something must change the state
   * first: try the indeterminate operations first (a timed-out write that did happen is the usual explanation),
   * then the determinate ones by return time.
   */
  const enterLevel = (): void => {
    const candidates: number[] = [];
    let node = at(list.next, HEAD_NODE);
    while (node !== NO_NODE && list.nodeIsCall[node] === 1) {
      candidates.push(node);
      node = at(list.next, node);
    }
    // While a determinate operation is left its return is in the list, before every indeterminate (+inf) one.
    if (node === NO_NODE) {
      throw new Error("invariant: no pending return while determinate operations remain");
    }
    const blockedOp = at(list.nodeOp, node);
    const blocked = ops[blockedOp];
    if (blocked === undefined) {
      throw new Error("invariant: entry names an unknown operation");
    }
    const blockedCanGoNow = okSuccessors(model.step(state, blocked.input, blocked.output)).length > 0;
    const nodeCount = list.nodeOp.length;
    const sortKey = (callNode: number): number => {
      const determinate = isDeterminate[at(list.nodeOp, callNode)] === true;
      if (determinate) {
        return at(list.matchOf, callNode) + (blockedCanGoNow ? 0 : nodeCount);
      }
      return callNode + (blockedCanGoNow ? nodeCount : 0);
    };
    const ordered = (
      blockedCanGoNow ? candidates : candidates.filter((callNode) => at(list.nodeOp, callNode) !== blockedOp)
    )
      .map((callNode) => ({ callNode, key: sortKey(callNode) }))
      .sort((a, b) => a.key - b.key);
    levelCandidates[depth] = Int32Array.from(ordered, (candidate) => candidate.callNode);
    levelNext[depth] = 0;
    levelBlockedOp[depth] = blockedOp;
  };

  /** Linearizes the op of `callNode` with the first of its successor states from `fromAlternative` not yet explored. */
  const tryLinearize = (callNode: number, successors: StepResult<S>[], fromAlternative: number): boolean => {
    const op = at(list.nodeOp, callNode);
    linearized.add(op);
    for (let alternative = fromAlternative; alternative < successors.length; alternative++) {
      const successor = successors[alternative];
      if (successor === undefined) {
        throw new Error("invariant: successor index out of range");
      }
      if (!cache.enter(linearized, model.hashState(successor.state))) {
        continue;
      }
      frameNode[depth] = callNode;
      frameAlternative[depth] = alternative;
      frameState[depth] = state;
      frameSuccessors[depth] = successors;
      depth++;
      state = successor.state;
      lift(list, callNode);
      if (isDeterminate[op] === true) {
        determinateLeft--;
      }
      return true;
    }
    linearized.remove(op);
    return false;
  };

  /** Undoes the most recent linearization; returns its call node. */
  const backtrack = (): number => {
    if (depth === 0) {
      throw new Error("invariant: backtracking past the bottom of the stack");
    }
    depth--;
    const callNode = at(frameNode, depth);
    const op = at(list.nodeOp, callNode);
    state = frameState[depth] as S;
    linearized.remove(op);
    unlift(list, callNode);
    if (isDeterminate[op] === true) {
      determinateLeft++;
    }
    return callNode;
  };

  const recordDeadEnd = (): void => {
    if (bestOrder !== undefined && depth <= bestOrder.length) {
      return;
    }
    bestOrder = Array.from(frameNode.subarray(0, depth), (node) => at(list.nodeOp, node));
    bestBlockedOp = at(levelBlockedOp, depth);
  };

  let partitionSteps = 0;
  let cacheWordsCounted = 0;
  /** Keeps the check-wide count of cache words in step with this partition's cache. */
  const countCacheWords = (): void => {
    budget.cacheWordsUsed += cache.wordsUsed - cacheWordsCounted;
    cacheWordsCounted = cache.wordsUsed;
  };
  /** Ends this partition's search: its cache is dropped, so its words no longer count. */
  const finish = (outcome: PartitionOutcome): PartitionOutcome => {
    budget.cacheWordsUsed -= cacheWordsCounted;
    cacheWordsCounted = 0;
    return outcome;
  };

  enterLevel();
  for (;;) {
    countCacheWords();
    const overPartitionBudget = ++partitionSteps > budget.maxStepsPerPartition;
    if (budgetExhausted(budget) || overPartitionBudget || budget.cacheWordsUsed > budget.maxCacheWords) {
      const reason =
        budget.exhaustedBecause ??
        (overPartitionBudget
          ? `the partition's step budget of ${budget.maxStepsPerPartition} exceeded`
          : `search cache exceeded its memory budget after ${budget.stepsUsed} steps`);
      const deepest = Math.max(bestOrder?.length ?? 0, depth);
      return finish({ kind: "unknown", detail: `${reason}; ${opCount} operations, deepest linearization ${deepest}` });
    }
    if (partitionSteps % SLICE_STEPS === 0) {
      yield;
    }
    const candidates = levelCandidates[depth];
    if (candidates === undefined) {
      throw new Error("invariant: a search level without candidates");
    }
    const next = at(levelNext, depth);
    if (next < candidates.length) {
      levelNext[depth] = next + 1;
      const callNode = at(candidates, next);
      const operation = ops[at(list.nodeOp, callNode)];
      if (operation === undefined) {
        throw new Error("invariant: entry names an unknown operation");
      }
      if (tryLinearize(callNode, okSuccessors(model.step(state, operation.input, operation.output)), 0)) {
        if (determinateLeft === 0) {
          return finish({ kind: "linearizable" });
        }
        enterLevel();
      }
      continue;
    }
    // Every candidate failed: the blocking operation cannot take effect after this prefix. Undo the last choice
    // and try its next successor state; its level then goes on with its next candidate.
    recordDeadEnd();
    if (depth === 0) {
      return finish({ kind: "not-linearizable", detail: describeFailure(model, ops, bestOrder ?? [], bestBlockedOp) });
    }
    const callNode = backtrack();
    const successors = frameSuccessors[depth];
    if (successors === undefined) {
      throw new Error("invariant: missing successors for a stack frame");
    }
    if (tryLinearize(callNode, successors, at(frameAlternative, depth) + 1)) {
      if (determinateLeft === 0) {
        return finish({ kind: "linearizable" });
      }
      enterLevel();
    }
  }
}

export function describeOperation<S, I, O>(model: Model<S, I, O>, op: Operation<I, O>): string {
  const what = model.describeOperation
    ? model.describeOperation(op.input, op.output)
    : `${JSON.stringify(op.input)} -> ${op.output === undefined ? "?" : JSON.stringify(op.output)}`;
  const until = op.output === undefined ? "?" : String(op.ret);
  return `client ${op.clientId} [${op.call}, ${until}] ${what}`;
}

function describeFailure<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  bestOrder: readonly number[],
  blockedOp: number,
): string {
  const describe = (index: number): string => {
    const op = ops[index];
    return op === undefined ? `#${index}?` : `#${index} ${describeOperation(model, op)}`;
  };
  const blocked = ops[blockedOp];
  const placed = new Set(bestOrder);
  // The operations that could have gone next: not yet placed and called before the blocked one returned.
  const candidates = ops
    .map((op, index) => ({ op, index }))
    .filter(({ op, index }) => !placed.has(index) && blocked !== undefined && op.call <= blocked.ret)
    .map(({ index }) => describe(index));
  const prefixTail = bestOrder.slice(-DETAIL_OPS_LIMIT).map(describe);
  return [
    `${ops.length} operations (#n: the n-th by call time); the longest linearizable prefix found has ${bestOrder.length}`,
    `it ends with: ${prefixTail.length === 0 ? "(nothing)" : prefixTail.join("; ")}`,
    `cannot place ${describe(blockedOp)} before it returns; candidates then: ${candidates.slice(0, DETAIL_OPS_LIMIT).join("; ")}` +
      (candidates.length > DETAIL_OPS_LIMIT ? `; and ${candidates.length - DETAIL_OPS_LIMIT} more` : ""),
  ].join("\n");
}
