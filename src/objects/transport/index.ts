// The node-to-node transport: envelopes, error classes, retries, circuit breaker, per-peer sender, test faults.
export * from "./backoff";
export * from "./circuit-breaker";
export * from "./clock";
export * from "./envelope";
export * from "./errors";
export * from "./fault-hook";
export * from "./manual-clock";
export * from "./peer-transport";
