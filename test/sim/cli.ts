// npm run sim -- --seed N [--steps S] [--verbose] [--bug NAME]      replay one seed (with its trace on --verbose)
// npm run sim -- --seeds COUNT [--from START] [--steps S] [--bug NAME]  run a range; exit code 1 on any violation
// --plant-leader-row: after the safety phase, change an acknowledged row on the leader outside Raft (SimOptions);
// --shell-bug NAME: put back one switch of src/objects/shell-bugs.ts (e.g. snapshotImageUnverified with the plant).
// --dedup-window N: every node remembers at most N request ids (SimOptions.maxDedupEntries), so that they forget
// under the checks of the window's in-memory index ("state machine" violations). A window smaller than the retries
// in flight also re-applies a retried write whose id was forgotten, which the linearizability check rightly reports.
// Without --from the start seed comes from the clock (printed, so that a failure can be replayed); the simulation
// itself never reads a clock.

import { BUG_SCENARIOS, isBugName, type BugName } from "./bugs.js";
import type { Prng } from "./prng.js";
import type { ShellBugs } from "../../src/objects/shell-bugs.js";
import { formatFailure, runSeed, type Scenario, type SimOptions, type SimResult } from "./run.js";

interface CliOptions {
  seed: number | null;
  seeds: number | null;
  from: number | null;
  steps: number | null;
  verbose: boolean;
  bug: BugName | null;
  storageErrorsEverywhere: boolean;
  budgetSeconds: number | null;
  plantLeaderRow: boolean;
  shellBug: keyof ShellBugs | null;
  dedupWindow: number | null;
}

const USAGE =
  "usage: npm run sim -- (--seed N | --seeds COUNT [--from START]) [--steps S] [--budget-seconds S] [--verbose] [--storage-errors-everywhere] [--plant-leader-row] [--shell-bug NAME] [--dedup-window N] [--bug " +
  Object.keys(BUG_SCENARIOS).join("|") +
  "]";

function parseInteger(flag: string, text: string | undefined, min: number): number {
  const value = Number(text);
  if (text === undefined || !Number.isSafeInteger(value) || value < min) {
    throw new Error(`${flag} needs an integer >= ${min}, got ${text ?? "nothing"}\n${USAGE}`);
  }
  return value;
}

