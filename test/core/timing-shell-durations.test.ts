// Durations of the census, re-admission and the consistency monitor's image checkpoints, taken from
// src/objects/timing.ts; the values are the ones each of them derived on its own before.
import { describe, expect, it } from "vitest";
import {
  censusAskRetryDelayMs,
  commitNoticeHoldMs,
  imageCheckpointDeadlineMs,
  peerTransportTiming,
  readmissionGraceMs,
  uncheckedImageAfterMs,
} from "../../src/objects/timing";

const TIMING = { heartbeatIntervalMs: 100, electionTimeoutMs: 1_000 };

describe("shell durations from timing.ts", () => {
  it("backs census asks off from a heartbeat interval, doubling, up to an election timeout", () => {
    expect([0, 1, 2, 3, 4, 50].map((failures) => censusAskRetryDelayMs(TIMING, failures))).toEqual([
      100, 200, 400, 800, 1_000, 1_000,
    ]);
  });

  it("gives a re-admitted node one election window, and an image checkpoint two, and unchecked images three timeouts", () => {
    expect(readmissionGraceMs(TIMING)).toBe(2_000);
    expect(imageCheckpointDeadlineMs(TIMING)).toBe(4_000);
    expect(uncheckedImageAfterMs(TIMING)).toBe(3_000);
  });

  it("holds a commit notice a quarter of a heartbeat interval", () => {
    expect(commitNoticeHoldMs(TIMING)).toBe(25);
  });

  it("leaves a failing peer alone for half a heartbeat interval, each time: the next heartbeat is its probe", () => {
    expect(peerTransportTiming(TIMING)).toMatchObject({
      breakerMinOpenMs: 50,
      breakerMaxOpenMs: 50,
      // A probe may take as long as one delivery with its retry.
      breakerProbeTimeoutMs: 1_500,
    });
    expect(peerTransportTiming({ heartbeatIntervalMs: 20, electionTimeoutMs: 60 })).toMatchObject({
      breakerMinOpenMs: 10,
      breakerMaxOpenMs: 10,
      breakerProbeTimeoutMs: 90,
    });
    expect(peerTransportTiming({ heartbeatIntervalMs: 400, electionTimeoutMs: 2_400 })).toMatchObject({
      breakerMinOpenMs: 200,
      breakerMaxOpenMs: 200,
      breakerProbeTimeoutMs: 1_500,
    });
  });
});
