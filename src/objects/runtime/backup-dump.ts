// A backup's SQL dump as the leader sends it to the worker. One value sent over Durable Object RPC holds at most
// 32 MiB (serialized), so a dump that might not fit goes as a stream of its UTF-8 bytes, which RPC sends in pieces.
// The dump is built at once (a consistent image at one applied index) and the stream only encodes it piece by piece.
import type { BackupValue } from "../api";
import { DumpError } from "../sql/dump";
import { nodeError } from "../node-failure";
import { utf8ByteLength } from "../sqlite/values";

/** Inline up to this many UTF-16 code units: 16 MiB serialized at most (two bytes each), half of one RPC value. */
export const INLINE_DUMP_MAX_CHARS = 8 * 1024 * 1024;
/**
 * The most a caller that cannot read a stream (a worker of an earlier version, which names no limit) is sent inline:
 * 30 MiB serialized at most, under the 32 MiB of one RPC value; past it, TOO_LARGE rather than an RPC that fails.
 */
export const INLINE_ONLY_DUMP_MAX_CHARS = 15 * 1024 * 1024;
/** Characters encoded per piece of a streamed dump (at most 768 KiB of UTF-8). */
const STREAM_CHUNK_CHARS = 256 * 1024;
/** Bytes of streamed dumps a node holds at once: each is held in memory until the worker has read it all. */
export const MAX_STREAMED_BACKUP_BYTES = 64 * 1024 * 1024;
/** A streamed dump not read to its end within this long is let go: its reader is gone, or far too slow. */
export const BACKUP_STREAM_MAX_MS = 5 * 60_000;

/** The dump, built within `maxDumpBytes`; beyond it, TOO_LARGE naming the limit (the worker says what to do). */
export function dumpWithin(dump: (options: { maxBytes: number }) => string, maxDumpBytes: number): string {
  try {
    return dump({ maxBytes: maxDumpBytes });
  } catch (error) {
    if (error instanceof DumpError) {
      throw nodeError("TOO_LARGE", `the database's SQL dump is larger than ${maxDumpBytes} bytes`, {
        retryable: false,
      });
    }
    throw error;
  }
}

interface HeldDump {
  readonly bytes: number;
  readonly expiresAtMs: number;
  /** Lets the text go now and fails the stream: it is no longer counted, so it must no longer be held either. */
  abandon: () => void;
}

/** The dumps a node is streaming, so that backups taken together stay within the node's memory. */
export class BackupStreams {
  private readonly held = new Map<number, HeldDump>();
  private nextId = 0;

  constructor(private readonly nowMs: () => number) {}

  /** Refuses (QUEUE_FULL: retry later) a backup whose dump could take the streams past their bound. */
  assertRoomFor(maxDumpBytes: number): void {
    const heldBytes = this.heldBytes();
    if (heldBytes > 0 && heldBytes + maxDumpBytes > MAX_STREAMED_BACKUP_BYTES) {
      throw nodeError(
        "QUEUE_FULL",
        `this leader is still sending ${this.held.size} large backup(s) (${heldBytes} bytes); retry once they are read`,
      );
    }
  }

  /** The dump as the answer carries it: inline when it surely fits one RPC value, else as a stream. */
  value(sql: string, raftIndex: number): BackupValue {
    if (sql.length <= INLINE_DUMP_MAX_CHARS) {
      return { sql, raftIndex };
    }
    const id = this.nextId++;
    const dump: HeldDump = {
      bytes: utf8ByteLength(sql),
      expiresAtMs: this.nowMs() + BACKUP_STREAM_MAX_MS,
      abandon: () => undefined,
    };
    this.held.set(id, dump);
    const sqlStream = utf8Stream(sql, {
      release: () => this.held.delete(id),
      expired: () => this.nowMs() >= dump.expiresAtMs,
      abandonWith: (abandon) => {
        dump.abandon = abandon;
      },
    });
    return { sqlStream, sqlBytes: dump.bytes, raftIndex };
  }

  private heldBytes(): number {
    let total = 0;
    for (const [id, dump] of this.held) {
      if (this.nowMs() >= dump.expiresAtMs) {
        // Its reader stopped asking: let go of the text now rather than at a read that may never come, so that what
        // is counted is what is held.
        dump.abandon();
        this.held.delete(id);
      } else {
        total += dump.bytes;
      }
    }
    return total;
  }
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

export interface Utf8StreamOptions {
  /** Characters encoded per piece (at least 2: a surrogate pair is never split). */
  readonly chunkChars?: number;
  /** Called once, when the text is let go: read to its end, cancelled, or expired. */
  readonly release?: () => void;
  /** True once the stream should fail at its next read instead of holding the text any longer. */
  readonly expired?: () => boolean;
  /** Receives, once, a function that lets the text go at once and fails the stream (for a reader that went away). */
  readonly abandonWith?: (abandon: () => void) => void;
}

/** The text's UTF-8 bytes, encoded one piece at a time as the reader asks; the text is let go at the end or on cancel. */
export function utf8Stream(text: string, options: Utf8StreamOptions = {}): ReadableStream<Uint8Array> {
  const chunkChars = options.chunkChars ?? STREAM_CHUNK_CHARS;
  if (!Number.isSafeInteger(chunkChars) || chunkChars < 2) {
    throw new RangeError("chunkChars must be an integer of at least 2 (a surrogate pair is never split)");
  }
  const encoder = new TextEncoder();
  let rest: string | null = text;
  let offset = 0;
  const letGo = (): void => {
    if (rest !== null) {
      rest = null;
      options.release?.();
    }
  };
  const notReadInTime = (): Error => new Error("the backup was not read in time: take it again");
  return new ReadableStream<Uint8Array>({
    start(controller) {
      options.abandonWith?.(() => {
        if (rest !== null) {
          letGo();
          controller.error(notReadInTime());
        }
      });
    },
    pull(controller) {
      if (rest === null) {
        return;
      }
      if (options.expired?.() === true) {
        letGo();
        controller.error(notReadInTime());
        return;
      }
      let end = Math.min(offset + chunkChars, rest.length);
      // Each half of a surrogate pair encoded alone would become a replacement character.
      if (end < rest.length && isHighSurrogate(rest.charCodeAt(end - 1))) {
        end -= 1;
      }
      controller.enqueue(encoder.encode(rest.slice(offset, end)));
      offset = end;
      if (offset >= rest.length) {
        letGo();
        controller.close();
      }
    },
    cancel() {
      letGo();
    },
  });
}
