// The part of node:crypto that src/objects/sha256.ts and the worker's token check use. The Workers runtime provides the module under the
// nodejs_compat flag (wrangler.toml), but the Workers type definitions do not declare it.
declare module "node:crypto" {
  export interface Hash {
    update(data: string, inputEncoding: "utf8"): Hash;
    digest(encoding: "hex"): string;
    /** A Buffer, which is a Uint8Array. */
    digest(): Uint8Array;
  }
  export function createHash(algorithm: "sha256"): Hash;
}
