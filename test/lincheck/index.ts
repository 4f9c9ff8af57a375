// The project's linearizability checker: WGL search with Porcupine's memoisation, per-partition checking, and
// indeterminate operations. Used by the deterministic simulator (test/sim) and the end-to-end tests.
export type { CheckOptions, CheckResult, Model, Operation, StepResult, Verdict } from "./types";
export { checkLinearizability, describeOperation } from "./checker";
export { HistoryRecorder } from "./history";
export { appendKvModel, partitionByKey, registerModel } from "./models";
export type { KvInput, KvOutput, RegisterInput, RegisterOutput, RegisterValue } from "./models";
export { HistoryParseError, parseEdnMap, parseJepsenEtcdLog, parseKvLog, parseVerdicts } from "./jepsen";
export type { EdnScalar } from "./jepsen";
