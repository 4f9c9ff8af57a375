import { createApp } from "./app";

export { ClusterNode } from "../objects/cluster-node";

export default createApp();
