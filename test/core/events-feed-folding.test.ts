import { describe, expect, it } from "vitest";
import { NodeEventLog, FLAP_WINDOW_MS } from "../../src/objects/events";
import type { LogContext } from "../../src/objects/log";

const context: LogContext = { cluster: "c1", node: "n1", term: 3 };

/** A feed whose clock moves one millisecond per reading (or as `advance` says), and its events in short form. */
function transitionFeed(event: "circuitBreaker" | "replicaStatus") {
  let nowMs = 1_000;
  const log = new NodeEventLog(
    () => nowMs++,
    () => 7,
  );
  const transition = (peer: string, from: string | null, to: string): void =>
    log.record("info", context, event, { peer, from, to });
  const describeEvent = (fields: Readonly<Record<string, unknown>>): string => {
    const repeats = fields["repeats"] === undefined ? "" : ` x${String(fields["repeats"])}`;
    return `${String(fields["peer"])} ${String(fields["from"])}->${String(fields["to"])}${repeats}`;
  };
  const feed = (): string[] =>
    log
      .recent({ limit: 256 })
      .filter((e) => e.event === event)
      .map((e) => describeEvent(e.fields));
  const advance = (ms: number): void => {
    nowMs += ms;
  };
  return { log, transition, feed, advance };
}

const breakerFeed = () => transitionFeed("circuitBreaker");

describe("the event feed and a peer's breaker", () => {
  it("keeps the newest of each probe step of one outage, counting the ones it stands for", () => {
    const { transition, feed } = breakerFeed();
    transition("n2", "CLOSED", "OPEN");
    for (let probe = 0; probe < 100; probe++) {
      transition("n2", "OPEN", "HALF_OPEN");
      transition("n3", "CLOSED", "OPEN"); // another peer's transitions fold on their own
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
    expect(feed().filter((line) => line.startsWith("n3"))).toEqual(["n3 CLOSED->OPEN x100"]);
  });

  it("folds the outages of a flaky link into one run, and starts a new run after a quiet minute", () => {
    const { transition, feed, advance } = breakerFeed();
    const outage = (): void => {
      transition("n2", "CLOSED", "OPEN");
      transition("n2", "OPEN", "HALF_OPEN");
      transition("n2", "HALF_OPEN", "OPEN");
      transition("n2", "OPEN", "HALF_OPEN");
      transition("n2", "HALF_OPEN", "CLOSED");
    };
    outage();
    outage();
    expect(feed()).toEqual([
      "n2 CLOSED->OPEN x2",
      "n2 HALF_OPEN->OPEN x2",
      "n2 OPEN->HALF_OPEN x4",
      "n2 HALF_OPEN->CLOSED x2",
    ]);
    advance(FLAP_WINDOW_MS + 1);
    outage();
    expect(feed().slice(4)).toEqual([
      "n2 CLOSED->OPEN",
      "n2 HALF_OPEN->OPEN",
      "n2 OPEN->HALF_OPEN x2",
      "n2 HALF_OPEN->CLOSED",
    ]);
  });
});

describe("the event feed and a flapping replica", () => {
  it("keeps the newest of each flip of a replica under message loss, counting them and saying since when", () => {
    const { log, transition, feed } = transitionFeed("replicaStatus");
    transition("n2", null, "JOINING");
    transition("n2", "JOINING", "ONLINE");
    log.record("info", context, "becameLeader", { term: 3 });
    for (let flip = 0; flip < 500; flip++) {
      transition("n2", "ONLINE", "RECONNECTING");
      transition("n2", "RECONNECTING", "ONLINE");
      transition("n3", "ONLINE", "RECONNECTING"); // another peer's flips fold on their own
      transition("n3", "RECONNECTING", "ONLINE");
    }
    log.record("info", context, "membershipApplied", { voters: ["n1", "n2", "n3"] });
    expect(feed()).toEqual([
      "n2 null->JOINING",
      "n2 JOINING->ONLINE",
      "n2 ONLINE->RECONNECTING x500",
      "n2 RECONNECTING->ONLINE x500",
      "n3 ONLINE->RECONNECTING x500",
      "n3 RECONNECTING->ONLINE x500",
    ]);
    // The election and the membership change are still there: the flips took six places, not two thousand.
    const events = log.recent({ limit: 256 });
    expect(events.map((e) => e.event).filter((name) => name !== "replicaStatus")).toEqual([
      "becameLeader",
      "membershipApplied",
    ]);
    const firstFlip = events.find((e) => e.fields["peer"] === "n2" && e.fields["to"] === "RECONNECTING");
    expect(firstFlip?.fields["firstTimeMs"]).toBe(events.find((e) => e.event === "becameLeader")!.timeMs + 1);
  });

  it("ends a run of flips at OFFLINE and at a new leader's first status, and after a quiet minute", () => {
    const { transition, feed, advance } = transitionFeed("replicaStatus");
    const flap = (): void => {
      transition("n2", "ONLINE", "RECONNECTING");
      transition("n2", "RECONNECTING", "ONLINE");
    };
    flap();
    flap();
    transition("n2", "ONLINE", "OFFLINE");
    transition("n2", "OFFLINE", "ONLINE");
    flap();
    transition("n2", null, "JOINING"); // this node leads again, in a later term
    transition("n2", "JOINING", "ONLINE");
    flap();
    advance(FLAP_WINDOW_MS + 1);
    flap();
    expect(feed()).toEqual([
      "n2 ONLINE->RECONNECTING x2",
      "n2 RECONNECTING->ONLINE x2",
      "n2 ONLINE->OFFLINE",
      "n2 OFFLINE->ONLINE",
      "n2 ONLINE->RECONNECTING",
      "n2 RECONNECTING->ONLINE",
      "n2 null->JOINING",
      "n2 JOINING->ONLINE",
      "n2 ONLINE->RECONNECTING",
      "n2 RECONNECTING->ONLINE",
      "n2 ONLINE->RECONNECTING",
      "n2 RECONNECTING->ONLINE",
    ]);
  });

  it("folds flips between ONLINE, LAGGING and RECONNECTING of a busy, lossy link into one place each", () => {
    const { transition, feed } = transitionFeed("replicaStatus");
    for (let round = 0; round < 50; round++) {
      transition("n2", "ONLINE", "LAGGING");
      transition("n2", "LAGGING", "RECONNECTING");
      transition("n2", "RECONNECTING", "LAGGING");
      transition("n2", "LAGGING", "ONLINE");
      transition("n2", "ONLINE", "RECONNECTING");
      transition("n2", "RECONNECTING", "ONLINE");
    }
    expect(feed()).toHaveLength(6);
    expect(feed().every((line) => line.endsWith(" x50"))).toBe(true);
  });
});
