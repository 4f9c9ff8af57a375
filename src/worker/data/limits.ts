// Bounds on what one request may carry. Refusals name the limit, so a client knows what to change.

export interface RequestLimits {
  /** Body of /db/execute, /db/query and /db/request. */
  readonly maxBodyBytes: number;
  readonly maxStatements: number;
  /** The platform binds at most 100 parameters per statement. */
  readonly maxParamsPerStatement: number;
  /** The platform refuses statements longer than 100 KB. */
  readonly maxSqlBytes: number;
  /** Body of /db/load (a SQL dump, applied as one log entry). */
  readonly maxLoadBodyBytes: number;
  readonly maxLoadStatements: number;
  /** Body of the cluster admin routes (small JSON objects). */
  readonly maxAdminBodyBytes: number;
}

export const DEFAULT_LIMITS: RequestLimits = {
  maxBodyBytes: 1024 * 1024,
  maxStatements: 1000,
  maxParamsPerStatement: 100,
  maxSqlBytes: 100 * 1000,
  maxLoadBodyBytes: 4 * 1024 * 1024,
  maxLoadStatements: 50_000,
  maxAdminBodyBytes: 16 * 1024,
};
