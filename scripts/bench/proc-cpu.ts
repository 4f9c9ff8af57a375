// CPU time of a process group from /proc (Linux only): scripts/bench/cpu.ts and scripts/bench/ab.ts.
import { readdirSync, readFileSync } from "node:fs";

const CLOCK_TICKS_PER_S = 100;

/**
 * CPU milliseconds used so far by each command (wrangler's node, workerd) of process group `pgid`: utime + stime,
 * from /proc/PID/stat.
 */
export function groupCpuMsByCommand(pgid: number): Map<string, number> {
  const byCommand = new Map<string, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) {
      continue;
    }
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // it exited meanwhile
    }
    // Fields after the command (which may hold spaces) start after its closing parenthesis: state is field 3.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) === pgid) {
      const command = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ms = ((Number(fields[11]) + Number(fields[12])) * 1_000) / CLOCK_TICKS_PER_S;
      byCommand.set(command, (byCommand.get(command) ?? 0) + ms);
    }
  }
  return byCommand;
}

/** CPU milliseconds used so far by all the processes of group `pgid`. */
export function groupCpuMs(pgid: number): number {
  return [...groupCpuMsByCommand(pgid).values()].reduce((a, b) => a + b, 0);
}
