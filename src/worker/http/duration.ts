// Go duration strings ("1s", "500ms", "1m30s", "1.5h"), as rqlite takes them for timeout and freshness.

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "\u00b5s": 1e-3, // micro sign
  "\u03bcs": 1e-3, // Greek mu
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

const COMPONENT = /([0-9]*(?:\.[0-9]*)?)([a-z\u00b5\u03bc]+)/y;

/**
 * Parses a Go duration into milliseconds (fractional below 1 ms). Returns null when the text is not a duration.
 * Like Go, "0" needs no unit and a sign may lead; every other component needs a unit.
 */
export function parseGoDurationMs(text: string): number | null {
  let rest = text;
  let sign = 1;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    sign = rest.startsWith("-") ? -1 : 1;
    rest = rest.slice(1);
  }
  if (rest === "0") {
    return 0;
  }
  if (rest === "") {
    return null;
  }
  let totalMs = 0;
  COMPONENT.lastIndex = 0;
  while (COMPONENT.lastIndex < rest.length) {
    const match = COMPONENT.exec(rest);
    if (match === null) {
      return null;
    }
    const [, digits = "", unit = ""] = match;
    const unitMs = UNIT_MS[unit];
    if (digits === "" || digits === "." || unitMs === undefined) {
      return null;
    }
    totalMs += Number(digits) * unitMs;
  }
  return Number.isFinite(totalMs) ? sign * totalMs : null;
}

/** Renders milliseconds the way Go's Duration.String() does for the magnitudes we report ("12.5ms", "1.2s"). */
export function formatGoDuration(ms: number): string {
  if (ms === 0) {
    return "0s";
  }
  if (ms < 1e-3) {
    return `${trimNumber(ms * 1e6)}ns`;
  }
  if (ms < 1) {
    return `${trimNumber(ms * 1e3)}\u00b5s`;
  }
  if (ms < 1_000) {
    return `${trimNumber(ms)}ms`;
  }
  return `${trimNumber(ms / 1_000)}s`;
}

function trimNumber(value: number): string {
  return String(Number(value.toFixed(6)));
}
