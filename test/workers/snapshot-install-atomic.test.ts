// A follower installs a snapshot in one transaction: the state machine's image and the Raft log's record of the
// snapshot (issue 11; review of a volatile commit index). With two transactions, a storage error between them left
// the image applied beside a log that still held a deposed leader's uncommitted entries, which only the clamp of the
// applied index on load (RaftStorage.load) kept from counting as committed. Shown on a real NodeRuntime whose peers are
// scripted, with the storage error injected at the Raft log's snapshot record; with the bug switch
// snapshotInstallNotAtomic the same check sees the image left behind.
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION } from "../../src/objects/api";
import type { SyncKv } from "../../src/objects/raft-storage";
import type { ShellBugs } from "../../src/objects/shell-bugs";
import { createStateMachine } from "../../src/objects/sql/port";
import type { SnapshotImage } from "../../src/objects/state-machine-port";
import { RaftKeys } from "../../src/objects/storage-keys";
import { noopEntry, ScriptedNode, scriptedObject, writeEntry } from "./helpers/scripted-runtime";

const NODES = ["n1", "n2", "n3"];
const IMAGE_INDEX = 3;
const IMAGE_TERM = 2;

/** The image of a state machine that applied a table and one row (index 3). */
async function imageOfOneRow(): Promise<SnapshotImage> {
  const { stub } = scriptedObject("atomic-image");
  return runInDurableObject(stub, async (_instance, state) => {
    const sm = createStateMachine(state.storage);
    sm.applyEntry(noopEntry(1, 1));
    sm.applyEntry(writeEntry({ index: 2, term: 1, id: "create", statements: [{ sql: "CREATE TABLE t (x)" }] }));
    sm.applyEntry(writeEntry({ index: 3, term: 1, id: "insert", statements: [{ sql: "INSERT INTO t VALUES (1)" }] }));
    return sm.createSnapshotImage();
  });
}

/** A KV store whose put of the Raft log's snapshot record fails while `failing.armed`. */
function failingSnapshotRecord(kv: SyncKv, failing: { armed: boolean }): SyncKv {
  return {
    get: (key) => kv.get(key),
    put: (key, value) => {
      if (failing.armed && key === RaftKeys.snapshot) {
        throw new Error("injected storage error at the Raft log's snapshot record");
      }
      kv.put(key, value);
    },
    delete: (key) => kv.delete(key),
    list: (options) => kv.list(options),
  };
}

function sendImage(node: ScriptedNode, cluster: string, image: SnapshotImage): void {
  image.chunks.forEach((data, seq) => {
    node.runtime.receiveEnvelope({
      protocolVersion: PROTOCOL_VERSION,
      cluster,
      from: "n1",
      to: "n3",
      messages: [],
      snapshotChunk: {
        snapshotIndex: IMAGE_INDEX,
        snapshotTerm: IMAGE_TERM,
        seq,
        last: seq === image.chunks.length - 1,
        data,
      },
    });
  });
  node.deliver("n1", [
    {
      type: "snapshot",
      term: IMAGE_TERM,
      snapshot: { index: IMAGE_INDEX, term: IMAGE_TERM, membership: { voters: NODES, learners: [] } },
    },
  ]);
}

interface AfterFailedInstall {
  readonly installError: string;
  /** What a fresh look at the object's storage finds after the failed install. */
  readonly appliedIndex: number;
  readonly tables: readonly string[];
  readonly logIndexes: readonly number[];
  /** After a restart and the same snapshot sent again, without the storage error. */
  readonly appliedAfterRetry: number;
  readonly rowsAfterRetry: number;
}

/**
 * n3 holds five entries of a deposed leader (term 1, never committed); the leader of term 2 sends it an image at
 * index 3 that does not match them, and the Raft log's record of the snapshot fails to be written.
 */
async function installFailingAtTheLogRecord(bugs: ShellBugs): Promise<AfterFailedInstall> {
  const image = await imageOfOneRow();
  const { stub, cluster } = scriptedObject("atomic-install");
  return runInDurableObject(stub, async (_instance, state) => {
    const failing = { armed: false };
    const node = new ScriptedNode(state, cluster, {
      prefix: "atomic-install",
      nodes: NODES,
      self: "n3",
      bugs,
      wrapKv: (kv) => failingSnapshotRecord(kv, failing),
    });
    try {
      node.deliver("n2", [
        {
          type: "append",
          term: 1,
          prevLogIndex: 0,
          prevLogTerm: 0,
          entries: [1, 2, 3, 4, 5].map((index) => noopEntry(index, 1)),
          commit: 0,
        },
      ]);
      failing.armed = true;
      let installError = "";
      try {
        sendImage(node, cluster, image);
      } catch (error) {
        installError = String(error);
      }
      failing.armed = false;
      const fresh = createStateMachine(state.storage);
      const tables = state.storage.sql
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 't'")
        .toArray()
        .map((row) => row.name);
      const logIndexes = [...state.storage.kv.list<{ index: number }>({ prefix: RaftKeys.logPrefix })].map(
        ([, entry]) => entry.index,
      );
      const appliedIndex = fresh.appliedIndex();
      await node.runtime.stop("restart after the failed install").catch(() => undefined);
      node.start();
      sendImage(node, cluster, image);
      const rows = state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM t").one().n;
      return {
        installError,
        appliedIndex,
        tables,
        logIndexes,
        appliedAfterRetry: createStateMachine(state.storage).appliedIndex(),
        rowsAfterRetry: rows,
      };
    } finally {
      await node.runtime.stop("test finished").catch(() => undefined);
    }
  });
}

describe("a snapshot install is one transaction", () => {
  it("a storage error at the Raft log's snapshot record leaves neither the image nor the record", async () => {
    const outcome = await installFailingAtTheLogRecord({});
    expect(outcome.installError).toMatch(/injected storage error/);
    expect(outcome.appliedIndex).toBe(0);
    expect(outcome.tables).toEqual([]);
    expect(outcome.logIndexes).toEqual([1, 2, 3, 4, 5]);
    expect(outcome.appliedAfterRetry).toBe(IMAGE_INDEX);
    expect(outcome.rowsAfterRetry).toBe(1);
  });

  it("with snapshotInstallNotAtomic the image stays applied beside the old log (the check can fail)", async () => {
    const outcome = await installFailingAtTheLogRecord({ snapshotInstallNotAtomic: true });
    expect(outcome.installError).toMatch(/injected storage error/);
    expect(outcome.appliedIndex).toBe(IMAGE_INDEX);
    expect(outcome.tables).toEqual(["t"]);
    expect(outcome.logIndexes).toEqual([1, 2, 3, 4, 5]);
  });
});
