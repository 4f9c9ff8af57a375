// npm run sim -- --seed N [--steps S] [--verbose] [--bug NAME]      replay one seed (with its trace on --verbose)
// npm run sim -- --seeds COUNT [--from START] [--steps S] [--bug NAME]  run a range; exit code 1 on any violation
// Without --from the start seed comes from the clock (printed, so that a failure can be replayed); the simulation
// itself never reads a clock.

import { BUG_SCENARIOS, isBugName, type BugName } from "./bugs.js";
import type { Prng } from "./prng.js";
import { formatFailure, runSeed, type Scenario, type SimOptions, type SimResult } from "./run.js";

interface CliOptions {
  seed: number | null;
  seeds: number | null;
  from: number | null;
  steps: number | null;
  verbose: boolean;
  bug: BugName | null;
}

const USAGE = "usage: npm run sim -- (--seed N | --seeds COUNT [--from START]) [--steps S] [--verbose] [--bug " + Object.keys(BUG_SCENARIOS).join("|") + "]";

function parseInteger(flag: string, text: string | undefined, min: number): number {
  const value = Number(text);
  if (text === undefined || !Number.isSafeInteger(value) || value < min) throw new Error(`${flag} needs an integer >= ${min}, got ${text ?? "nothing"}\n${USAGE}`);
  return value;
}

function parseArguments(argv: readonly string[]): CliOptions {
  const options: CliOptions = { seed: null, seeds: null, from: null, steps: null, verbose: false, bug: null };
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
      case "--verbose":
        options.verbose = true;
        break;
      case "--bug": {
        const name = argv[++i] ?? "";
        if (!isBugName(name)) throw new Error(`--bug needs one of ${Object.keys(BUG_SCENARIOS).join(", ")}, got ${name}\n${USAGE}`);
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
  if (options.seed !== null && (options.seeds !== null || options.from !== null)) throw new Error(`--seed runs one seed; use --seeds with --from for a range\n${USAGE}`);
  return options;
}

function simOptions(cli: CliOptions, seed: number, onTraceLine?: (line: string) => void): SimOptions {
  const bug = cli.bug === null ? null : BUG_SCENARIOS[cli.bug];
  return {
    seed,
    ...(cli.steps !== null ? { steps: cli.steps } : bug !== null ? { steps: bug.steps } : {}),
    ...(bug !== null ? { bugs: bug.bugs, adjustScenario: (scenario: Scenario, random: Prng) => bug.adjustScenario(scenario, random, true) } : {}),
    ...(onTraceLine !== undefined ? { onTraceLine } : {}),
  };
}

function replayCommand(cli: CliOptions, seed: number): string {
  const parts = ["npm run sim --", "--seed", String(seed)];
  if (cli.steps !== null) parts.push("--steps", String(cli.steps));
  if (cli.bug !== null) parts.push("--bug", cli.bug);
  return parts.join(" ");
}

function summarize(result: SimResult): string {
  const lincheck = result.lincheck === null ? "not run" : `${result.lincheck.verdict} (${result.lincheck.operations} ops, ${result.lincheck.steps} search steps)`;
  return [
    `seed ${result.seed}: ${result.violations.length === 0 ? "ok" : "FAILED"}, ${result.steps} steps (${result.safetySteps} safety, ${result.livenessSteps} liveness), ${result.simulatedMs}ms simulated`,
    `  liveness converged in ${result.livenessMs === null ? "-" : `${result.livenessMs}ms`}; faults ${result.stats.faults}, crashes ${result.stats.crashes}, elections ${result.stats.elections}, snapshots installed ${result.stats.snapshotsInstalled}`,
    `  messages delivered ${result.stats.messagesDelivered}, dropped ${result.stats.messagesDropped}; committed entries ${result.stats.committedEntries}; operations ${result.stats.operations} (acknowledged writes ${result.stats.acknowledged}, unchecked reads ${result.stats.uncheckedReads})`,
    `  linearizability: ${lincheck}; trace hash ${result.traceHash}`,
  ].join("\n");
}

function runOne(cli: CliOptions, seed: number): number {
  const result = runSeed(simOptions(cli, seed, cli.verbose ? (line) => console.log(line) : undefined));
  console.log(result.scenario);
  console.log(summarize(result));
  if (result.violations.length > 0) {
    console.log(formatFailure(result, replayCommand(cli, seed)));
    return 1;
  }
  return 0;
}

function runRange(cli: CliOptions, count: number): number {
  // The only clock read: choosing where a range starts when none was given (printed for replay).
  const from = cli.from ?? Date.now() % 1_000_000_000;
  console.log(`running ${count} seeds from ${from}${cli.bug === null ? "" : ` with bug ${cli.bug}`}`);
  const startedMs = performance.now();
  let violations = 0;
  let failedSeeds = 0;
  let operations = 0;
  let steps = 0;
  const verdicts = { linearizable: 0, "not-linearizable": 0, unknown: 0 };
  const unknownSeeds: number[] = [];
  for (let seed = from; seed < from + count; seed += 1) {
    const result = runSeed(simOptions(cli, seed));
    steps += result.steps;
    operations += result.lincheck?.operations ?? 0;
    if (result.lincheck !== null) verdicts[result.lincheck.verdict] += 1;
    if (result.lincheck?.verdict === "unknown") unknownSeeds.push(seed);
    if (result.violations.length > 0) {
      violations += result.violations.length;
      failedSeeds += 1;
      console.log(formatFailure(result, replayCommand(cli, seed)));
    }
  }
  const elapsedMs = performance.now() - startedMs;
  console.log(`linearizability verdicts: ${verdicts.linearizable} linearizable, ${verdicts["not-linearizable"]} not linearizable, ${verdicts.unknown} unknown${unknownSeeds.length > 0 ? ` (seeds ${unknownSeeds.slice(0, 20).join(", ")})` : ""}`);
  console.log(`failed seeds ${failedSeeds}; ${(elapsedMs / 1000).toFixed(1)}s, ${(elapsedMs / count).toFixed(1)}ms per seed`);
  console.log(`seeds ${count} (from ${from}), violations ${violations}, operations checked ${operations}, steps ${steps}`);
  return violations > 0 ? 1 : 0;
}

function main(argv: readonly string[]): number {
  const cli = parseArguments(argv);
  if (cli.seed !== null) return runOne(cli, cli.seed);
  return runRange(cli, cli.seeds ?? 100);
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (error) {
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 2;
}
