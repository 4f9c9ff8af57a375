// The worker receives the same bindings as the node objects: the type lives with them (imports run worker -> objects).
export type { Env } from "../objects/api";
