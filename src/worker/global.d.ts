// Ties the runtime's ambient types (`env` of cloudflare:test, `exports` of cloudflare:workers) to this worker.
/* eslint-disable @typescript-eslint/consistent-type-imports, @typescript-eslint/no-empty-object-type --
   an ambient declaration file can only reach module types through import() and merges by empty extension. */
type WorkerEnv = import("../objects/api").Bindings<import("./index").ClusterNode>;

declare namespace Cloudflare {
  interface Env extends WorkerEnv {}
  interface GlobalProps {
    mainModule: typeof import("./index");
    durableNamespaces: "ClusterNode";
  }
}
