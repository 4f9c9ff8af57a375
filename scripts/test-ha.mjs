// `npm run test:ha -- --repeat N`: runs the HA scenario suite (test/workers/ha-*.test.ts, issue #6) N times through
// vitest and prints the pass rate per scenario and overall; the overall percentage is the last line printed.
// A scenario passes in a run only when every one of its tests passed; skipped tests count as failures.
// Options: --repeat N (default 1), --filter <vitest path filter> (default test/workers/ha-), --keep (keep the logs).
// Exit code 0 only at 100%.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout, clearTimeout } from "node:timers";
import { Buffer } from "node:buffer";

const MAX_REPEAT = 1000;
/** One run of the whole suite may take this long before it is stopped and counted as failed. */
const RUN_TIMEOUT_MS = 15 * 60 * 1000;

function parseArgs(argv) {
  const options = { repeat: 1, filter: "test/workers/ha-", keep: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--repeat" || arg === "-n") {
      const value = Number(argv[++i]);
      if (!Number.isInteger(value) || value < 1 || value > MAX_REPEAT) {
        throw new Error(`--repeat needs a whole number from 1 to ${MAX_REPEAT}, got ${argv[i]}`);
      }
      options.repeat = value;
    } else if (arg === "--filter") {
      const value = argv[++i];
      if (value === undefined || value === "") {
        throw new Error("--filter needs a vitest path filter, e.g. test/workers/ha-partition");
      }
      options.filter = value;
    } else if (arg === "--keep") {
      options.keep = true;
    } else if (arg === "--help" || arg === "-h") {
      console.log("usage: npm run test:ha -- [--repeat N] [--filter test/workers/ha-] [--keep]");
      process.exit(0);
    } else {
      throw new Error(`unknown argument ${JSON.stringify(arg)} (see --help)`);
    }
  }
  return options;
}

/** "scenario 9: 5% packet loss ..." -> "scenario 9"; tests outside the numbering are grouped by their own title. */
function scenarioOf(title) {
  const match = /^scenario (\d+)\b/.exec(title);
  return match === null ? title : `scenario ${match[1]}`;
}

function scenarioOrder(a, b) {
  const na = Number(/^scenario (\d+)$/.exec(a)?.[1] ?? Number.MAX_SAFE_INTEGER);
  const nb = Number(/^scenario (\d+)$/.exec(b)?.[1] ?? Number.MAX_SAFE_INTEGER);
  return na - nb || a.localeCompare(b);
}

/** Runs vitest once; resolves with its exit code (or null when it had to be stopped). */
function runVitest(filter, outputFile, logFile) {
  return new Promise((resolve) => {
    // The default reporter writes the console output (seeds, per-scenario figures) to the log; json feeds the table.
    const args = [
      "run",
      "--project",
      "workers",
      filter,
      "--reporter=default",
      "--reporter=json",
      `--outputFile.json=${outputFile}`,
    ];
    // The project's own vitest (npm run puts node_modules/.bin, and the project's Node 22, first on the PATH).
    const local = join("node_modules", ".bin", "vitest");
    const child = spawn(existsSync(local) ? local : "vitest", args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: process.env,
    });
    const chunks = [];
    child.stdout.on("data", (chunk) => chunks.push(chunk));
    child.stderr.on("data", (chunk) => chunks.push(chunk));
    const timer = setTimeout(() => {
      chunks.push(Buffer.from(`\n[test-ha] stopped after ${RUN_TIMEOUT_MS} ms\n`));
      child.kill("SIGKILL");
    }, RUN_TIMEOUT_MS);
    child.on("error", (error) => {
      chunks.push(Buffer.from(`\n[test-ha] could not run vitest: ${error.message}\n`));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      writeFileSync(logFile, Buffer.concat(chunks));
      resolve(code);
    });
  });
}

/** The outcome of every test of one run: { scenario, title, passed, failure }[], or null when there is no report. */
function readReport(outputFile) {
  if (!existsSync(outputFile)) {
    return null;
  }
  let report;
  try {
    report = JSON.parse(readFileSync(outputFile, "utf8"));
  } catch {
    return null;
  }
  const tests = [];
  for (const file of report.testResults ?? []) {
    const assertions = file.assertionResults ?? [];
    if (assertions.length === 0) {
      // The file failed before any test ran (an import or syntax error): a failure of its own.
      tests.push({
        scenario: `file ${file.name}`,
        title: file.name,
        passed: false,
        failure: String(file.message ?? "no tests ran"),
      });
    }
    for (const test of assertions) {
      tests.push({
        scenario: scenarioOf(test.title),
        title: test.title,
        passed: test.status === "passed",
        failure:
          test.status === "passed"
            ? ""
            : `${test.status}: ${(test.failureMessages ?? []).join(" ").split("\n")[0] ?? ""}`,
      });
    }
  }
  return tests;
}

