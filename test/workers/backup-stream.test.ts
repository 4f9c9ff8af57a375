// A backup's dump as a node sends it (src/objects/runtime/backup-dump.ts): inline when it surely fits one RPC value,
// else a stream of its UTF-8 bytes; the streams a node holds at once are bounded, and let go when read or cancelled.
import { describe, expect, it } from "vitest";
import {
  BACKUP_STREAM_MAX_MS,
  BackupStreams,
  dumpWithin,
  INLINE_DUMP_MAX_CHARS,
  MAX_STREAMED_BACKUP_BYTES,
  utf8Stream,
} from "../../src/objects/runtime/backup-dump";
import { DumpError } from "../../src/objects/sql/dump";
import { NodeFailure } from "../../src/objects/node-failure";

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function codeOf(action: () => unknown): string | undefined {
  try {
    action();
    return undefined;
  } catch (error) {
    return error instanceof NodeFailure ? error.error.code : `not a NodeFailure: ${String(error)}`;
  }
}

describe("utf8Stream", () => {
  it("encodes the text exactly, never splitting a surrogate pair between pieces", async () => {
    const text = "a😀b😀😀ü€\n".repeat(7);
    for (const chunkChars of [2, 3, 4, 5, 1000]) {
      expect(await bytesOf(utf8Stream(text, { chunkChars }))).toEqual(new TextEncoder().encode(text));
    }
  });

  it("lets the text go once, when read to its end or cancelled", async () => {
    let released = 0;
    await bytesOf(utf8Stream("x".repeat(10), { chunkChars: 3, release: () => released++ }));
    expect(released).toBe(1);
    const cancelled = utf8Stream("x".repeat(10), { chunkChars: 3, release: () => released++ });
    await cancelled.cancel();
    expect(released).toBe(2);
  });

  it("fails at its next read once expired", async () => {
    let expired = false;
    let released = 0;
    const stream = utf8Stream("x".repeat(10), { chunkChars: 2, expired: () => expired, release: () => released++ });
    const reader = stream.getReader();
    expect((await reader.read()).done).toBe(false);
    expired = true;
    await expect(async () => {
      for (;;) {
        if ((await reader.read()).done) {
          return;
        }
      }
    }).rejects.toThrow(/not read in time/);
    expect(released).toBe(1);
  });
});

describe("BackupStreams", () => {
  const large = "y".repeat(INLINE_DUMP_MAX_CHARS + 1);

  it("sends a small dump inline and a large one as a stream of its UTF-8 bytes", async () => {
    const streams = new BackupStreams(() => 0);
    expect(streams.value("small", 4)).toEqual({ sql: "small", raftIndex: 4 });
    const value = streams.value(large, 5);
    if (!("sqlStream" in value)) {
      throw new Error("a dump above the inline bound came inline");
    }
    expect(value.sqlBytes).toBe(large.length);
    expect(value.raftIndex).toBe(5);
    expect((await bytesOf(value.sqlStream)).length).toBe(large.length);
  });

  it("refuses a backup (QUEUE_FULL) while large dumps it holds could go past the bound, until they are read", async () => {
    let nowMs = 0;
    const streams = new BackupStreams(() => nowMs);
    expect(codeOf(() => streams.assertRoomFor(MAX_STREAMED_BACKUP_BYTES * 2))).toBeUndefined();
    const value = streams.value(large, 1);
    expect(codeOf(() => streams.assertRoomFor(MAX_STREAMED_BACKUP_BYTES))).toBe("QUEUE_FULL");
    // A small backup still fits beside it.
    expect(codeOf(() => streams.assertRoomFor(1024))).toBeUndefined();
    if (!("sqlStream" in value)) {
      throw new Error("a dump above the inline bound came inline");
    }
    await value.sqlStream.cancel();
    expect(codeOf(() => streams.assertRoomFor(MAX_STREAMED_BACKUP_BYTES))).toBeUndefined();
    // A stream nobody reads is no longer counted once expired.
    const unread = streams.value(large, 2);
    expect(codeOf(() => streams.assertRoomFor(MAX_STREAMED_BACKUP_BYTES))).toBe("QUEUE_FULL");
    nowMs += BACKUP_STREAM_MAX_MS;
    expect(codeOf(() => streams.assertRoomFor(MAX_STREAMED_BACKUP_BYTES))).toBeUndefined();
    // No longer counted, so no longer held: the stream has let go of its text and fails for a late reader.
    if (!("sqlStream" in unread)) {
      throw new Error("a dump above the inline bound came inline");
    }
    await expect(bytesOf(unread.sqlStream)).rejects.toThrow(/not read in time/);
  });

  it("lets an expired stream's text go when the bound is next checked, not at a read that may never come", () => {
    let abandon: (() => void) | undefined;
    let released = 0;
    utf8Stream("x".repeat(10), {
      release: () => released++,
      abandonWith: (fn) => {
        abandon = fn;
      },
    });
    abandon?.();
    abandon?.();
    expect(released).toBe(1);
  });
});

describe("dumpWithin", () => {
  it("turns a dump past its limit into TOO_LARGE, which no node retries, naming the limit", () => {
    const failure = (() => {
      try {
        dumpWithin(() => {
          throw new DumpError("the dump is larger than 10 bytes");
        }, 10);
      } catch (error) {
        return error;
      }
      return undefined;
    })();
    expect(failure).toBeInstanceOf(NodeFailure);
    expect((failure as NodeFailure).error).toMatchObject({ code: "TOO_LARGE", retryable: false });
    expect((failure as NodeFailure).error.message).toBe("the database's SQL dump is larger than 10 bytes");
    expect(dumpWithin(({ maxBytes }) => `limit ${maxBytes}`, 7)).toBe("limit 7");
  });
});
