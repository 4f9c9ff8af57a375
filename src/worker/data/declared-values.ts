// Values of columns declared BOOLEAN, DATE, DATETIME or TIMESTAMP, shown as rqlite 8 shows them. rqlite reads rows
// through its SQLite driver (a fork of mattn/go-sqlite3), which converts by the column's declared type, lowercased
// and compared whole ("bool" and "datetime(6)" are left alone):
// - boolean: an INTEGER becomes true when it is above zero (2 is true, -1 false);
// - date, datetime, timestamp: an INTEGER is Unix seconds, or milliseconds beyond ±1e12; a TEXT is parsed by the
//   driver's nine layouts (time zone offset kept), and text none of them reads is the zero time
//   (0001-01-01T00:00:00Z). rqlite writes the time as Go's MarshalText does (RFC 3339 with nanoseconds, trailing
//   zeros trimmed), and a time that cannot be written so (a year outside 0-9999, an offset of 24 hours or more)
//   makes the whole statement answer the error in place of its rows.
// REALs, BLOBs, NULLs, and TEXT in a boolean column stay as they are. Measured against rqlited 8.26.8; the cases are
// in test/core/declared-values.test.ts. Only what is shown changes: the stored values are untouched.
import type { SqlValue } from "../../shared/sql";

export type ShownValue = SqlValue | boolean;

/** A value rqlite cannot show: its statement answers this error instead of rows. */
export class UnshowableValue extends Error {}

type Conversion = (value: SqlValue) => ShownValue;

/** The conversion a column's reported type asks for, or null for every other type (its values show as they are). */
export function conversionFor(type: string): Conversion | null {
  switch (type) {
    case "boolean":
      return booleanShown;
    case "date":
    case "datetime":
    case "timestamp":
      return timeShown;
    default:
      return null;
  }
}

/**
 * The rows as rqlite shows them, given each column's reported type (declared, lowercased, or inferred: an inferred
 * type is never one that converts). The rows themselves when no column converts.
 */
export function shownRows(
  types: readonly string[],
  rows: readonly (readonly SqlValue[])[],
): readonly (readonly ShownValue[])[] {
  const conversions = types.map(conversionFor);
  if (conversions.every((conversion) => conversion === null)) {
    return rows;
  }
  return rows.map((row) => row.map((value, i) => conversions[i]?.(value) ?? value));
}

/** INTEGER as the result carries it: a safe-integer number, or a bigint beyond 2^53 (any other number is a REAL). */
function integerOf(value: SqlValue): bigint | number | null {
  if (typeof value === "bigint") {
    return value;
  }
  return typeof value === "number" && Number.isSafeInteger(value) ? value : null;
}

function booleanShown(value: SqlValue): ShownValue {
  const integer = integerOf(value);
  return integer === null ? value : integer > 0;
}

function timeShown(value: SqlValue): ShownValue {
  if (typeof value === "string") {
    return marshalTime(parseDriverTime(value) ?? ZERO_TIME);
  }
  const integer = integerOf(value);
  return integer === null ? value : marshalTime(timeOfUnixInteger(BigInt(integer)));
}

/** A time as Go holds it for formatting: the wall clock in its zone, and the zone's offset east of UTC. */
export interface WallTime {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  readonly nanosecond: number;
  readonly offsetSeconds: number;
}

/** Go's time.Time{}, what the driver gives for text it cannot parse. */
const ZERO_TIME: WallTime = {
  year: 1,
  month: 1,
  day: 1,
  hour: 0,
  minute: 0,
  second: 0,
  nanosecond: 0,
  offsetSeconds: 0,
};

const INT64_BITS = 64;
const NANOS_PER_MILLI = 1_000_000n;
const NANOS_PER_SECOND = 1_000_000_000n;
/** The driver reads an integer beyond ±1e12 as milliseconds ("too large to be a reasonable timestamp in seconds"). */
const MILLISECONDS_BEYOND = 1_000_000_000_000n;
/** A JavaScript Date holds at most ±8.64e15 ms; seconds up to ±1e12 (and the nanoseconds path) stay well inside. */
const MS_PER_SECOND = 1000;

/** time.Unix(v, 0), or for |v| > 1e12 time.Unix(0, v*1e6) with Go's int64 wrap-around, in UTC. */
export function timeOfUnixInteger(value: bigint): WallTime {
  let seconds = value;
  let nanosecond = 0n;
  if (value > MILLISECONDS_BEYOND || value < -MILLISECONDS_BEYOND) {
    const nanos = BigInt.asIntN(INT64_BITS, value * NANOS_PER_MILLI);
    seconds = nanos / NANOS_PER_SECOND;
    nanosecond = nanos % NANOS_PER_SECOND;
    if (nanosecond < 0n) {
      nanosecond += NANOS_PER_SECOND;
      seconds -= 1n;
    }
  }
  const date = new Date(Number(seconds) * MS_PER_SECOND);
  return {
    year: date.getUTCFullYear(),
    month: date.getUTCMonth() + 1,
    day: date.getUTCDate(),
    hour: date.getUTCHours(),
    minute: date.getUTCMinutes(),
    second: date.getUTCSeconds(),
    nanosecond: Number(nanosecond),
    offsetSeconds: 0,
  };
}

