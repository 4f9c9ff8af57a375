// A snapshot as the state machine makes it and as it travels between nodes: the image (chunks of the state machine's
// stream format, sql/snapshot.ts) and one chunk of it on the wire. Defined once here, below the transport, the
// runtime and the SQL state machine, which all pass them on.

/** Which snapshot a chunk belongs to: the Raft snapshot's index and the sender's term. */
export interface SnapshotId {
  readonly snapshotIndex: number;
  readonly snapshotTerm: number;
}

/** One piece of a snapshot image; chunks of one snapshot are numbered from 0 and the final one has `last`. */
export interface SnapshotChunk extends SnapshotId {
  /** 0-based position of the chunk. */
  readonly seq: number;
  /** True on the final chunk. */
  readonly last: boolean;
  /** The state machine's encoding of this part of the image. */
  readonly data: string;
  /**
   * A repair (src/objects/monitor): once the last chunk is staged the receiver installs the image at once, replacing
   * its diverged state, instead of waiting for a Raft snapshot message.
   */
  readonly repair?: boolean;
}

/** A consistent image of the state machine at one applied index, in bounded chunks. */
export interface SnapshotImage {
  /** The applied index the image reflects (at least the snapshot metadata's index). */
  readonly appliedIndex: number;
  readonly chunks: readonly string[];
  /** Total UTF-8 bytes of all chunks. */
  readonly bytes: number;
  readonly schemaVersion: number;
  readonly schemaHash: string;
}
