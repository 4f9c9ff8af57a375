// The voting census of a node whose storage was new (finding 9 of issue 9). A node that starts with empty storage
// cannot tell a brand-new cluster's first start from a voter whose storage was wiped, which may have voted in a term
// still running and acknowledged entries that are now committed on fewer nodes. So it starts on voting probation
// (it neither votes nor campaigns) and asks every other member of its configuration what it has persisted: its term,
// and whether it holds any log entry or snapshot (PeerReport, answered to any envelope, an empty one included).
// Once every member answered, the core moves to the highest term reported with its vote there spent, and the
// probation ends at once if no member holds a log, or else once a leader has caught it up.
//
// Why this is safe. A vote the lost storage held was granted to a candidate that had persisted that term before
// asking, and a member's persisted term never goes down (only a wipe of that member loses it). So, unless that
// candidate lost its storage too, every term the old incarnation voted in is at or below the highest term reported
// after the wipe, and the node votes only in later terms: it never votes twice in one term. Entries the old
// incarnation acknowledged may now be committed on a minority only: while any member holds a log the node waits
// for a leader to bring it to that leader's commit index, so its up-to-date check vouches again for what it holds
// (with no log anywhere, nothing was ever committed). A member that does not answer keeps the node on probation:
// it may still be caught up, but it votes only once every member answered (a wiped node cannot know which of them
// holds its vote). A brand-new cluster's members all report term 0 and no log, and elect as soon as they answered
// one another: about one round trip, well within an election timeout.
import type { PeerReport } from "./peers";
import type { RuntimeCore } from "./types";
import { censusAskRetryDelayMs } from "../timing";

/** What one member reported: its persisted term, and whether it holds any log entry or snapshot. */
interface CensusAnswer {
  readonly term: number;
  readonly history: boolean;
}

export class VotingCensus {
  private readonly answers = new Map<string, CensusAnswer>();
  private readonly asking = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly nextAskAtMs = new Map<string, number>();
  private concluded = false;

  constructor(
    private readonly core: RuntimeCore,
    /** Sends `peer` an empty envelope; resolves true once it answered (its report then came through noteReport). */
    private readonly ask: (peer: string) => Promise<boolean>,
  ) {}

  /** While open the census asks its peers on every tick (with back-off): the node must not skip ticks. */
  get needsTicks(): boolean {
    return this.open;
  }

  private get open(): boolean {
    return !this.concluded && this.core.raft.status().votingProbation;
  }

  /** A member's answer to any envelope this runtime sent: what its storage holds now. */
  noteReport(peer: string, report: PeerReport): void {
    // A report of an older version carries no term: it is no answer (the node stays on probation until it has one).
    if (!this.open || report.term === undefined) {
      return;
    }
    this.answers.set(peer, { term: report.term, history: report.lastLogIndex > 0 });
    this.maybeConclude();
  }

  /** Each tick while open: conclude if every member answered, else ask those that did not (bounded: one ask each). */
  ticked(): void {
    if (!this.open) {
      return;
    }
    if (this.maybeConclude()) {
      return;
    }
    const nowMs = this.core.deps.clock.now();
    for (const peer of this.membersToHear()) {
      if (this.answers.has(peer) || this.asking.has(peer) || (this.nextAskAtMs.get(peer) ?? 0) > nowMs) {
        continue;
      }
      this.askOnce(peer);
    }
  }

  private askOnce(peer: string): void {
    this.asking.add(peer);
    void this.ask(peer)
      .catch(() => false)
      .then((answered) => {
        this.asking.delete(peer);
        if (answered) {
          this.failures.delete(peer);
          return;
        }
        const failures = (this.failures.get(peer) ?? 0) + 1;
        this.failures.set(peer, failures);
        this.nextAskAtMs.set(
          peer,
          this.core.deps.clock.now() + censusAskRetryDelayMs(this.core.identity.cluster, failures),
        );
      });
  }

  /**
   * Every other member of the applied configuration, or null while the node is in none (a member being added
   * learns its configuration from the leader's first entries or snapshot).
   */
  private membersToHear(): string[] {
    const { membership } = this.core.raft.status();
    const self = this.core.identity.node;
    return [...membership.voters, ...membership.learners].filter((member) => member !== self);
  }

  private maybeConclude(): boolean {
    const { membership } = this.core.raft.status();
    const self = this.core.identity.node;
    if (!membership.voters.includes(self) && !membership.learners.includes(self)) {
      return false;
    }
    const members = this.membersToHear();
    if (!members.every((member) => this.answers.has(member))) {
      return false;
    }
    const heard = members.map((member) => this.answers.get(member) as CensusAnswer);
    const maxTerm = Math.max(0, ...heard.map((answer) => answer.term));
    const history = heard.some((answer) => answer.history);
    this.concluded = true;
    this.core.log("info", "votingCensusConcluded", { members, maxTerm, history });
    this.core.raft.concludeVotingCensus({ maxTerm, history });
    this.core.processReady();
    return true;
  }
}
