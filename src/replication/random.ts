// A small seeded PRNG (mulberry32): the core draws its election timeouts from it, so that one seed replays a whole
// simulated run exactly. It is not cryptographic and must not be used for anything secret.
import type { RandomSource } from "./types.js";

const TWO_POW_32 = 0x1_0000_0000;
/** Rejection sampling rarely needs a second draw; the cap only bounds a pathological stream. */
const MAX_REJECTION_DRAWS = 64;

export class SeededRandom implements RandomSource {
  private state: number;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) {
      throw new RangeError(`SeededRandom: the seed must be a safe integer, got ${String(seed)}`);
    }
    // Fold the high bits in so that seeds above 2^32 still differ.
    this.state = (seed ^ Math.floor(seed / TWO_POW_32)) >>> 0;
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, maxExclusive), without modulo bias. */
  nextInt(maxExclusive: number): number {
    if (!Number.isSafeInteger(maxExclusive) || maxExclusive <= 0 || maxExclusive > TWO_POW_32) {
      throw new RangeError(
        `SeededRandom.nextInt: maxExclusive must be an integer in [1, 2^32], got ${String(maxExclusive)}`,
      );
    }
    const limit = TWO_POW_32 - (TWO_POW_32 % maxExclusive);
    let draw = this.nextUint32();
    for (let attempt = 1; draw >= limit && attempt < MAX_REJECTION_DRAWS; attempt++) {
      draw = this.nextUint32();
    }
    return draw % maxExclusive;
  }

  /** A float in [0, 1). */
  nextFloat(): number {
    return this.nextUint32() / TWO_POW_32;
  }
}
