// Small JSON bodies (the admin routes), validated with zod. Any Content-Type is read as JSON, so that a plain
// `curl -d '{"to": "n2"}'` works; errors say which field is wrong and why.
import type { Context } from "hono";
import type { z } from "zod";
import type { AppBindings } from "../types";
import { badRequest } from "./errors";

/** Reads and validates the body; with `optional`, an empty body yields undefined instead of an error. */
export async function readJsonBody<Schema extends z.ZodType>(
  c: Context<AppBindings>,
  schema: Schema,
): Promise<z.output<Schema>>;
export async function readJsonBody<Schema extends z.ZodType>(
  c: Context<AppBindings>,
  schema: Schema,
  options: { optional: true },
): Promise<z.output<Schema> | undefined>;
export async function readJsonBody<Schema extends z.ZodType>(
  c: Context<AppBindings>,
  schema: Schema,
  options: { optional?: boolean } = {},
): Promise<z.output<Schema> | undefined> {
  const text = await c.req.text();
  if (text.trim() === "") {
    if (options.optional === true) {
      return undefined;
    }
    throw badRequest("the request body is empty: a JSON object is expected");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw badRequest(`the request body is not valid JSON: ${(error as Error).message}`);
  }
  const result = schema.safeParse(parsed);
  if (!result.success) {
    throw badRequest(describeIssues(result.error.issues));
  }
  return result.data;
}

export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => (issue.path.length === 0 ? issue.message : `${issue.path.map(String).join(".")}: ${issue.message}`))
    .join("; ");
}

/** The hook for @hono/zod-validator: refuse with our 400 body. */
export function validationHook(result: { success: boolean; error?: { issues: readonly z.core.$ZodIssue[] } }): void {
  if (!result.success) {
    throw badRequest(describeIssues(result.error?.issues ?? []));
  }
}