const MAX_YEAR = 9999;
const HOURS_PER_DAY = 24;
const SECONDS_PER_MINUTE = 60;
const NANOSECOND_DIGITS = 9;

/** Go's Time.MarshalText: RFC 3339 with nanoseconds (trailing zeros trimmed); the errors are Go's own words. */
export function marshalTime(time: WallTime): string {
  if (time.year < 0 || time.year > MAX_YEAR) {
    throw new UnshowableValue("Time.MarshalText: year outside of range [0,9999]");
  }
  // Go drops the seconds of an offset (the driver's offsets have none).
  const offsetMinutes = Math.trunc(time.offsetSeconds / SECONDS_PER_MINUTE);
  const zoneHours = Math.trunc(Math.abs(offsetMinutes) / SECONDS_PER_MINUTE);
  if (zoneHours >= HOURS_PER_DAY) {
    throw new UnshowableValue("Time.MarshalText: timezone hour outside of range [0,23]");
  }
  const date = `${pad(time.year, 4)}-${pad(time.month, 2)}-${pad(time.day, 2)}`;
  const clock = `${pad(time.hour, 2)}:${pad(time.minute, 2)}:${pad(time.second, 2)}`;
  const fraction = time.nanosecond === 0 ? "" : `.${pad(time.nanosecond, NANOSECOND_DIGITS).replace(/0+$/, "")}`;
  const zone =
    offsetMinutes === 0
      ? "Z"
      : `${offsetMinutes < 0 ? "-" : "+"}${pad(zoneHours, 2)}:${pad(Math.abs(offsetMinutes) % SECONDS_PER_MINUTE, 2)}`;
  return `${date}T${clock}${fraction}${zone}`;
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, "0");
}

/**
 * The driver's SQLiteTimestampFormats, tried in order by Go's time.ParseInLocation in UTC after one trailing "Z" is
 * cut: "2006-01-02 15:04:05.999999999-07:00", the same without the offset, without the fraction, without the
 * seconds, the date alone; each with " " or "T" between date and time. Together they read: a date, optionally
 * followed by a time whose hour has one or two digits, whose seconds may carry a fraction ("." or "," and any number
 * of digits, the first nine kept) and then an offset ("+hh:mm": any two digits each, unchecked by the Go that built
 * rqlited 8.26.8, so "+00:99" is 99 minutes and "+25:00" fails only when written). Go's parser reads a space of a
 * layout as a run of spaces, so "2024-01-02   03:04" reads too.
 */
const DRIVER_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:(?: +|T)(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?(?:([+-])(\d{2}):(\d{2}))?)?)?$/;

const MAX_MONTH = 12;
const MAX_MINUTE = 59;
const MAX_SECOND = 59;

/** What the driver's layouts read from a TEXT value, or null where none does (the driver then gives the zero time). */
export function parseDriverTime(text: string): WallTime | null {
  const match = DRIVER_TIME.exec(text.endsWith("Z") ? text.slice(0, -1) : text);
  if (match === null) {
    return null;
  }
  const [, year, month, day, hour, minute, second, fraction, sign, offsetHours, offsetMinutes] = match;
  const time = {
    year: Number(year),
    month: Number(month),
    day: Number(day),
    hour: Number(hour ?? 0),
    minute: Number(minute ?? 0),
    second: Number(second ?? 0),
    nanosecond: Number((fraction ?? "").slice(0, NANOSECOND_DIGITS).padEnd(NANOSECOND_DIGITS, "0")),
    offsetSeconds: 0,
  };
  const inRange =
    time.month >= 1 &&
    time.month <= MAX_MONTH &&
    time.day >= 1 &&
    time.day <= daysIn(time.month, time.year) &&
    time.hour < HOURS_PER_DAY &&
    time.minute <= MAX_MINUTE &&
    time.second <= MAX_SECOND;
  if (!inRange) {
    return null;
  }
  if (sign === undefined) {
    return time;
  }
  const offsetSeconds = (Number(offsetHours) * SECONDS_PER_MINUTE + Number(offsetMinutes)) * SECONDS_PER_MINUTE;
  return { ...time, offsetSeconds: sign === "-" ? -offsetSeconds : offsetSeconds };
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;
const FEBRUARY = 2;

function daysIn(month: number, year: number): number {
  const isLeap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return month === FEBRUARY && isLeap ? 29 : (DAYS_IN_MONTH[month - 1] ?? 0);
}
