import { describe, expect, it } from "vitest";
import { NodeEventLog } from "../../src/objects/events";
import type { LogContext } from "../../src/objects/log";

const context: LogContext = { cluster: "c1", node: "n1", term: 3 };

function breakerFeed() {
  let nowMs = 1_000;
  const log = new NodeEventLog(
    () => nowMs++,
    () => 7,
  );
  const transition = (peer: string, from: string, to: string): void =>
    log.record("info", context, "circuitBreaker", { peer, from, to });
  const describeEvent = (fields: Readonly<Record<string, unknown>>): string => {
    const repeats = fields["repeats"] === undefined ? "" : ` x${String(fields["repeats"])}`;
    return `${String(fields["peer"])} ${String(fields["from"])}->${String(fields["to"])}${repeats}`;
  };
  const feed = (): string[] => log.recent({ limit: 256 }).map((e) => describeEvent(e.fields));
  return { log, transition, feed };
}

describe("the event feed and a peer's breaker", () => {
  it("keeps the newest of each probe step of one outage, counting the ones it stands for", () => {
    const { transition, feed } = breakerFeed();
    transition("n2", "CLOSED", "OPEN");
    for (let probe = 0; probe < 100; probe++) {
      transition("n2", "OPEN", "HALF_OPEN");
      transition("n3", "CLOSED", "OPEN"); // another peer's events are left alone
      transition("n2", "HALF_OPEN", "OPEN");
    }
    transition("n2", "OPEN", "HALF_OPEN");
    transition("n2", "HALF_OPEN", "CLOSED");
    expect(feed().filter((line) => line.startsWith("n2"))).toEqual([
      "n2 CLOSED->OPEN",
      "n2 HALF_OPEN->OPEN x100",
      "n2 OPEN->HALF_OPEN x101",
      "n2 HALF_OPEN->CLOSED",
    ]);
    expect(feed().filter((line) => line.startsWith("n3"))).toHaveLength(100);
  });

  it("does not fold a new outage's probes into an earlier outage's", () => {
    const { transition, feed } = breakerFeed();
    for (let outage = 0; outage < 2; outage++) {
      transition("n2", "CLOSED", "OPEN");
      transition("n2", "OPEN", "HALF_OPEN");
      transition("n2", "HALF_OPEN", "OPEN");
      transition("n2", "OPEN", "HALF_OPEN");
      transition("n2", "HALF_OPEN", "CLOSED");
    }
    const outage = ["n2 CLOSED->OPEN", "n2 HALF_OPEN->OPEN", "n2 OPEN->HALF_OPEN x2", "n2 HALF_OPEN->CLOSED"];
    expect(feed()).toEqual([...outage, ...outage]);
  });
});
