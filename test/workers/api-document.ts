// Reading /openapi.json in tests: the statuses each operation documents, and JSON Schema validation of bodies and
// parameters against the document itself (draft 2020-12, as OpenAPI 3.1 uses; @cfworker/json-schema needs no eval).
import { Validator } from "@cfworker/json-schema";

export interface OpenApiDocument {
  readonly openapi: string;
  readonly paths: Record<string, Record<string, Operation>>;
  readonly components: { readonly schemas: Record<string, unknown> };
  readonly security?: readonly Record<string, unknown>[];
}

export interface Operation {
  readonly security?: readonly Record<string, unknown>[];
  readonly parameters?: readonly { name: string; in: string; required?: boolean; schema: Record<string, unknown> }[];
  readonly requestBody?: { required?: boolean; content: Record<string, { schema: Record<string, unknown> }> };
  readonly responses: Record<
    string,
    { content?: Record<string, { schema: Record<string, unknown> }>; headers?: Record<string, unknown> }
  >;
}

export function operationOf(document: OpenApiDocument, method: string, path: string): Operation {
  const operation = document.paths[path]?.[method.toLowerCase()];
  if (operation === undefined) {
    throw new Error(`${method} ${path} is not documented`);
  }
  return operation;
}

const validators = new WeakMap<object, Validator>();

/** Whether `value` matches `schema`, whose $refs point into the document's components; the errors when not. */
export function schemaErrors(document: OpenApiDocument, schema: Record<string, unknown>, value: unknown): string[] {
  let validator = validators.get(schema);
  if (validator === undefined) {
    // The schema is validated as the root of a document that also holds the components its $refs name.
    validator = new Validator({ ...schema, components: document.components } as never, "2020-12", false);
    validators.set(schema, validator);
  }
  const result = validator.validate(value);
  return result.valid ? [] : result.errors.map((error) => `${error.instanceLocation}: ${error.error}`);
}

/** Checks a response against what the document says of that operation and status; returns the problems. */
export async function responseProblems(
  document: OpenApiDocument,
  method: string,
  path: string,
  response: Response,
): Promise<string[]> {
  const operation = operationOf(document, method, path);
  const documented = operation.responses[String(response.status)];
  if (documented === undefined) {
    return [
      `${method} ${path} answered ${response.status}, which is not documented (${Object.keys(operation.responses).join(", ")}): ${await response.text()}`,
    ];
  }
  const missing = Object.entries(documented.headers ?? {})
    .filter(([name, header]) => (header as { required?: boolean }).required === true && !response.headers.has(name))
    .map(([name]) => `${method} ${path} ${response.status}: the documented header ${name} is missing`);
  if (missing.length > 0) {
    return missing;
  }
  const contentType = (response.headers.get("content-type") ?? "").split(";")[0]?.trim() ?? "";
  const content = documented.content;
  if (content === undefined) {
    return [];
  }
  const media = content[contentType];
  if (media === undefined) {
    return [
      `${method} ${path} ${response.status} answered ${contentType}, documented: ${Object.keys(content).join(", ")}`,
    ];
  }
  if (contentType !== "application/json") {
    return [];
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return [`${method} ${path} ${response.status}: the body is not JSON: ${text.slice(0, 200)}`];
  }
  return schemaErrors(document, media.schema, body).map(
    (error) => `${method} ${path} ${response.status}: ${error} in ${text.slice(0, 300)}`,
  );
}
