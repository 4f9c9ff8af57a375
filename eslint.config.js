import js from "@eslint/js";
import tseslint from "typescript-eslint";

// What the pure core (src/election, src/replication) may never touch: it must stay deterministic and
// platform-free, so that the simulator and the Durable Object run the very same code.
const coreForbiddenImports = {
  patterns: [
    { group: ["cloudflare:*"], message: "The pure core must not import platform modules." },
    { group: ["hono", "hono/*"], message: "The pure core must not import the HTTP layer." },
    { group: ["node:*", "fs", "path", "crypto", "timers"], message: "The pure core does no I/O." },
    {
      regex: "^\\.{1,2}/(.*/)?(objects|worker)(/|$)",
      message: "Imports run worker -> objects -> core: the core imports nothing from src/objects or src/worker.",
    },
  ],
};

// The Durable Object shell sits below the worker: it takes what it needs from src/objects (e.g. ./env for the
// bindings), so that the worker can change without the node objects noticing.
const objectsForbiddenImports = {
  patterns: [
    {
      regex: "^\\.{1,2}/(.*/)?worker(/|$)",
      message: "Imports run worker -> objects -> core: src/objects imports nothing from src/worker.",
    },
  ],
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
  {
    files: ["src/election/**/*.ts", "src/replication/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", coreForbiddenImports],
      "no-restricted-syntax": ["error", ...coreForbiddenSyntax],
      "no-restricted-globals": ["error", "Date", "setTimeout", "setInterval", "performance", "fetch", "crypto"],
    },
  },
  {
    files: ["src/objects/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", objectsForbiddenImports],
    },
  },
  {
    files: ["scripts/**/*.mjs", "*.js"],
    languageOptions: { globals: { process: "readonly", console: "readonly", URL: "readonly" } },
  },
);
