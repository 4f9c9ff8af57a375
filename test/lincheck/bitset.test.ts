import { describe, expect, it } from "vitest";
import { Bitset, PrefixBitset, zobristKeys } from "./bitset";

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("Bitset", () => {
  it("sets, clears and rejects indices outside its size", () => {
    const bits = new Bitset(40);
    bits.set(0);
    bits.set(39);
    expect([bits.has(0), bits.has(1), bits.has(39)]).toEqual([true, false, true]);
    bits.clear(39);
    expect(bits.has(39)).toBe(false);
    expect(() => bits.set(40)).toThrow(RangeError);
    expect(() => bits.has(-1)).toThrow(RangeError);
    expect(() => new Bitset(-1)).toThrow(RangeError);
  });
});

describe("PrefixBitset", () => {
  it("identifies a set by its window exactly, through random sets and clears", () => {
    const size = 200;
    const random = mulberry32(7);
    const bits = new PrefixBitset(size);
    const reference = new Set<number>();
    const seen: { members: string; lowWord: number; window: Uint32Array }[] = [];
    for (let round = 0; round < 5000; round++) {
      // Mostly grow a prefix, with churn near its edge: the shape the search produces.
      const edge = Math.min(size - 1, reference.size + Math.floor(random() * 40));
      const index = Math.floor(random() * (edge + 1));
      if (random() < 0.6) {
        bits.set(index);
        reference.add(index);
      } else {
        bits.clear(index);
        reference.delete(index);
      }
      for (let i = 0; i < size; i++) {
        expect(bits.has(i)).toBe(reference.has(i));
      }
      const words = bits.words;
      for (let w = 0; w < bits.lowWord; w++) {
        expect(words[w]).toBe(0xffffffff);
      }
      const members = [...reference].sort((a, b) => a - b).join(",");
      const sample = seen[Math.floor(random() * seen.length)];
      if (sample) {
        expect(bits.equalsWindow(sample.lowWord, sample.window)).toBe(sample.members === members);
      }
      expect(bits.equalsWindow(bits.lowWord, bits.windowWords())).toBe(true);
      if (round % 10 === 0) {
        seen.push({ members, lowWord: bits.lowWord, window: bits.windowWords() });
      }
    }
  });

  it("keeps the window small while the set is a prefix", () => {
    const bits = new PrefixBitset(10_000);
    for (let i = 0; i < 9_000; i++) {
      bits.set(i);
    }
    bits.set(9_500);
    expect(bits.lowWord).toBe(Math.floor(9_000 / 32));
    expect(bits.windowWords().length).toBe(Math.floor(9_500 / 32) - Math.floor(9_000 / 32) + 1);
  });
});

describe("zobristKeys", () => {
  it("is deterministic and spreads its values", () => {
    const keys = zobristKeys(1000);
    expect(zobristKeys(1000)).toEqual(keys);
    expect(new Set(keys).size).toBe(1000);
  });
});
