// Credentials for every data and admin route: `Authorization: Bearer <token>`, or HTTP Basic with any user name and
// the token as password (rqlite clients only speak Basic). Fails closed: without DHA_TOKENS nothing protected opens.
import type { Context, MiddlewareHandler } from "hono";
import { createMiddleware } from "hono/factory";
import { auth as parseBasicAuth } from "hono/utils/basic-auth";
import type { AppBindings } from "../../types";
import { ApiError } from "../../http/errors";
import type { Principal, Role } from "../../principal";
import { authenticateToken, tokenTable, TokenConfigError } from "./tokens";

export { ROLES, type Principal, type Role } from "../../principal";

const REALM = "durable-ha";
const CHALLENGE = `Bearer realm="${REALM}", Basic realm="${REALM}", charset="UTF-8"`;

/** Authenticates the request (once) and requires every listed role. */
export function requireRole(...roles: Role[]): MiddlewareHandler<AppBindings> {
  return createMiddleware<AppBindings>(async (c, next) => {
    const principal = await authenticate(c);
    assertRoles(principal, roles);
    await next();
  });
}

/** Refuses (403) a token scoped to other databases than `database`. */
export function assertDatabase(principal: Principal, database: string): void {
  if (principal.databases !== null && !principal.databases.has(database)) {
    throw new ApiError(403, `this token is not scoped to database ${JSON.stringify(database)}`, { code: "FORBIDDEN" });
  }
}

/** Whether the token may address `database`. */
export function mayAccessDatabase(principal: Principal, database: string): boolean {
  return principal.databases === null || principal.databases.has(database);
}

/** For handlers that learn late which roles they need (e.g. /db/request once it knows it writes). */
export function assertRoles(principal: Principal, roles: readonly Role[]): void {
  const missing = roles.filter((role) => !principal.roles.has(role));
  if (missing.length > 0) {
    throw new ApiError(403, `this token lacks the ${missing.map((role) => `"${role}"`).join(" and ")} role`, {
      code: "FORBIDDEN",
    });
  }
}

export async function authenticate(c: Context<AppBindings>): Promise<Principal> {
  const known = c.get("principal");
  if (known !== undefined) {
    return known;
  }
  const raw = c.env.DHA_TOKENS;
  if (raw === undefined || raw.trim() === "") {
    throw new ApiError(
      500,
      "authentication is not configured: set the DHA_TOKENS secret (see .dev.vars.example); protected routes stay closed until then",
      { code: "AUTH_NOT_CONFIGURED" },
    );
  }
  let table;
  try {
    table = await tokenTable(raw);
  } catch (error) {
    if (error instanceof TokenConfigError) {
      throw new ApiError(500, `authentication is misconfigured: ${error.message}`, { code: "AUTH_NOT_CONFIGURED" });
    }
    throw error;
  }
  const presented = presentedToken(c.req.raw);
  const principal = authenticateToken(table, presented);
  if (principal === null) {
    throw unauthorized("invalid token");
  }
  // Routes of one database (the default one included) check the token's scope here, whatever role they need.
  const database = c.get("database");
  if (database !== undefined) {
    assertDatabase(principal, database);
  }
  c.set("principal", principal);
  return principal;
}

function presentedToken(request: Request): string {
  const header = request.headers.get("authorization");
  if (header === null || header.trim() === "") {
    throw unauthorized(
      "credentials required: send Authorization: Bearer <token>, or HTTP Basic with the token as password",
    );
  }
  const [scheme = "", ...rest] = header.trim().split(/\s+/);
  const lowerScheme = scheme.toLowerCase();
  if (lowerScheme === "bearer") {
    const token = rest.join(" ");
    if (rest.length !== 1 || token === "") {
      throw unauthorized("malformed Authorization header: expected Bearer <token>");
    }
    return token;
  }
  if (lowerScheme === "basic") {
    const user = parseBasicAuth(request);
    if (user === undefined) {
      throw unauthorized("malformed Authorization header: expected Basic base64(user:token)");
    }
    return user.password;
  }
  throw unauthorized(`unsupported authorization scheme ${JSON.stringify(scheme)}: use Bearer or Basic`);
}

function unauthorized(message: string): ApiError {
  return new ApiError(401, message, { code: "UNAUTHORIZED", headers: { "WWW-Authenticate": CHALLENGE } });
}
