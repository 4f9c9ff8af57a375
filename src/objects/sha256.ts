// SHA-256 through node:crypto: the platform's native implementation under the nodejs_compat flag (wrangler.toml), and
// Node's own in the simulator. The JavaScript implementation used before (@noble/hashes) produced the same digests
// at about 13 µs per row-sized update in workerd, 50 times slower in a 30,000-line probe: it made whole-database
// digests, snapshot images and every write's fingerprint cost more than the rows they read.
import { createHash, type Hash } from "node:crypto";

/** Pending text is handed to the hash in pieces of about this many UTF-16 code units (whole lines only). */
const PIECE_CHARS = 64 * 1024;

/** Hex SHA-256 of the UTF-8 encoding of `text` (lone surrogates encode as U+FFFD, as TextEncoder does). */
export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/**
 * A SHA-256 over text handed over in parts: the digest is the one of all parts concatenated (UTF-8). Parts are
 * buffered and hashed in large pieces, since every call into the hash has a fixed cost. A part is never split, so a
 * surrogate pair within one part is never cut in two.
 */
export class Sha256Stream {
  private readonly hash: Hash = createHash("sha256");
  private pending = "";
  private finished = false;

  update(part: string): void {
    if (this.finished) {
      throw new Error("Sha256Stream: update after digest");
    }
    this.pending += part;
    if (this.pending.length >= PIECE_CHARS) {
      this.hash.update(this.pending, "utf8");
      this.pending = "";
    }
  }

  digestHex(): string {
    if (this.finished) {
      throw new Error("Sha256Stream: digest taken twice");
    }
    this.finished = true;
    return this.hash.update(this.pending, "utf8").digest("hex");
  }
}
