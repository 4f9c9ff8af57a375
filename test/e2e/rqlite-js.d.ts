// rqlite-js ships no types: what the end-to-end test uses of it, as its README documents.
declare module "rqlite-js" {
  interface DataResult {
    toObject(): Record<string, unknown>;
    getLastInsertId(): number | undefined;
    getRowsAffected(): number | undefined;
  }
  interface DataResults {
    hasError(): boolean;
    get(index: number): DataResult;
    getFirstError(): { toString(): string } | undefined;
    toArray(): Record<string, unknown>[];
  }
  type Statement = string | [string, ...unknown[]];
  export class DataApiClient {
    constructor(hosts: string | string[], options?: { authentication?: { username?: string; password?: string } });
    execute(sql: Statement | Statement[], options?: Record<string, unknown>): Promise<DataResults>;
    query(sql: Statement | Statement[], options?: { level?: "none" | "weak" | "strong" }): Promise<DataResults>;
  }
}
