// The token table: DHA_TOKENS is a JSON object mapping each bearer token to its roles, for example
//   {"a-long-random-admin-token": ["read", "write", "admin"], "a-long-random-reader-token": ["read"]}
// Roles are exactly what is listed (admin does not imply read). "metrics" opens GET /metrics only, so that a
// Prometheus scraper can hold a token without data access. Tokens are kept only as SHA-256 digests, and a
// presented token is compared against every digest in constant time, so neither timing nor order reveals a match.
// A token may be scoped to databases: {"a-tenant-token": {"roles": ["read", "write"], "databases": ["tenant-a"]}}
// opens only those databases ("default" is the database of wrangler.toml) and answers 403 on any other.
import { createHash } from "node:crypto";
import { z } from "zod";
import { ROLES, type Principal } from "../../principal";

interface TokenEntry {
  readonly digest: Uint8Array;
  readonly principal: Principal;
}

export class TokenConfigError extends Error {
  override readonly name = "TokenConfigError";
}

/** RFC 6750 token characters; at least 12 of them so that a token cannot be guessed. */
const TOKEN_PATTERN = /^[A-Za-z0-9._~+/=-]{12,512}$/;
const MAX_TOKENS = 256;
const rolesSchema = z.array(z.enum(ROLES)).min(1);
/** At most this many databases in one token's scope. */
const MAX_SCOPED_DATABASES = 1000;
const DATABASE_IN_SCOPE = /^(?:[a-z0-9][a-z0-9_-]{0,47})$/;
const scopedSchema = z.strictObject({
  roles: rolesSchema,
  databases: z.array(z.string().regex(DATABASE_IN_SCOPE)).min(1).max(MAX_SCOPED_DATABASES).optional(),
});
/** An entry: its roles (every database), or roles with the databases it is scoped to. */
const entrySchema = z.union([rolesSchema, scopedSchema]);

/** Parsed tables by the DHA_TOKENS text; bounded, as the secret changes only on deploy. */
const tables = new Map<string, Promise<readonly TokenEntry[]>>();
const MAX_CACHED_TABLES = 4;

/** Parses (once per distinct text) and hashes the token table. Errors never quote a token. */
export function tokenTable(raw: string): Promise<readonly TokenEntry[]> {
  let table = tables.get(raw);
  if (table === undefined) {
    if (tables.size >= MAX_CACHED_TABLES) {
      tables.clear();
    }
    table = buildTable(raw);
    // A rejected parse is not cached: the error must show on every request, and a fixed secret must take effect.
    table.catch(() => tables.delete(raw));
    tables.set(raw, table);
  }
  return table;
}

async function buildTable(raw: string): Promise<readonly TokenEntry[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new TokenConfigError('DHA_TOKENS is not valid JSON; expected {"<token>": ["read", "write", "admin"], ...}');
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new TokenConfigError('DHA_TOKENS must be a JSON object: {"<token>": ["read", "write", "admin"], ...}');
  }
  const entries = Object.entries(parsed as Record<string, unknown>);
  if (entries.length === 0) {
    throw new TokenConfigError("DHA_TOKENS holds no tokens");
  }
  if (entries.length > MAX_TOKENS) {
    throw new TokenConfigError(`DHA_TOKENS holds ${entries.length} tokens; at most ${MAX_TOKENS} are supported`);
  }
  return Promise.all(
    entries.map(async ([token, roles], index) => {
      const position = index + 1;
      if (!TOKEN_PATTERN.test(token)) {
        throw new TokenConfigError(
          `DHA_TOKENS token #${position} is invalid: use 12-512 characters from A-Z a-z 0-9 . _ ~ + / = -`,
        );
      }
      const checked = entrySchema.safeParse(roles);
      if (!checked.success) {
        const roleList = `a non-empty array of ${ROLES.map((r) => `"${r}"`).join(", ")}`;
        throw new TokenConfigError(
          Array.isArray(roles)
            ? `DHA_TOKENS token #${position} has invalid roles: expected ${roleList}`
            : `DHA_TOKENS token #${position} is invalid: expected ${roleList}, or {"roles": [...], "databases": ["name", ...]} with database names as PUT /api/v1/databases accepts them (or "default")`,
        );
      }
      const entry = Array.isArray(checked.data) ? { roles: checked.data } : checked.data;
      const digest = sha256(token);
      return {
        digest,
        principal: {
          id: hex(digest).slice(0, 16),
          roles: new Set(entry.roles),
          databases: entry.databases === undefined ? null : new Set(entry.databases),
        },
      };
    }),
  );
}

/** Finds the principal of a presented token, comparing against every entry without an early exit. */
export function authenticateToken(table: readonly TokenEntry[], presented: string): Principal | null {
  const digest = sha256(presented);
  let match: Principal | null = null;
  for (const entry of table) {
    if (constantTimeEqual(entry.digest, digest)) {
      match = entry.principal;
    }
  }
  return match;
}

/**
 * Synchronous, through node:crypto (nodejs_compat): every request hashes the token it presents, and
 * crypto.subtle.digest's promise cost about 150 µs of CPU per request in a profile at 32 clients, against a few µs.
 */
function sha256(text: string): Uint8Array {
  return createHash("sha256").update(text, "utf8").digest();
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) {
    return false;
  }
  const subtle = crypto.subtle as SubtleCrypto & { timingSafeEqual?: (x: Uint8Array, y: Uint8Array) => boolean };
  if (typeof subtle.timingSafeEqual === "function") {
    return subtle.timingSafeEqual(a, b);
  }
  let difference = 0;
  for (let i = 0; i < a.length; i++) {
    difference |= (a[i] as number) ^ (b[i] as number);
  }
  return difference === 0;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
