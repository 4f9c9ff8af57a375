// GET /openapi.json: the API as OpenAPI 3.1, written by hand next to the routes it describes.
import { READ_LEVELS } from "../http/params";

const json = "application/json";

const errorResponse = (description: string) => ({
  description,
  content: { [json]: { schema: { $ref: "#/components/schemas/Error" } } },
});

const dataErrors = {
  "400": {
    description: "Unparseable request, bad parameter or a statement the node refused before the log; nothing was applied.",
    content: { [json]: { schema: { $ref: "#/components/schemas/RequestError" } } },
  },
  "401": errorResponse("Missing or invalid credentials (WWW-Authenticate names Bearer and Basic)."),
  "403": errorResponse("The token lacks the role the route needs."),
  "413": {
    description: "Body, statement count, statement length or parameter count over the limit.",
    content: { [json]: { schema: { $ref: "#/components/schemas/RequestError" } } },
  },
  "503": {
    description: "No leader (election did not complete in time), no node reachable or a node overloaded. Retry-After says when to retry.",
    headers: { "Retry-After": { schema: { type: "integer" } } },
    content: { [json]: { schema: { $ref: "#/components/schemas/RequestError" } } },
  },
  "504": {
    description: "The deadline passed after a write was sent: its outcome is unknown. Resend with Idempotency-Key set to X-DHA-Request-Id to retry safely.",
    content: { [json]: { schema: { $ref: "#/components/schemas/RequestError" } } },
  },
};

const flag = (name: string, description: string) => ({
  name,
  in: "query",
  description: `${description} (a flag: present means on, as in rqlite)`,
  allowEmptyValue: true,
  schema: { type: "string" },
});

const commonDataParams = [
  flag("pretty", "Indent the JSON"),
  flag("timings", "Add time fields (seconds)"),
  flag("transaction", "All statements or none"),
  flag("raft_index", "Add raft_index (the log index of a write, the applied index a read saw) to the body"),
  flag("redirect", "Accepted for rqlite compatibility; the worker always forwards to the leader itself"),
  { name: "timeout", in: "query", description: "Request deadline as a Go duration (default 10s, at most 60s)", schema: { type: "string", example: "2s" } },
];

const readParams = [
  flag("associative", "Rows as objects keyed by column"),
  flag("blob_array", "BLOBs as arrays of byte values instead of base64"),
  { name: "level", in: "query", description: "Read consistency; default weak. auto is none when freshness is given, else weak.", schema: { type: "string", enum: [...READ_LEVELS] } },
  { name: "freshness", in: "query", description: "Level none: refuse if the node last heard from the leader longer ago (Go duration)", schema: { type: "string" } },
  { name: "linearizable_timeout", in: "query", description: "Bound on a linearizable read (Go duration)", schema: { type: "string" } },
  { name: "min_raft_index", in: "query", description: "Read-your-writes bookmark, as the X-DHA-Raft-Index header", schema: { type: "integer", minimum: 0 } },
  { name: "X-DHA-Raft-Index", in: "header", description: "Read-your-writes: serve only once the node has applied this log index (any node may serve)", schema: { type: "integer", minimum: 0 } },
];

const writeParams = [
  { name: "Idempotency-Key", in: "header", description: "Makes retries safe: the same key (per token) is applied at most once", schema: { type: "string", pattern: "^[A-Za-z0-9._:-]{1,128}$" } },
];

const dataHeaders = {
  "X-DHA-Node": { description: "The node that served the request", schema: { type: "string" } },
  "X-DHA-Raft-Index": { description: "Log index of the write, or applied index the read saw", schema: { type: "integer" } },
};

const statementsBody = {
  required: true,
  content: {
    [json]: { schema: { $ref: "#/components/schemas/Statements" } },
    "text/plain": { schema: { type: "string", description: "One SQL statement" } },
  },
};

const dataOk = (description: string, schema: string) => ({
  description,
  headers: dataHeaders,
  content: { [json]: { schema: { $ref: `#/components/schemas/${schema}` } } },
});

