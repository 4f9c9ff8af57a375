// Splits a SQL dump (as `sqlite3 .dump` or GET /db/backup?fmt=sql writes it) into statements, so that /db/load can
// apply it as one transactional request. Quotes, comments and trigger bodies (BEGIN ... END) are honoured; the
// dump's own transaction control is dropped, since the whole load already runs as one transaction.

export class DumpSyntaxError extends Error {
  override readonly name = "DumpSyntaxError";
}

/** Statements the load itself replaces: the platform refuses BEGIN/COMMIT in user SQL. */
const TRANSACTION_CONTROL = /^(BEGIN(\s+(DEFERRED|IMMEDIATE|EXCLUSIVE))?(\s+TRANSACTION)?|COMMIT(\s+TRANSACTION)?|END(\s+TRANSACTION)?)$/i;

export function splitSqlDump(text: string): string[] {
  const statements: string[] = [];
  for (const raw of scanStatements(text)) {
    const sql = raw.trim();
    if (sql === "" || isOnlyComments(sql)) {
      continue;
    }
    const bare = stripComments(sql).trim();
    if (TRANSACTION_CONTROL.test(bare)) {
      continue;
    }
    if (/^ROLLBACK\b/i.test(bare)) {
      // sqlite3 .dump ends with ROLLBACK when it hit errors: the dump is incomplete and must not be applied.
      throw new DumpSyntaxError("the dump contains ROLLBACK (it was written after errors); refusing to load it");
    }
    statements.push(sql);
  }
  return statements;
}

/** Yields each statement's text (without its terminating semicolon). */
function* scanStatements(text: string): Generator<string> {
  let start = 0;
  let i = 0;
  // Inside CREATE TRIGGER ... BEGIN ... END, semicolons end the body's statements, not the trigger.
  let statementWords: string[] = [];
  let blockDepth = 0;
  while (i < text.length) {
    const char = text[i] as string;
    if (char === "'" || char === '"' || char === "`") {
      i = skipQuoted(text, i, char);
    } else if (char === "[") {
      i = skipUntil(text, i + 1, "]", "bracketed identifier");
    } else if (text.startsWith("--", i)) {
      const end = text.indexOf("\n", i);
      i = end === -1 ? text.length : end + 1;
    } else if (text.startsWith("/*", i)) {
      i = skipUntil(text, i + 2, "*/", "block comment");
    } else if (/[A-Za-z_]/.test(char)) {
      const word = /^[A-Za-z_][A-Za-z0-9_$]*/.exec(text.slice(i, i + 64))?.[0] ?? char;
      const upper = word.toUpperCase();
      if (statementWords.length < 4) {
        statementWords.push(upper);
      }
      if (isTrigger(statementWords)) {
        if (upper === "BEGIN" || upper === "CASE") {
          blockDepth++;
        } else if (upper === "END" && blockDepth > 0) {
          blockDepth--;
        }
      }
      i += word.length;
    } else if (char === ";" && blockDepth === 0) {
      yield text.slice(start, i);
      start = i + 1;
      statementWords = [];
      i++;
    } else {
      i++;
    }
  }
  if (blockDepth > 0) {
    throw new DumpSyntaxError("the dump ends inside a CREATE TRIGGER body (BEGIN without END)");
  }
  yield text.slice(start);
}

function isTrigger(words: readonly string[]): boolean {
  // CREATE TRIGGER, CREATE TEMP TRIGGER, CREATE TEMPORARY TRIGGER
  return words[0] === "CREATE" && (words[1] === "TRIGGER" || ((words[1] === "TEMP" || words[1] === "TEMPORARY") && words[2] === "TRIGGER"));
}

/** Skips a quoted string or identifier; a doubled quote inside is an escaped quote. */
function skipQuoted(text: string, open: number, quote: string): number {
  let i = open + 1;
  while (i < text.length) {
    if (text[i] === quote) {
      if (text[i + 1] === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  throw new DumpSyntaxError(`unterminated quoted text starting at offset ${open}`);
}

function skipUntil(text: string, from: number, terminator: string, what: string): number {
  const end = text.indexOf(terminator, from);
  if (end === -1) {
    throw new DumpSyntaxError(`unterminated ${what} starting at offset ${from - 1}`);
  }
  return end + terminator.length;
}

function isOnlyComments(sql: string): boolean {
  return stripComments(sql).trim() === "";
}

/** Removes comments outside quotes (used only to classify a statement, never to change what is sent). */
function stripComments(sql: string): string {
  let out = "";
  let i = 0;
  while (i < sql.length) {
    const char = sql[i] as string;
    if (char === "'" || char === '"' || char === "`") {
      const end = skipQuoted(sql, i, char);
      out += sql.slice(i, end);
      i = end;
    } else if (sql.startsWith("--", i)) {
      const end = sql.indexOf("\n", i);
      i = end === -1 ? sql.length : end + 1;
      out += " ";
    } else if (sql.startsWith("/*", i)) {
      i = skipUntil(sql, i + 2, "*/", "block comment");
      out += " ";
    } else {
      out += char;
      i++;
    }
  }
  return out;
}
