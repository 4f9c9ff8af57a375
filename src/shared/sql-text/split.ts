// Splitting SQL text into statements, the way SQLite's sqlite3_complete() sees their ends: used for dumps (/db/load,
// the SQLite file import) and to check that a statement is exactly one.
import { isSignificant, keywordOf, tokenizeSql, type SqlToken } from "./tokenizer";

/**
 * Splits tokens into statements at top-level semicolons. A CREATE TRIGGER body holds semicolons of its own: as in
 * SQLite's sqlite3_complete(), such a statement ends only at a semicolon that follows `; END`.
 * Each statement's tokens include its terminating semicolon, if any. Statements with no significant token are dropped.
 */
export function splitTokensIntoStatements(tokens: readonly SqlToken[]): SqlToken[][] {
  return [...streamStatements(tokens)];
}

/**
 * splitTokensIntoStatements one statement at a time: with streamTokens, only the current statement's tokens are
 * held, and a caller that counts statements can stop at its limit without reading the rest.
 */
export function* streamStatements(tokens: Iterable<SqlToken>): Generator<SqlToken[], void, undefined> {
  let current: SqlToken[] = [];
  let significant: SqlToken[] = [];
  for (const token of tokens) {
    current.push(token);
    if (!isSignificant(token)) {
      continue;
    }
    significant.push(token);
    if (token.kind !== "semicolon") {
      continue;
    }
    if (isTriggerDefinition(significant)) {
      const previous = significant[significant.length - 2];
      const beforePrevious = significant[significant.length - 3];
      const endsBody = keywordOf(previous) === "END" && beforePrevious?.kind === "semicolon";
      if (!endsBody) {
        continue;
      }
    }
    if (significant.some((t) => t.kind !== "semicolon")) {
      yield current;
    }
    current = [];
    significant = [];
  }
  if (significant.some((t) => t.kind !== "semicolon")) {
    yield current;
  }
}

function isTriggerDefinition(significant: readonly SqlToken[]): boolean {
  let i = 0;
  if (keywordOf(significant[i]) === "EXPLAIN") {
    i += 1;
    if (keywordOf(significant[i]) === "QUERY") {
      i += 2;
    }
  }
  if (keywordOf(significant[i]) !== "CREATE") {
    return false;
  }
  i += 1;
  const modifier = keywordOf(significant[i]);
  if (modifier === "TEMP" || modifier === "TEMPORARY") {
    i += 1;
  }
  return keywordOf(significant[i]) === "TRIGGER";
}

/** Splits SQL text into statement texts (each without its terminating semicolon, surrounding space trimmed). */
export function splitSqlStatements(sql: string): string[] {
  return splitTokensIntoStatements(tokenizeSql(sql)).map((statement) => statementText(statement));
}

/** The text of a statement's tokens without the terminating semicolon and without trailing space or comments. */
export function statementText(tokens: readonly SqlToken[]): string {
  let end = tokens.length;
  while (end > 0) {
    const token = tokens[end - 1];
    if (token === undefined || isSignificant(token)) {
      break;
    }
    end -= 1;
  }
  if (tokens[end - 1]?.kind === "semicolon") {
    end -= 1;
  }
  while (end > 0) {
    const token = tokens[end - 1];
    if (token === undefined || isSignificant(token)) {
      break;
    }
    end -= 1;
  }
  let start = 0;
  while (start < end && tokens[start]?.kind === "space") {
    start += 1;
  }
  return tokens
    .slice(start, end)
    .map((t) => t.text)
    .join("");
}