const secured = [{ bearer: [] }, { basic: [] }];

export const OPENAPI_DOCUMENT = {
  openapi: "3.1.0",
  info: {
    title: "durable-ha",
    version: "0.1.0",
    description:
      "A Raft-replicated SQLite database on Durable Objects. The data API is wire-compatible with rqlite; the cluster API follows the HA plan.",
  },
  security: secured,
  paths: {
    "/livez": {
      get: { summary: "The worker is up", security: [], responses: { "200": { description: "ok", content: { "text/plain": { schema: { type: "string", const: "ok\n" } } } } } },
    },
    "/db/execute": {
      post: {
        summary: "Execute statements through the log, on the leader (role write)",
        parameters: [...commonDataParams, ...writeParams],
        requestBody: statementsBody,
        responses: { "200": dataOk("Per-statement results; a failed statement has error, the others still ran unless transaction", "ExecuteResponse"), ...dataErrors },
      },
    },
    "/db/query": {
      get: {
        summary: "Read with one statement in ?q= (role read)",
        parameters: [{ name: "q", in: "query", required: true, schema: { type: "string" } }, ...commonDataParams, ...readParams],
        responses: { "200": dataOk("Rows", "QueryResponse"), ...dataErrors },
      },
      post: {
        summary: "Read (role read)",
        parameters: [...commonDataParams, ...readParams],
        requestBody: statementsBody,
        responses: { "200": dataOk("Rows", "QueryResponse"), ...dataErrors },
      },
    },
    "/db/request": {
      post: {
        summary: "Reads and writes together (role read; write too unless every statement is a SELECT, VALUES or EXPLAIN)",
        parameters: [...commonDataParams, ...readParams, ...writeParams],
        requestBody: statementsBody,
        responses: { "200": dataOk("Per-statement execute or query results", "QueryResponse"), ...dataErrors },
      },
    },
    "/db/backup": {
      get: {
        summary: "SQL dump of the leader's state (role read)",
        parameters: [{ name: "fmt", in: "query", required: true, schema: { type: "string", const: "sql" } }],
        responses: { "200": { description: "SQL text", headers: dataHeaders, content: { "application/sql": { schema: { type: "string" } } } }, "400": errorResponse("fmt missing or not sql"), "503": errorResponse("No leader") },
      },
    },
    "/db/load": {
      post: {
        summary: "Apply a SQL dump as one transaction (role write)",
        requestBody: { required: true, content: { "text/plain": { schema: { type: "string" } }, "application/sql": { schema: { type: "string" } } } },
        responses: { "200": dataOk("One result per statement", "ExecuteResponse"), ...dataErrors },
      },
    },
    "/status": {
      get: {
        summary: "rqlite-like status of one node (role read)",
        parameters: [
          { name: "node", in: "query", description: "The node to ask; default the leader, else the first that answers", schema: { type: "string" } },
          { name: "key", in: "query", description: "Return only this dotted sub-document, e.g. store.raft", schema: { type: "string" } },
          flag("pretty", "Indent the JSON"),
        ],
        responses: { "200": { description: "Status document", content: { [json]: { schema: { type: "object" } } } }, "503": errorResponse("No node answered") },
      },
    },
    "/nodes": {
      get: {
        summary: "rqlite nodes: a map keyed by id, or {nodes: [...]} with ver=2 (role read)",
        parameters: [{ name: "ver", in: "query", schema: { type: "string", enum: ["2"] } }, flag("nonvoters", "Include learners"), { name: "timeout", in: "query", description: "Per-node deadline", schema: { type: "string" } }],
        responses: { "200": { description: "Nodes", content: { [json]: { schema: { oneOf: [{ type: "object", additionalProperties: { $ref: "#/components/schemas/Node" } }, { type: "object", properties: { nodes: { type: "array", items: { $ref: "#/components/schemas/Node" } } } }] } } } } },
      },
    },
    "/readyz": {
      get: {
        summary: "Ready: a reachable leader is known and the local node has caught up (role read)",
        parameters: [flag("noleader", "Check only the node"), flag("sync", "Wait (bounded by timeout) until the node has applied the leader's commit index"), { name: "node", in: "query", schema: { type: "string" } }],
        responses: { "200": { description: "[+]node ok / [+]leader ok / [+]store ok", content: { "text/plain": { schema: { type: "string" } } } }, "503": { description: "Not ready; the failing line says why", content: { "text/plain": { schema: { type: "string" } } } } },
      },
    },
    "/leader": {
      get: { summary: "The leader, as a /nodes entry (role read)", responses: { "200": { description: "Leader", content: { [json]: { schema: { $ref: "#/components/schemas/Node" } } } }, "503": errorResponse("No leader") } },
      post: {
        summary: "Step the leader down, optionally to {\"id\": name} (role admin)",
        requestBody: { required: false, content: { [json]: { schema: { type: "object", properties: { id: { type: "string" } }, additionalProperties: false } } } },
        responses: { "200": { description: "The new leader", content: { [json]: { schema: { $ref: "#/components/schemas/Leadership" } } } }, "409": errorResponse("A transfer or membership change is under way"), "503": errorResponse("No leader"), "504": errorResponse("Timed out; the transfer may still complete") },
      },
    },
    "/api/v1/cluster/health": {
      get: {
        summary: "Aggregate health from every node, each within a per-node deadline (role read)",
        parameters: [{ name: "timeout", in: "query", description: "Per-node deadline (default 2s)", schema: { type: "string" } }],
        responses: {
          "200": { description: "A quorum is available", content: { [json]: { schema: { $ref: "#/components/schemas/Health" } } } },
          "503": { description: "No quorum", content: { [json]: { schema: { $ref: "#/components/schemas/Health" } } } },
        },
      },
    },
    "/api/v1/cluster": {
      get: { summary: "Members, roles and location hints (role read)", responses: { "200": { description: "Cluster", content: { [json]: { schema: { type: "object" } } } } } },
    },
    "/api/v1/cluster/leader/stepdown": {
      post: { summary: "Hand leadership to the most up-to-date voter (role admin)", responses: { "200": { description: "The new leader", content: { [json]: { schema: { $ref: "#/components/schemas/Leadership" } } } }, "409": errorResponse("Change under way"), "503": errorResponse("No leader"), "504": errorResponse("Outcome unknown") } },
    },
    "/api/v1/cluster/leader/transfer": {
      post: {
        summary: "Hand leadership to a named voter (role admin)",
        requestBody: { required: true, content: { [json]: { schema: { type: "object", required: ["to"], properties: { to: { type: "string" } }, additionalProperties: false } } } },
        responses: { "200": { description: "The new leader", content: { [json]: { schema: { $ref: "#/components/schemas/Leadership" } } } }, "400": errorResponse("Bad body or refused"), "409": errorResponse("Change under way"), "503": errorResponse("No leader"), "504": errorResponse("Outcome unknown") },
      },
    },
    "/api/v1/cluster/members": {
      post: {
        summary: "Add a member; it joins as a learner and is promoted once caught up (role admin)",
        requestBody: { required: true, content: { [json]: { schema: { type: "object", required: ["name"], properties: { name: { type: "string" }, locationHint: { type: "string", description: "A Durable Object location hint such as wnam, weur or apac; validated by the nodes' rules" } }, additionalProperties: false } } } },
        responses: { "200": { description: "Membership", content: { [json]: { schema: { $ref: "#/components/schemas/Membership" } } } }, "400": errorResponse("Bad body or refused"), "409": errorResponse("Change under way"), "503": errorResponse("No leader"), "504": errorResponse("Outcome unknown") },
      },
    },
    "/api/v1/cluster/members/{name}": {
      delete: {
        summary: "Remove a member (the leader hands over first if it is the one) (role admin)",
        parameters: [{ name: "name", in: "path", required: true, schema: { type: "string" } }],
        responses: { "200": { description: "Membership", content: { [json]: { schema: { $ref: "#/components/schemas/Membership" } } } }, "400": errorResponse("Bad name or refused"), "409": errorResponse("Change under way"), "503": errorResponse("No leader"), "504": errorResponse("Outcome unknown") },
      },
    },
    "/openapi.json": { get: { summary: "This document", security: [], responses: { "200": { description: "OpenAPI 3.1" } } } },
  },
  components: {
    securitySchemes: {
      bearer: { type: "http", scheme: "bearer", description: "A token from DHA_TOKENS" },
      basic: { type: "http", scheme: "basic", description: "Any user name, the token as password (for rqlite clients)" },
    },
    schemas: {
      Error: { type: "object", required: ["error"], properties: { error: { type: "string" } } },
      RequestError: { type: "object", required: ["results", "error"], properties: { results: { type: "array", maxItems: 0 }, error: { type: "string" } } },
      Statements: {
        type: "array",
        minItems: 1,
        items: {
          oneOf: [
            { type: "string", description: "SQL" },
            { type: "array", minItems: 1, description: "[sql, ...positional values] or [sql, {named values}]; a byte array binds a BLOB, booleans bind 1/0", prefixItems: [{ type: "string" }] },
          ],
        },
      },
      ExecuteResult: { type: "object", properties: { last_insert_id: { type: "integer" }, rows_affected: { type: "integer" }, error: { type: "string" }, time: { type: "number" } } },
      QueryResult: {
        type: "object",
        description: "columns/types/values, or with associative types (map) and rows (list of maps); empty fields are omitted",
        properties: { columns: { type: "array", items: { type: "string" } }, types: {}, values: { type: "array", items: { type: "array" } }, rows: { type: "array" }, error: { type: "string" }, time: { type: "number" } },
      },
      ExecuteResponse: { type: "object", required: ["results"], properties: { results: { type: "array", items: { $ref: "#/components/schemas/ExecuteResult" } }, error: { type: "string" }, time: { type: "number" }, raft_index: { type: "integer" } } },
      QueryResponse: { type: "object", required: ["results"], properties: { results: { type: "array", items: { $ref: "#/components/schemas/QueryResult" } }, error: { type: "string" }, time: { type: "number" }, raft_index: { type: "integer" } } },
      Node: { type: "object", properties: { id: { type: "string" }, api_addr: { type: "string" }, addr: { type: "string" }, voter: { type: "boolean" }, reachable: { type: "boolean" }, leader: { type: "boolean" }, time: { type: "number" }, error: { type: "string" } } },
      Leadership: { type: "object", properties: { leader: { type: "string" }, term: { type: "integer" } } },
      Membership: { type: "object", properties: { voters: { type: "array", items: { type: "string" } }, learners: { type: "array", items: { type: "string" } } } },
      Health: {
        type: "object",
        properties: {
          cluster: { type: "string" },
          status: { type: "string", enum: ["HEALTHY", "DEGRADED", "UNHEALTHY"] },
          reportingNode: { type: ["string", "null"] },
          leader: { type: ["string", "null"] },
          term: { type: "integer" },
          election: { type: "object", properties: { status: { type: "string", enum: ["NO_LEADER", "VOTING", "ELECTED"] }, term: { type: "integer" }, lastElectionMs: { type: ["number", "null"] } } },
          configuredServers: { type: "integer" },
          onlineServers: { type: "integer" },
          onlineReplicas: { type: "integer" },
          voters: { type: "array", items: { type: "string" } },
          learners: { type: "array", items: { type: "string" } },
          quorum: { type: "integer" },
          quorumAvailable: { type: "boolean" },
          schemaAgreement: { type: "boolean" },
          replicas: { type: "array", items: { type: "object" } },
          nodes: { type: "array", items: { type: "object" } },
          problems: { type: "array", items: { type: "string" } },
          checkedAt: { type: "string", format: "date-time" },
        },
      },
    },
  },
} as const;
