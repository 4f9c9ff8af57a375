// The part of node:async_hooks that src/objects/trace.ts uses. The Workers runtime provides the module under the
// nodejs_compat flag (wrangler.toml), but the Workers type definitions do not declare it.
declare module "node:async_hooks" {
  export class AsyncLocalStorage<T> {
    getStore(): T | undefined;
    run<R>(store: T, callback: () => R): R;
  }
}
