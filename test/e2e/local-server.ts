// The local server of scripts/lib/local-server.ts as the end-to-end tests use it: one server per test file, started
// before its tests with the development admin token and always stopped after them, even when a test fails.
import { afterAll, beforeAll } from "vitest";
import { STOP_TIMEOUT_MS } from "../../scripts/lib/processes";
import { developmentAdminToken, LocalServer, STARTUP_TIMEOUT_MS } from "../../scripts/lib/local-server";

export { freePort, pollUntil, sleep } from "../../scripts/lib/processes";

/** The file's server and the token its tests call it with; read them inside tests (they exist once beforeAll ran). */
export interface LocalServerFixture {
  readonly server: LocalServer;
  readonly token: string;
}

/**
 * Registers beforeAll/afterAll hooks that start the local server (with `extraArgs`, after `before` has run: e.g. a
 * receiver the server must know the port of) and stop it (then `after`).
 */
export function withLocalServer(
  options: {
    readonly extraArgs?: () => readonly string[];
    readonly before?: () => Promise<void>;
    readonly after?: () => Promise<void>;
  } = {},
): LocalServerFixture {
  let server: LocalServer | undefined;
  let token: string | undefined;
  beforeAll(
    async () => {
      token = developmentAdminToken();
      await options.before?.();
      server = await LocalServer.start({ extraArgs: options.extraArgs?.() ?? [] });
    },
    STARTUP_TIMEOUT_MS + STOP_TIMEOUT_MS + 5_000,
  );
  afterAll(
    async () => {
      await server?.stop();
      await options.after?.();
    },
    STOP_TIMEOUT_MS * 2 + 5_000,
  );
  return {
    get server(): LocalServer {
      if (server === undefined) {
        throw new Error("the local server is not started: use it inside a test, after beforeAll");
      }
      return server;
    },
    get token(): string {
      if (token === undefined) {
        throw new Error("the development token is not read yet: use it inside a test, after beforeAll");
      }
      return token;
    },
  };
}
