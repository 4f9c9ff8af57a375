import js from "@eslint/js";
import tseslint from "typescript-eslint";

// The layers, lowest first. Each may import only from the layers below it, never from one above (see ARCHITECTURE.md):
//   src/quorum       majority arithmetic, node ids (imports nothing)
//   src/election     election timer, vote tally, PreVote and stickiness decisions (imports quorum)
//   src/replication  the Raft node: log, progress, commit, snapshots, membership, reads (imports election, quorum)
//   src/shared       plain request/result shapes and SQL text handling both the node and the worker read (a leaf)
//   src/objects      the Durable Object shell (imports the core and shared)
//   src/worker       the Hono worker (imports objects and shared, never the core directly)
function importsFromLayers(layers, message) {
  return { regex: `^\\.{1,2}/(.*/)?(${layers.join("|")})(/|$)`, message };
}

// What the pure core may never touch: it must stay deterministic and platform-free, so that the simulator and the
// Durable Object run the very same code.
const corePlatformImports = [
  { group: ["cloudflare:*"], message: "The pure core must not import platform modules." },
  { group: ["hono", "hono/*"], message: "The pure core must not import the HTTP layer." },
  { group: ["node:*", "fs", "path", "crypto", "timers"], message: "The pure core does no I/O." },
];
const coreOneWay =
  "Imports run worker -> objects -> replication -> election -> quorum: nothing imports a layer above it.";
const quorumForbiddenImports = {
  patterns: [
    ...corePlatformImports,
    importsFromLayers(["election", "replication", "shared", "objects", "worker"], coreOneWay),
  ],
};
const electionForbiddenImports = {
  patterns: [...corePlatformImports, importsFromLayers(["replication", "shared", "objects", "worker"], coreOneWay)],
};
const replicationForbiddenImports = {
  patterns: [...corePlatformImports, importsFromLayers(["shared", "objects", "worker"], coreOneWay)],
};
const sharedForbiddenImports = {
  patterns: [
    ...corePlatformImports,
    importsFromLayers(
      ["quorum", "election", "replication", "objects", "worker"],
      "src/shared is a leaf both the node and the worker read: it imports no other layer.",
    ),
  ],
};

// The Durable Object shell sits below the worker: it takes what it needs from src/objects (e.g. ./env for the
// bindings), so that the worker can change without the node objects noticing.
const objectsForbiddenImports = {
  patterns: [
    importsFromLayers(
      ["worker"],
      "Imports run worker -> objects -> core: src/objects imports nothing from src/worker.",
    ),
  ],
};
// The worker reaches the objects, and through them the core, only by src/objects/api.ts, the one contract between
// them: it re-exports what the worker may see.
const workerOnlyThroughApi =
  "Imports run worker -> objects -> core: the worker imports only src/objects/api.ts (re-export what it needs there).";
const workerForbiddenImports = {
  patterns: [
    importsFromLayers(["quorum", "election", "replication"], workerOnlyThroughApi),
    { regex: "^\\.{1,2}/(.*/)?objects/(?!api$)", message: workerOnlyThroughApi },
  ],
};
// The one place where the worker meets the objects' insides: the entry module hands the Durable Object class to the
// runtime (wrangler.toml's main).
const workerEntryImports = {
  patterns: [importsFromLayers(["quorum", "election", "replication"], workerOnlyThroughApi)],
};
const coreForbiddenSyntax = [
  { selector: "Identifier[name='Date']", message: "The pure core reads no clock: time enters as tick()." },
  {
    selector: "MemberExpression[object.name='Math'][property.name='random']",
    message: "The pure core takes randomness from its injected seeded generator.",
  },
  {
    selector: "MemberExpression[object.name='performance'][property.name='now']",
    message: "The pure core reads no clock: time enters as tick().",
  },
  {
    selector: "Identifier[name=/^(setTimeout|setInterval|setImmediate|queueMicrotask)$/]",
    message: "The pure core sets no timers.",
  },
  {
    selector: "Identifier[name=/^(fetch|performance|crypto)$/]",
    message: "The pure core does no I/O and reads no clock.",
  },
];

// One Ready loop in the codebase (src/replication/ready-loop.ts): everything else that drives the core, the runtime
// and the tests alike, hands its steps to handleReadies instead of taking Readys itself.
const oneReadyLoop = {
  selector: "CallExpression[callee.type='MemberExpression'][callee.property.name='ready'][arguments.length=0]",
  message: "Readys are taken only by handleReadies (src/replication/ready-loop.ts): pass it your ports instead.",
};

export default tseslint.config(
  { ignores: ["**/node_modules/", "**/dist/", "**/.wrangler/", "coverage/", "bench/results/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      curly: ["error", "all"],
    },
  },
  { files: ["src/**/*.ts", "test/**/*.ts"], rules: { "no-restricted-syntax": ["error", oneReadyLoop] } },
  {
    files: ["src/quorum/**/*.ts", "src/election/**/*.ts", "src/replication/**/*.ts"],
    rules: {
      "no-restricted-syntax": ["error", ...coreForbiddenSyntax, oneReadyLoop],
      "no-restricted-globals": ["error", "Date", "setTimeout", "setInterval", "performance", "fetch", "crypto"],
    },
  },
  { files: ["src/replication/ready-loop.ts"], rules: { "no-restricted-syntax": ["error", ...coreForbiddenSyntax] } },
  { files: ["src/quorum/**/*.ts"], rules: { "no-restricted-imports": ["error", quorumForbiddenImports] } },
  { files: ["src/election/**/*.ts"], rules: { "no-restricted-imports": ["error", electionForbiddenImports] } },
  { files: ["src/replication/**/*.ts"], rules: { "no-restricted-imports": ["error", replicationForbiddenImports] } },
  { files: ["src/shared/**/*.ts"], rules: { "no-restricted-imports": ["error", sharedForbiddenImports] } },
  { files: ["src/objects/**/*.ts"], rules: { "no-restricted-imports": ["error", objectsForbiddenImports] } },
  { files: ["src/worker/**/*.ts"], rules: { "no-restricted-imports": ["error", workerForbiddenImports] } },
  {
    files: ["src/worker/index.ts"],
    rules: { "no-restricted-imports": ["error", workerEntryImports] },
  },
  {
    files: ["scripts/**/*.mjs", "*.js"],
    languageOptions: { globals: { process: "readonly", console: "readonly", URL: "readonly" } },
  },
);
