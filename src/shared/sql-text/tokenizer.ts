// A small SQLite tokenizer: enough to classify, validate and rewrite statements without ever touching the inside
// of a string literal, a quoted identifier, a blob literal or a comment. It follows SQLite's tokenize.c rules for
// what starts and ends each token; it does not parse grammar.

export type SqlTokenKind =
  | "space"
  | "comment"
  | "string" // '...' with '' escapes; `value` is the unescaped text
  | "blob" // x'..'; `value` is the hex digits
  | "number"
  | "word" // an unquoted identifier or keyword; `value` is the text as written
  | "quoted" // "..." `...` [...]; `value` is the unescaped identifier
  | "param" // ?, ?NNN, :name, @name, $name; `value` is the text as written
  | "semicolon"
  | "punct"; // operators and punctuation, multi-character ones as one token

export interface SqlToken {
  readonly kind: SqlTokenKind;
  /** The exact source text of the token. */
  readonly text: string;
  readonly value: string;
  /** Offset of the first character in the source (UTF-16 code units). */
  readonly start: number;
}

/** Thrown for input SQLite itself could not tokenize (unterminated literal, malformed blob). */
export class SqlSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(`${message} at offset ${offset}`);
    this.name = "SqlSyntaxError";
  }
}

const MULTI_CHAR_OPERATORS = ["->>", "->", "||", "<=", ">=", "==", "!=", "<>", "<<", ">>"] as const;
/** First characters of those operators: any other punctuation is one character, found without the search. */
const MULTI_CHAR_STARTS = new Set(MULTI_CHAR_OPERATORS.map((operator) => operator.charCodeAt(0)));

