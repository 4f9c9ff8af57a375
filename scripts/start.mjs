// `npm start`: a local cluster under Miniflare (wrangler dev), offline and without prompts.
// Extra arguments pass through to wrangler: `npm start -- --port 8788`.
import { spawn } from "node:child_process";
import { copyFileSync, existsSync } from "node:fs";

// Development secrets come from the committed example the first time, so a fresh clone starts with auth on.
if (!existsSync(".dev.vars") && existsSync(".dev.vars.example")) {
  copyFileSync(".dev.vars.example", ".dev.vars");
  console.log("created .dev.vars from .dev.vars.example (development tokens; never use them in production)");
}

const args = ["dev", "--local", "--show-interactive-dev-session=false", ...process.argv.slice(2)];
const child = spawn("wrangler", args, {
  stdio: "inherit",
  env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
});
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => child.kill(signal));
}
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
