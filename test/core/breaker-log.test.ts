import { describe, expect, it } from "vitest";
import { BreakerLogLevels } from "../../src/objects/runtime/breaker-log";
import type { BreakerState } from "../../src/objects/transport/circuit-breaker";

type Step = readonly [BreakerState, BreakerState];

function levels(log: BreakerLogLevels, peer: string, steps: readonly Step[]): string[] {
  return steps.map(([from, to]) => log.levelFor(peer, { from, to }));
}

const OPENS: Step = ["CLOSED", "OPEN"];
const PROBES: Step = ["OPEN", "HALF_OPEN"];
const PROBE_FAILS: Step = ["HALF_OPEN", "OPEN"];
const CLOSES: Step = ["HALF_OPEN", "CLOSED"];

describe("breaker transitions' log levels", () => {
  it("logs an outage's opening, first failed probe and closing at info, the probes between at debug", () => {
    const log = new BreakerLogLevels();
    expect(
      levels(log, "n2", [OPENS, PROBES, PROBE_FAILS, PROBES, PROBE_FAILS, PROBES, PROBE_FAILS, PROBES, CLOSES]),
    ).toEqual(["info", "info", "info", "debug", "debug", "debug", "debug", "debug", "info"]);
  });

  it("starts each outage afresh, and keeps peers apart", () => {
    const log = new BreakerLogLevels();
    levels(log, "n2", [OPENS, PROBES, PROBE_FAILS]);
    expect(levels(log, "n3", [OPENS, PROBES, PROBE_FAILS])).toEqual(["info", "info", "info"]);
    expect(levels(log, "n2", [PROBES, CLOSES, OPENS, PROBES, PROBE_FAILS, PROBES])).toEqual([
      "debug",
      "info",
      "info",
      "info",
      "info",
      "debug",
    ]);
  });

  it("forgets a peer that left", () => {
    const log = new BreakerLogLevels();
    levels(log, "n2", [OPENS, PROBES, PROBE_FAILS]);
    log.forget("n2");
    expect(levels(log, "n2", [PROBES, PROBE_FAILS])).toEqual(["info", "info"]);
  });
});
