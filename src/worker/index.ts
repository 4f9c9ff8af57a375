import { createApp } from "./app";

export { ClusterNode } from "../objects/cluster-node";
export { DurableHaApi } from "./rpc";

export default createApp();
