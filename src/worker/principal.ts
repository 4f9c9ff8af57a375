// Who a request acts as once authenticated: the roles a token grants and the databases it may address. A leaf: the
// auth middleware makes principals (middleware/auth/tokens.ts) and the app's request variables (types.ts) carry them.

export const ROLES = ["read", "write", "admin", "metrics"] as const;
export type Role = (typeof ROLES)[number];

export interface Principal {
  /** Stable and not secret: the first 16 hex digits of the token's SHA-256. Namespaces idempotency keys. */
  readonly id: string;
  readonly roles: ReadonlySet<Role>;
  /** The databases this token may address; null: every database. */
  readonly databases: ReadonlySet<string> | null;
}
