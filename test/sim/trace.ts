// What happened during one seed, for a human reading a failure and for the replay-determinism test: a bounded
// ring of the latest lines, and a hash over every line ever recorded (so two runs can be compared cheaply).

export const DEFAULT_TRACE_TAIL_LINES = 200;

export class Trace {
  private readonly ring: string[];
  private next = 0;
  private filled = false;
  private hashHigh = 0x811c9dc5;
  private hashLow = 0x01000193;
  private lineCount = 0;

  constructor(
    private readonly tailLines: number = DEFAULT_TRACE_TAIL_LINES,
    private readonly sink: ((line: string) => void) | null = null,
  ) {
    if (!Number.isInteger(tailLines) || tailLines < 1) {
      throw new RangeError(`tailLines must be a positive integer, got ${tailLines}`);
    }
    this.ring = new Array<string>(tailLines);
  }

  /** Records one line, prefixed with the simulated time. */
  record(nowMs: number, text: string): void {
    const line = `${String(nowMs).padStart(7, " ")}ms ${text}`;
    this.mix(line);
    this.ring[this.next] = line;
    this.next = (this.next + 1) % this.tailLines;
    if (this.next === 0) {
      this.filled = true;
    }
    this.lineCount += 1;
    this.sink?.(line);
  }

  /** Folds a value into the hash without keeping a line (for frequent, uneventful steps such as quiet ticks). */
  mix(text: string): void {
    let high = this.hashHigh;
    let low = this.hashLow;
    for (let i = 0; i < text.length; i += 1) {
      const code = text.charCodeAt(i);
      high = Math.imul(high ^ code, 0x01000193);
      low = Math.imul(low ^ code, 0x5bd1e995) ^ (high >>> 15);
    }
    this.hashHigh = high;
    this.hashLow = low;
  }

  /** A 64-bit digest of everything recorded, as 16 hex digits. */
  hash(): string {
    return (this.hashHigh >>> 0).toString(16).padStart(8, "0") + (this.hashLow >>> 0).toString(16).padStart(8, "0");
  }

  get lines(): number {
    return this.lineCount;
  }

  /** The latest lines, oldest first. */
  tail(): string[] {
    if (!this.filled) {
      return this.ring.slice(0, this.next);
    }
    return [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
  }
}
