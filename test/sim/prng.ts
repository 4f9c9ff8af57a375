// The simulator's only source of randomness. One seed, split into independent streams (network, nemesis,
// workload, each node's core), so that a decision drawn by one part never shifts what another part draws.
// sfc32 seeded through splitmix32: fast, 128 bits of state, and identical on every platform.

import type { RandomSource } from "../../src/replication/types.js";

const TWO_POW_32 = 4294967296;

function splitmix32(state: { value: number }): number {
  state.value = (state.value + 0x9e3779b9) | 0;
  let z = state.value;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export function assertValidSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`a seed is a non-negative safe integer, got ${seed}`);
  }
}

export class Prng implements RandomSource {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    assertValidSeed(seed);
    const low = seed >>> 0;
    const high = Math.floor(seed / TWO_POW_32) >>> 0;
    const state = { value: (low ^ Math.imul(high, 0x27d4eb2f)) | 0 };
    this.a = splitmix32(state);
    this.b = splitmix32(state);
    this.c = splitmix32(state);
    this.d = splitmix32(state) | 1;
    // Discard the first outputs: sfc32 mixes poorly right after seeding.
    for (let i = 0; i < 12; i += 1) {
      this.nextUint32();
    }
  }

  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** An integer in [0, maxExclusive), without modulo bias. */
  nextInt(maxExclusive: number): number {
    if (!Number.isInteger(maxExclusive) || maxExclusive < 1 || maxExclusive > TWO_POW_32) {
      throw new RangeError(`nextInt needs an integer bound in [1, 2^32], got ${maxExclusive}`);
    }
    const limit = TWO_POW_32 - (TWO_POW_32 % maxExclusive);
    for (;;) {
      const value = this.nextUint32();
      if (value < limit) {
        return value % maxExclusive;
      }
    }
  }

  /** An integer in [min, max], both inclusive. */
  between(minInclusive: number, maxInclusive: number): number {
    if (maxInclusive < minInclusive) {
      throw new RangeError(`empty range [${minInclusive}, ${maxInclusive}]`);
    }
    return minInclusive + this.nextInt(maxInclusive - minInclusive + 1);
  }

  /** True with the given probability (0 never, 1 always). */
  chance(probability: number): boolean {
    if (!(probability >= 0 && probability <= 1)) {
      throw new RangeError(`a probability is in [0, 1], got ${probability}`);
    }
    if (probability === 0) {
      return false;
    }
    return this.nextUint32() / TWO_POW_32 < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) {
      throw new RangeError("cannot pick from an empty list");
    }
    return items[this.nextInt(items.length)] as T;
  }

  shuffled<T>(items: readonly T[]): T[] {
    const copy = items.slice();
    for (let i = copy.length - 1; i > 0; i -= 1) {
      const j = this.nextInt(i + 1);
      const held = copy[i] as T;
      copy[i] = copy[j] as T;
      copy[j] = held;
    }
    return copy;
  }

  /** A new, independent stream whose seed is drawn from this one. */
  fork(): Prng {
    return new Prng(this.nextUint32() * 2048 + this.nextInt(2048));
  }
}
