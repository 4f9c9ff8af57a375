// Shared by the Node and the workerd test of src/objects/sha256.ts: the digests must be the ones the JavaScript
// implementation used before produced (nodes of both versions compare digests during a rolling deploy).
import { sha256 } from "@noble/hashes/sha2.js";
import { expect } from "vitest";
import { Sha256Stream, sha256Hex } from "../../src/objects/sha256";

function nobleHex(text: string): string {
  return Array.from(sha256(new TextEncoder().encode(text)), (b) => b.toString(16).padStart(2, "0")).join("");
}

const PARTS = [
  "",
  "plain ascii\n",
  "é ü 漢字 \u{1F600}\n",
  "lone high \uD800 and low \uDC00 surrogates\n",
  "x".repeat(70_000),
  "ends with a high surrogate \uD83D",
  "\uDE00 starts with a low one\n",
];

export function checkSha256AgreesWithTheOldDigests(): void {
  for (const part of PARTS) {
    expect(sha256Hex(part)).toBe(nobleHex(part));
  }
  // The same parts streamed, across the 64 Ki-code-unit pieces the stream hashes in.
  const stream = new Sha256Stream();
  for (let i = 0; i < 5; i++) {
    for (const part of PARTS) {
      stream.update(part);
    }
  }
  expect(stream.digestHex()).toBe(nobleHex(PARTS.join("").repeat(5)));
  expect(() => stream.digestHex()).toThrow(/twice/);
  expect(() => stream.update("more")).toThrow(/after digest/);
}
