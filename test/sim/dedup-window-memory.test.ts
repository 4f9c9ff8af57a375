// The dedup window's in-memory index stays within the memory README.md states ("Limits": at most 10,000 ids of at most
// 256 characters, about 4.5 MB per node at worst), also right before its queue compacts. Found in review of 3073d43:
// a forgotten member stayed referenced from the queue's array until the array was compacted, which at a full window
// of 10,000 happens only once another 10,000 were forgotten: the index then held up to twice its ids (7.6 MB).
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { DedupWindow } from "../../src/objects/sql/dedup-window";
import { StateKeys } from "../../src/objects/storage-keys";

setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;

/** A KV that keeps copies (as the platform's storage does), so that the heap holds only what the window keeps. */
function copyingKv(): SyncKvStorage {
  const stored = new Map<string, string>();
  const fresh = (text: string): string => Buffer.from(text).toString();
  const kv = {
    get: <T>(key: string): T | undefined => {
      const value = stored.get(key);
      return value === undefined ? undefined : (JSON.parse(value) as T);
    },
    put: (key: string, value: unknown): void => {
      stored.set(fresh(key), JSON.stringify(value));
    },
    delete: (key: string): boolean => stored.delete(key),
    *list<T>(options: { readonly prefix?: string } = {}): IterableIterator<[string, T]> {
      for (const key of [...stored.keys()].sort()) {
        if (key.startsWith(options.prefix ?? "")) {
          yield [fresh(key), JSON.parse(stored.get(key) as string) as T];
        }
      }
    },
  };
  return kv as unknown as SyncKvStorage;
}

function heapUsed(): number {
  collectGarbage();
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

/** A request id of `length` characters, a new string of its own (not sharing memory with any other). */
function requestId(n: number, length: number): string {
  return Buffer.from(`rpc:${n.toString(36)}:`.padEnd(length, "k")).toString();
}

/** The heap the window's in-memory copy takes, measured by letting it go. */
function heldByWindow(window: DedupWindow): number {
  const held = heapUsed();
  window.forget();
  return (held - heapUsed()) / 1e6;
}

describe("the dedup window's in-memory index (README: about 4.5 MB per node at worst)", () => {
  it("holds no more than the window's 10,000 ids, also after nearly 10,000 more were forgotten", () => {
    const fill = (window: DedupWindow, requests: number): void => {
      for (let index = 1; index <= requests; index++) {
        window.remember(requestId(index, 256), { index, results: null, count: 1 });
      }
    };
    const bounds = { maxEntries: 10_000, maxBytes: Number.MAX_SAFE_INTEGER };
    // A full window of the longest ids.
    const full = new DedupWindow(copyingKv(), bounds);
    fill(full, 10_000);
    const fullMegabytes = heldByWindow(full);
    // The same, then all but ten of its requests forgotten for newer ones: the queue has not compacted yet.
    const kv = copyingKv();
    const turned = new DedupWindow(kv, bounds);
    fill(turned, 19_990);
    expect(kv.get(StateKeys.dedupCount)).toBe(10_000);
    const turnedMegabytes = heldByWindow(turned);
    const held = `a full window ${fullMegabytes.toFixed(2)} MB, turned over ${turnedMegabytes.toFixed(2)} MB`;
    // Its table and array grow with what went through (a few hundred KB), not with the forgotten ids (3.7 MB).
    expect(turnedMegabytes, held).toBeLessThan(fullMegabytes * 1.3);
    expect(turnedMegabytes, held).toBeLessThan(5);
  });
});
