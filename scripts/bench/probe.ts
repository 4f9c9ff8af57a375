// What the local runtime charges an object, at one client: GET /probe/:op on the baseline's worker (bench/baseline),
// each op measured in turn, round after round, and pooled (load.ts, measureInterleaved). The differences from
// "noop" are a storage commit ("write": the answer leaves once the write is durable) and a call to another object
// ("call"). "write-then-call" and "call-then-write" tell whether a call sent before a write in the same turn leaves
// before the write's commit (the output gate holds messages sent after a write; a leader that sends its appends
// before writing its own log, as the Raft thesis allows in §10.2.1, would gain that commit's time).
//
//   npx tsx scripts/bench/probe.ts [--duration-s 10] [--rounds 5]
import { measureInterleaved, type Contender } from "./load";
import { WranglerServer } from "./servers";

const OPS = ["noop", "write", "call", "write-then-call", "call-then-write"] as const;

function numberOf(argv: readonly string[], flag: string, fallback: number): number {
  const at = argv.indexOf(flag);
  const value = at < 0 ? fallback : Number(argv[at + 1]);
  if (!Number.isFinite(value) || value <= 0) {
    throw new Error(`${flag} needs a positive number`);
  }
  return value;
}

async function main(argv: readonly string[]): Promise<void> {
  const durationS = numberOf(argv, "--duration-s", 10);
  const rounds = numberOf(argv, "--rounds", 5);
  const server = await WranglerServer.start("baseline");
  try {
    const contenders: Contender[] = OPS.map((op) => ({
      baseUrl: server.baseUrl,
      shape: { method: "GET", path: `/probe/${op}`, headers: {}, accepts: (body) => body === "1" },
    }));
    const points = await measureInterleaved(contenders, {
      connections: 1,
      durationS,
      warmupS: 1,
      rounds,
      timeoutS: 10,
    });
    const noop = points[0]!.latencyMs;
    console.log(`one client, ${durationS} s per op in ${rounds} rounds; latency in ms`);
    console.log("op               answered   mean    p50    p90   mean − noop");
    OPS.forEach((op, i) => {
      const { ok, errors, latencyMs } = points[i]!;
      const cells = [latencyMs.mean, latencyMs.p50, latencyMs.p90].map((ms) => ms.toFixed(2).padStart(6));
      const extra = (latencyMs.mean - noop.mean).toFixed(2).padStart(8);
      console.log(
        `${op.padEnd(16)} ${String(ok).padStart(8)} ${cells.join(" ")} ${extra}${errors.total > 0 ? `  (${errors.total} errors)` : ""}`,
      );
    });
  } finally {
    await server.stop();
  }
}

await main(process.argv.slice(2));
