/** A fixed-size set of small non-negative integers, one bit each, over 32-bit words. */
export class Bitset {
  readonly size: number;
  readonly words: Uint32Array;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 0) {
      throw new RangeError(`Bitset size must be a non-negative integer, got ${size}`);
    }
    this.size = size;
    this.words = new Uint32Array(Math.ceil(size / 32));
  }

  has(index: number): boolean {
    this.assertInRange(index);
    return ((this.words[index >>> 5] ?? 0) & (1 << (index & 31))) !== 0;
  }

  set(index: number): void {
    this.assertInRange(index);
    const w = index >>> 5;
    this.words[w] = (this.words[w] ?? 0) | (1 << (index & 31));
  }

  clear(index: number): void {
    this.assertInRange(index);
    const w = index >>> 5;
    this.words[w] = (this.words[w] ?? 0) & ~(1 << (index & 31));
  }

  /** True when this set holds exactly the bits stored in `words` (a snapshot of a set of the same size). */
  equalsWords(words: Uint32Array): boolean {
    if (words.length !== this.words.length) {
      return false;
    }
    for (let i = 0; i < words.length; i++) {
      if (words[i] !== this.words[i]) {
        return false;
      }
    }
    return true;
  }

  snapshotWords(): Uint32Array {
    return this.words.slice();
  }

  private assertInRange(index: number): void {
    if (!(index >= 0 && index < this.size && Number.isInteger(index))) {
      throw new RangeError(`Bitset index ${index} outside [0, ${this.size})`);
    }
  }
}

/** 32-bit FNV-1a over UTF-16 code units: cheap, and good enough to spread cache buckets. */
export function hashString32(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/**
 * Deterministic 32-bit pseudo-random values (splitmix32), for Zobrist keys: the hash of a set is the XOR of its
 * members' keys, so adding or removing one member updates it in O(1).
 */
export function zobristKeys(count: number, seed = 0x5eed1234): Uint32Array {
  const keys = new Uint32Array(count);
  let state = seed >>> 0;
  for (let i = 0; i < count; i++) {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    keys[i] = (z ^ (z >>> 16)) >>> 0;
  }
  return keys;
}

/**
 * A Bitset that tracks its window: the words before `lowWord` are all ones and those after `highWord` all zero.
 * Sets whose members are mostly a prefix (the operations linearized so far, numbered in call order) are then
 * identified by (lowWord, the window's words), which stays small however long the history.
 */
export class PrefixBitset extends Bitset {
  private lowWordIndex = 0;
  private highWordIndex = -1;

  get lowWord(): number {
    return this.lowWordIndex;
  }

  override set(index: number): void {
    super.set(index);
    this.highWordIndex = Math.max(this.highWordIndex, index >>> 5);
    while (this.lowWordIndex < this.words.length && this.words[this.lowWordIndex] === 0xffffffff) {
      this.lowWordIndex++;
    }
  }

  override clear(index: number): void {
    super.clear(index);
    const word = index >>> 5;
    this.lowWordIndex = Math.min(this.lowWordIndex, word);
    // Words below lowWord are non-zero, so this stops within the window.
    while (this.highWordIndex >= 0 && this.words[this.highWordIndex] === 0) {
      this.highWordIndex--;
    }
  }

  windowWords(): Uint32Array {
    return this.words.slice(this.lowWordIndex, Math.max(this.lowWordIndex, this.highWordIndex + 1));
  }

  /** True when this set equals the one whose lowWord and windowWords() were `lowWord` and `window`. */
  equalsWindow(lowWord: number, window: Uint32Array): boolean {
    if (lowWord !== this.lowWordIndex || window.length !== Math.max(0, this.highWordIndex + 1 - this.lowWordIndex)) {
      return false;
    }
    for (let i = 0; i < window.length; i++) {
      if (window[i] !== this.words[lowWord + i]) {
        return false;
      }
    }
    return true;
  }
}
