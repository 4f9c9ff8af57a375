// Network fault injection for integration tests: drop calls with a probability, delay them, or cut the link
// between named nodes (one way or both). Only test configuration can switch it on: the node must refuse to store
// rules unless `faultsEnabled(env)`, and DHA_TEST_FAULTS is set only in the vitest miniflare bindings, never in
// wrangler.toml. Faults act on the sending side, per envelope, before the RPC leaves the node.
import { z } from "zod";

export interface Partition {
  readonly from: string;
  readonly to: string;
  /** Also cut `to -> from`. Without it the partition is one-way (from cannot reach to). */
  readonly bothWays?: boolean;
}

export interface FaultRules {
  /** Probability in [0, 1] that an envelope is lost. */
  readonly dropProbability?: number;
  /** Added latency per envelope; counts against the call's timeout, as real latency would. */
  readonly delayMs?: number;
  readonly partitions?: readonly Partition[];
}

export type FaultDecision = "deliver" | "drop" | { readonly delayMs: number };

/** The environment switch, read from the Durable Object's env. */
export interface FaultSwitchEnv {
  readonly DHA_TEST_FAULTS?: string;
}

export const MAX_FAULT_DELAY_MS = 60_000;
export const MAX_PARTITIONS = 64;
/** True only when the test configuration set DHA_TEST_FAULTS to exactly "1". */
export function faultsEnabled(env: FaultSwitchEnv): boolean {
  return env.DHA_TEST_FAULTS === "1";
}

/** For the test-only RPC: throws unless fault injection is switched on. */
export function assertFaultsEnabled(env: FaultSwitchEnv): void {
  if (!faultsEnabled(env)) {
    throw new Error(
      'fault injection is disabled: it needs DHA_TEST_FAULTS = "1", which only the test configuration sets',
    );
  }
}

const nodeName = z.string().min(1).max(256);

const faultRulesSchema = z.strictObject({
  dropProbability: z.number().min(0).max(1).optional(),
  delayMs: z.number().int().min(0).max(MAX_FAULT_DELAY_MS).optional(),
  partitions: z
    .array(z.strictObject({ from: nodeName, to: nodeName, bothWays: z.boolean().optional() }))
    .max(MAX_PARTITIONS)
    .optional(),
});

/** Validates rules coming from a test; throws an Error naming every problem. */
export function parseFaultRules(input: unknown): FaultRules {
  const parsed = faultRulesSchema.safeParse(input);
  if (!parsed.success) {
    throw new Error(`invalid fault rules: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

/** True when a partition rule cuts the link from `from` to `to`. */
export function isPartitioned(rules: FaultRules, from: string, to: string): boolean {
  return (rules.partitions ?? []).some(
    (cut) => (cut.from === from && cut.to === to) || (cut.bothWays === true && cut.from === to && cut.to === from),
  );
}

/**
 * What happens to one envelope from `from` to `to`: partitions drop it, then `dropProbability` may drop it,
 * then `delayMs` delays it. `random` (in [0, 1)) is drawn only when a drop probability is set, so a test that
 * sets none sees no change in its random sequence.
 */
export function applyFaults(rules: FaultRules, from: string, to: string, random: () => number): FaultDecision {
  if (isPartitioned(rules, from, to)) {
    return "drop";
  }
  const dropProbability = rules.dropProbability ?? 0;
  if (dropProbability > 0 && random() < dropProbability) {
    return "drop";
  }
  const delayMs = rules.delayMs ?? 0;
  return delayMs > 0 ? { delayMs } : "deliver";
}
