// The deployment's bindings and variables, for the worker: declared in cluster-node.ts, beside the object that
// receives them (it names its own namespace binding), and handed on from here so that nothing imports back into it.
export type { Env } from "./cluster-node";