function parseArguments(argv: readonly string[]): CliOptions {
  const options: CliOptions = {
    seed: null,
    seeds: null,
    from: null,
    steps: null,
    verbose: false,
    bug: null,
    storageErrorsEverywhere: false,
    budgetSeconds: null,
    plantLeaderRow: false,
    shellBug: null,
    dedupWindow: null,
  };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    switch (flag) {
      case "--seed":
        options.seed = parseInteger(flag, argv[++i], 0);
        break;
      case "--seeds":
        options.seeds = parseInteger(flag, argv[++i], 1);
        break;
      case "--from":
        options.from = parseInteger(flag, argv[++i], 0);
        break;
      case "--steps":
        options.steps = parseInteger(flag, argv[++i], 1);
        break;
      case "--budget-seconds":
        options.budgetSeconds = parseInteger(flag, argv[++i], 1);
        break;
      case "--storage-errors-everywhere":
        options.storageErrorsEverywhere = true;
        break;
      case "--verbose":
        options.verbose = true;
        break;
      case "--plant-leader-row":
        options.plantLeaderRow = true;
        break;
      case "--dedup-window":
        options.dedupWindow = parseInteger(flag, argv[++i], 1);
        break;
      case "--shell-bug": {
        const name = argv[++i] ?? "";
        if (!/^[a-zA-Z]+$/.test(name)) {
          throw new Error(`--shell-bug needs the name of a switch in src/objects/shell-bugs.ts, got ${name}\n${USAGE}`);
        }
        options.shellBug = name as keyof ShellBugs;
        break;
      }
      case "--bug": {
        const name = argv[++i] ?? "";
        if (!isBugName(name)) {
          throw new Error(`--bug needs one of ${Object.keys(BUG_SCENARIOS).join(", ")}, got ${name}\n${USAGE}`);
        }
        options.bug = name;
        break;
      }
      case "--help":
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${flag}\n${USAGE}`);
    }
  }
  if (options.seed !== null && (options.seeds !== null || options.from !== null)) {
    throw new Error(`--seed runs one seed; use --seeds with --from for a range\n${USAGE}`);
  }
  return options;
}

function simOptions(cli: CliOptions, seed: number, onTraceLine?: (line: string) => void): SimOptions {
  const bug = cli.bug === null ? null : BUG_SCENARIOS[cli.bug];
  return {
    seed,
    ...(cli.steps !== null ? { steps: cli.steps } : {}),
    ...(bug !== null || cli.shellBug !== null
      ? { bugs: { ...(bug?.bugs ?? {}), ...(cli.shellBug === null ? {} : { [cli.shellBug]: true }) } }
      : {}),
    ...(cli.plantLeaderRow ? { plantLeaderRow: true } : {}),
    ...(cli.dedupWindow === null ? {} : { maxDedupEntries: cli.dedupWindow }),
    ...(bug?.routerBugs !== undefined ? { routerBugs: bug.routerBugs } : {}),
    adjustScenario: (drawn: Scenario, random: Prng) => {
      const scenario = bug === null ? drawn : bug.adjustScenario(drawn, random);
      return cli.storageErrorsEverywhere
        ? { ...scenario, faults: { ...scenario.faults, storageErrors: true, storageErrorsEverywhere: true } }
        : scenario;
    },
    ...(onTraceLine !== undefined ? { onTraceLine } : {}),
  };
}

function replayCommand(cli: CliOptions, seed: number): string {
  const parts = ["npm run sim --", "--seed", String(seed)];
  if (cli.steps !== null) {
    parts.push("--steps", String(cli.steps));
  }
  if (cli.bug !== null) {
    parts.push("--bug", cli.bug);
  }
  if (cli.storageErrorsEverywhere) {
    parts.push("--storage-errors-everywhere");
  }
  if (cli.plantLeaderRow) {
    parts.push("--plant-leader-row");
  }
  if (cli.dedupWindow !== null) {
    parts.push("--dedup-window", String(cli.dedupWindow));
  }
  if (cli.shellBug !== null) {
    parts.push("--shell-bug", cli.shellBug);
  }
  return parts.join(" ");
}

function summarize(result: SimResult): string {
  const lincheck =
    result.lincheck === null
      ? "not run"
      : `${result.lincheck.verdict} (${result.lincheck.operations} ops, ${result.lincheck.steps} search steps)`;
  const stats = result.stats;
  const faults =
    Object.entries(stats.faults)
      .filter(([, count]) => count > 0)
      .map(([kind, count]) => `${kind} ${count}`)
      .join(", ") || "none";
  return [
    `seed ${result.seed}: ${result.violations.length === 0 ? "ok" : "FAILED"}, ${result.steps} steps (${result.safetySteps} safety, ${result.livenessSteps} liveness), ${result.simulatedMs}ms simulated`,
    `  liveness: the healed majority made progress in ${result.livenessMs === null ? "-" : `${result.livenessMs}ms`}; faults: ${faults}; runtimes discarded ${stats.runtimeDiscards}; elections ${stats.elections}`,
    `  RPCs delivered ${stats.messagesDelivered} (duplicates ${stats.duplicatesDelivered}), dropped ${stats.messagesDropped}, answers lost ${stats.answersLost}; committed entries ${stats.committedEntries}`,
    `  operations ${stats.operations} (acknowledged writes ${stats.acknowledged}, resent with the same id ${stats.clientRetriesSameId}); reads ok by level ${JSON.stringify(stats.readsByLevel)}`,
    `  linearizability: ${lincheck}; trace hash ${result.traceHash}`,
  ].join("\n");
}

async function runOne(cli: CliOptions, seed: number): Promise<number> {
  const result = await runSeed(simOptions(cli, seed, cli.verbose ? (line) => console.log(line) : undefined));
  console.log(result.scenario);
  console.log(summarize(result));
  if (result.violations.length > 0) {
    console.log(formatFailure(result, replayCommand(cli, seed)));
    return 1;
  }
  return 0;
}

async function runRange(cli: CliOptions, count: number): Promise<number> {
  // The only clock read: choosing where a range starts when none was given (printed for replay).
  const from = cli.from ?? Date.now() % 1_000_000_000;
  console.log(`running ${count} seeds from ${from}${cli.bug === null ? "" : ` with bug ${cli.bug}`}`);
  const startedMs = performance.now();
  let violations = 0;
  let failedSeeds = 0;
  let operations = 0;
  let steps = 0;
  let firstFailing: number | null = null;
  const faults: Record<string, number> = {};
  const reads = { linearizable: 0, strong: 0, weak: 0, weakFromLeader: 0, none: 0, readYourWrites: 0, backup: 0 };
  let acknowledged = 0;
  let checkpoints = 0;
  const campaigns = { preCampaigns: 0, campaigns: 0, won: 0 };
  const plantOutcomes: Record<string, number> = {};
  const verdicts = { linearizable: 0, "not-linearizable": 0, unknown: 0 };
  const unknownSeeds: number[] = [];
  const controlFailures: number[] = [];
  let ranTo = from + count - 1;
  for (let seed = from; seed < from + count; seed += 1) {
    // A wall-clock budget (long runs): stop between seeds, and say which seeds ran.
    if (cli.budgetSeconds !== null && performance.now() - startedMs > cli.budgetSeconds * 1000) {
      ranTo = seed - 1;
      console.log(`budget of ${cli.budgetSeconds}s spent: stopping after seed ${ranTo}`);
      break;
    }
    const result = await runSeed(simOptions(cli, seed));
    steps += result.steps;
    operations += result.lincheck?.operations ?? 0;
    acknowledged += result.stats.acknowledged;
    checkpoints += result.stats.checkpointsApplied;
    campaigns.preCampaigns += result.stats.campaigns.preCampaigns;
    campaigns.campaigns += result.stats.campaigns.campaigns;
    campaigns.won += result.stats.campaigns.won;
    if (result.stats.plantOutcome !== null) {
      plantOutcomes[result.stats.plantOutcome] = (plantOutcomes[result.stats.plantOutcome] ?? 0) + 1;
    }
    for (const [kind, value] of Object.entries(result.stats.faults)) {
      faults[kind] = (faults[kind] ?? 0) + value;
    }
    for (const level of [
      "linearizable",
      "strong",
      "weak",
      "weakFromLeader",
      "none",
      "readYourWrites",
      "backup",
    ] as const) {
      reads[level] += result.stats.readsByLevel[level];
    }
    if (result.lincheck !== null) {
      verdicts[result.lincheck.verdict] += 1;
    }
    if (result.lincheck?.verdict === "unknown") {
      unknownSeeds.push(seed);
    }
    if (result.violations.length > 0 && cli.bug !== null) {
      // A bug counts as caught only by a seed that passes without it (same scenario tuning, switch off).
      const control = await runSeed({ ...simOptions(cli, seed), bugs: {}, routerBugs: {} });
      if (control.violations.length > 0) {
        console.log(`seed ${seed} fails without the bug too (${control.violations[0]?.kind ?? "?"}): not counted`);
        controlFailures.push(seed);
        continue;
      }
    }
    if (result.violations.length > 0) {
      violations += result.violations.length;
      failedSeeds += 1;
      firstFailing ??= seed;
      console.log(formatFailure(result, replayCommand(cli, seed)));
      if (cli.bug !== null) {
        break;
      }
    }
    const done = seed - from + 1;
    if (done % 100 === 0) {
      console.log(
        `... ${done} seeds, ${((performance.now() - startedMs) / done).toFixed(0)}ms per seed, ${failedSeeds} failed`,
      );
    }
  }
  const ran = steps === 0 ? 0 : Math.max(1, (firstFailing ?? from + count - 1) - from + 1);
  const elapsedMs = performance.now() - startedMs;
  const seedsRun = cli.bug !== null && firstFailing !== null ? ran : ranTo - from + 1;
  console.log(
    `linearizability verdicts: ${verdicts.linearizable} linearizable, ${verdicts["not-linearizable"]} not linearizable, ${verdicts.unknown} unknown${unknownSeeds.length > 0 ? ` (seeds ${unknownSeeds.slice(0, 20).join(", ")})` : ""}`,
  );
  console.log(
    `faults injected: ${Object.entries(faults)
      .map(([kind, value]) => `${kind} ${value} (${(value / seedsRun).toFixed(2)}/seed)`)
      .join(", ")}`,
  );
  console.log(
    `operations: ${operations} checked for linearizability, ${acknowledged} acknowledged writes; reads ok by level ${JSON.stringify(reads)}; consistency checkpoints applied ${checkpoints} (any mismatch fails the seed)` +
      (Object.keys(plantOutcomes).length === 0 ? "" : `; planted divergence: ${JSON.stringify(plantOutcomes)}`),
  );
  console.log(
    `elections: ${campaigns.preCampaigns} pre-campaigns, ${campaigns.campaigns} campaigns, ${campaigns.won} won; campaigns not won ${campaigns.campaigns - campaigns.won} (${campaigns.campaigns === 0 ? "-" : (((campaigns.campaigns - campaigns.won) / campaigns.campaigns) * 100).toFixed(1)}%: split votes, partitions, crashes)`,
  );
  console.log(
    `failed seeds ${failedSeeds}${firstFailing === null ? "" : ` (first ${firstFailing})`}; ${(elapsedMs / 1000).toFixed(1)}s, ${(elapsedMs / seedsRun).toFixed(1)}ms per seed, ${((seedsRun * 1000) / elapsedMs).toFixed(2)} seeds/s`,
  );
  if (controlFailures.length > 0) {
    console.log(`seeds that fail without the bug too (not counted): ${controlFailures.join(", ")}`);
  }
  console.log(
    `seeds ${seedsRun} (${from}..${from + seedsRun - 1}), violations ${violations}, operations checked ${operations}, steps ${steps}`,
  );
  return violations > 0 ? 1 : 0;
}

async function main(argv: readonly string[]): Promise<number> {
  const cli = parseArguments(argv);
  if (cli.seed !== null) {
    return runOne(cli, cli.seed);
  }
  return runRange(cli, cli.seeds ?? 100);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 2;
  },
);