function percent(passed, total) {
  return total === 0 ? "0.0%" : `${((100 * passed) / total).toFixed(1)}%`;
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const workDir = mkdtempSync(join(tmpdir(), "test-ha-"));
  /** scenario -> { passed, runs, tests: Set, durations } */
  const scenarios = new Map();
  const failures = [];
  let greenRuns = 0;
  const startedAt = Date.now();

  for (let run = 1; run <= options.repeat; run++) {
    const outputFile = join(workDir, `run-${run}.json`);
    const logFile = join(workDir, `run-${run}.log`);
    const runStartedAt = Date.now();
    const code = await runVitest(options.filter, outputFile, logFile);
    const seconds = ((Date.now() - runStartedAt) / 1000).toFixed(1);
    const tests = readReport(outputFile);
    if (tests === null || tests.length === 0) {
      const entry = scenarios.get("(suite did not report)") ?? { passed: 0, runs: 0, tests: new Set() };
      entry.runs++;
      scenarios.set("(suite did not report)", entry);
      failures.push(`run ${run}: vitest exited with ${code} and wrote no report (log: ${logFile})`);
      console.log(`run ${run}/${options.repeat}: NO REPORT (exit ${code}) in ${seconds} s`);
      continue;
    }
    const byScenario = new Map();
    for (const test of tests) {
      const list = byScenario.get(test.scenario) ?? [];
      list.push(test);
      byScenario.set(test.scenario, list);
    }
    let runGreen = true;
    for (const [scenario, list] of byScenario) {
      const entry = scenarios.get(scenario) ?? { passed: 0, runs: 0, tests: new Set() };
      entry.runs++;
      for (const test of list) {
        entry.tests.add(test.title);
      }
      if (list.every((test) => test.passed)) {
        entry.passed++;
      } else {
        runGreen = false;
      }
      scenarios.set(scenario, entry);
      for (const test of list.filter((t) => !t.passed)) {
        failures.push(`run ${run}: ${test.title}: ${test.failure.slice(0, 300)} (log: ${logFile})`);
      }
    }
    if (runGreen) {
      greenRuns++;
    }
    const passedTests = tests.filter((test) => test.passed).length;
    console.log(
      `run ${run}/${options.repeat}: ${passedTests}/${tests.length} tests passed in ${seconds} s${runGreen ? "" : " (FAILURES)"}`,
    );
  }

  const names = [...scenarios.keys()].sort(scenarioOrder);
  const width = Math.max(10, ...names.map((name) => name.length));
  console.log("");
  if (failures.length > 0) {
    console.log("failures:");
    for (const failure of failures) {
      console.log(`  ${failure}`);
    }
    console.log("");
  }
  console.log(`${"scenario".padEnd(width)}  tests  passed/runs  pass rate`);
  let passedPairs = 0;
  let totalPairs = 0;
  for (const name of names) {
    const entry = scenarios.get(name);
    passedPairs += entry.passed;
    totalPairs += entry.runs;
    console.log(
      `${name.padEnd(width)}  ${String(entry.tests.size).padStart(5)}  ${`${entry.passed}/${entry.runs}`.padStart(11)}  ${percent(entry.passed, entry.runs).padStart(9)}`,
    );
  }
  console.log(`${"".padEnd(width, "-")}  -----  -----------  ---------`);
  console.log(
    `suite runs with every scenario passing: ${greenRuns}/${options.repeat}; total time ${((Date.now() - startedAt) / 1000).toFixed(0)} s`,
  );
  if (options.keep || failures.length > 0) {
    console.log(`reports and logs: ${workDir}`);
  } else {
    rmSync(workDir, { recursive: true, force: true });
  }
  const overall = percent(passedPairs, totalPairs);
  console.log(`overall pass rate: ${overall}`);
  process.exitCode = passedPairs === totalPairs && totalPairs > 0 ? 0 : 1;
}

main().catch((error) => {
  console.error(`test-ha: ${error instanceof Error ? error.message : String(error)}`);
  console.log("overall pass rate: 0.0%");
  process.exitCode = 2;
});