function isIdentifierStart(code: number): boolean {
  return (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || code === 95 || code >= 0x80;
}

function isIdentifierPart(code: number): boolean {
  return isIdentifierStart(code) || isDigit(code) || code === 36; // SQLite allows '$' inside identifiers
}

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

function isHexDigit(code: number): boolean {
  return isDigit(code) || (code >= 65 && code <= 70) || (code >= 97 && code <= 102);
}

function isSpace(code: number): boolean {
  return code === 32 || code === 9 || code === 10 || code === 12 || code === 13;
}

/** Splits SQL text into tokens; the concatenation of every token's `text` is the input, exactly. */
export function tokenizeSql(sql: string): SqlToken[] {
  const tokens: SqlToken[] = [];
  let position = 0;
  while (position < sql.length) {
    const token = readToken(sql, position);
    tokens.push(token);
    position += token.text.length;
  }
  return tokens;
}

/**
 * tokenizeSql one token at a time, for large texts (a dump): a token object costs many times its text, so holding
 * every token of a few MiB at once costs far more memory than the text itself.
 */
export function* streamTokens(sql: string): Generator<SqlToken, void, undefined> {
  let position = 0;
  while (position < sql.length) {
    const token = readToken(sql, position);
    yield token;
    position += token.text.length;
  }
}

function readToken(sql: string, start: number): SqlToken {
  const code = sql.charCodeAt(start);
  const next = start + 1 < sql.length ? sql.charCodeAt(start + 1) : -1;
  const make = (kind: SqlTokenKind, end: number, value?: string): SqlToken => {
    const text = sql.slice(start, end);
    return { kind, text, value: value ?? text, start };
  };

  if (isSpace(code)) {
    let end = start + 1;
    while (end < sql.length && isSpace(sql.charCodeAt(end))) {
      end += 1;
    }
    return make("space", end);
  }
  if (code === 45 && next === 45) {
    // -- comment to end of line
    const newline = sql.indexOf("\n", start + 2);
    return make("comment", newline === -1 ? sql.length : newline + 1);
  }
  if (code === 47 && next === 42) {
    // /* comment */ ; SQLite accepts an unterminated one as running to the end of input
    const close = sql.indexOf("*/", start + 2);
    return make("comment", close === -1 ? sql.length : close + 2);
  }
  if (code === 39) {
    return readQuoted(sql, start, "'", "string");
  }
  if (code === 34) {
    return readQuoted(sql, start, '"', "quoted");
  }
  if (code === 96) {
    return readQuoted(sql, start, "`", "quoted");
  }
  if (code === 91) {
    const close = sql.indexOf("]", start + 1);
    if (close === -1) {
      throw new SqlSyntaxError("unterminated [identifier]", start);
    }
    return make("quoted", close + 1, sql.slice(start + 1, close));
  }
  if ((code === 120 || code === 88) && next === 39) {
    return readBlob(sql, start);
  }
  if (isDigit(code) || (code === 46 && isDigit(next))) {
    return make("number", scanNumber(sql, start));
  }
  if (isIdentifierStart(code)) {
    let end = start + 1;
    while (end < sql.length && isIdentifierPart(sql.charCodeAt(end))) {
      end += 1;
    }
    return make("word", end);
  }
  if (code === 63) {
    // ? or ?NNN
    let end = start + 1;
    while (end < sql.length && isDigit(sql.charCodeAt(end))) {
      end += 1;
    }
    return make("param", end);
  }
  if ((code === 58 || code === 64 || code === 36) && next !== -1 && isIdentifierPart(next)) {
    // :name @name $name (SQLite also allows "::" inside $names, Tcl style)
    let end = start + 1;
    while (end < sql.length) {
      const c = sql.charCodeAt(end);
      if (isIdentifierPart(c)) {
        end += 1;
      } else if (code === 36 && c === 58 && sql.charCodeAt(end + 1) === 58) {
        end += 2;
      } else {
        break;
      }
    }
    return make("param", end);
  }
  if (code === 59) {
    return make("semicolon", start + 1);
  }
  if (MULTI_CHAR_STARTS.has(code)) {
    for (const operator of MULTI_CHAR_OPERATORS) {
      if (sql.startsWith(operator, start)) {
        return make("punct", start + operator.length);
      }
    }
  }
  // Any other single character (including surrogate halves, which SQLite would refuse anyway).
  return make("punct", start + 1);
}

function readQuoted(sql: string, start: number, quote: string, kind: "string" | "quoted"): SqlToken {
  let position = start + 1;
  let value = "";
  for (;;) {
    const close = sql.indexOf(quote, position);
    if (close === -1) {
      throw new SqlSyntaxError(
        kind === "string" ? "unterminated string literal" : "unterminated quoted identifier",
        start,
      );
    }
    value += sql.slice(position, close);
    if (sql.startsWith(quote, close + 1)) {
      // A doubled quote is an escaped quote character.
      value += quote;
      position = close + 2;
      continue;
    }
    return { kind, text: sql.slice(start, close + 1), value, start };
  }
}

function readBlob(sql: string, start: number): SqlToken {
  const close = sql.indexOf("'", start + 2);
  if (close === -1) {
    throw new SqlSyntaxError("unterminated blob literal", start);
  }
  const hex = sql.slice(start + 2, close);
  for (let i = 0; i < hex.length; i += 1) {
    if (!isHexDigit(hex.charCodeAt(i))) {
      throw new SqlSyntaxError("malformed blob literal (not hexadecimal)", start);
    }
  }
  if (hex.length % 2 !== 0) {
    throw new SqlSyntaxError("malformed blob literal (odd number of hex digits)", start);
  }
  return { kind: "blob", text: sql.slice(start, close + 1), value: hex, start };
}

function scanNumber(sql: string, start: number): number {
  let end = start;
  const at = (i: number): number => (i < sql.length ? sql.charCodeAt(i) : -1);
  if (at(end) === 48 && (at(end + 1) === 120 || at(end + 1) === 88) && isHexDigit(at(end + 2))) {
    end += 2;
    while (isHexDigit(at(end)) || (at(end) === 95 && isHexDigit(at(end + 1)))) {
      end += 1;
    }
    return end;
  }
  const digits = (): void => {
    while (isDigit(at(end)) || (at(end) === 95 && isDigit(at(end + 1)))) {
      end += 1;
    }
  };
  digits();
  if (at(end) === 46) {
    end += 1;
    digits();
  }
  if (
    (at(end) === 101 || at(end) === 69) &&
    (isDigit(at(end + 1)) || ((at(end + 1) === 43 || at(end + 1) === 45) && isDigit(at(end + 2))))
  ) {
    end += 2;
    digits();
  }
  return end;
}

/** Whitespace and comments carry no meaning. */
export function isSignificant(token: SqlToken): boolean {
  return token.kind !== "space" && token.kind !== "comment";
}

/** The upper-cased keyword if the token is an unquoted word, else null. */
export function keywordOf(token: SqlToken | undefined): string | null {
  return token !== undefined && token.kind === "word" ? token.value.toUpperCase() : null;
}

/** Whether `token` is the punctuation `text` ("(", ",", ...). */
export function isPunct(token: SqlToken | undefined, text: string): boolean {
  return token !== undefined && token.kind === "punct" && token.text === text;
}

/** The tokens of one statement that mean something: no space, no comment, no terminating semicolon. */
export function significantTokens(tokens: readonly SqlToken[]): SqlToken[] {
  return tokens.filter((token) => isSignificant(token) && token.kind !== "semicolon");
}

/** Index of the ")" matching the "(" at `open`, or -1. */
export function matchingParen(significant: readonly SqlToken[], open: number): number {
  let depth = 0;
  for (let i = open; i < significant.length; i += 1) {
    if (isPunct(significant[i], "(")) {
      depth += 1;
    } else if (isPunct(significant[i], ")")) {
      depth -= 1;
      if (depth === 0) {
        return i;
      }
    }
  }
  return -1;
}

/** Renders a string as an SQL string literal. */
export function quoteSqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** Renders a name as an SQL quoted identifier. */
export function quoteSqlIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
