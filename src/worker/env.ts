// The bindings the worker receives: those of the node objects (Bindings in src/objects/env.ts), with the entry's
// ClusterNode as the namespace's class, as src/worker/global.d.ts ties them to the runtime's ambient Env.
export type Env = Cloudflare.Env;
