// SQL text without a database: tokens, statement classification, splitting a dump into statements, and the limits on
// statements and requests. Both the worker (routing, early refusals) and the node (validation, rewriting, the
// runaway-write check, dumps) read SQL through this package, so the two never disagree on where a statement ends or
// what it is. Everything that needs the database itself stays in src/objects/sql.
export * from "./classify";
export * from "./limits";
export * from "./split";
export * from "./tokenizer";
