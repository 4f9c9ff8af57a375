// How rqlite 8.26.8 shows values of columns declared BOOLEAN, DATE, DATETIME or TIMESTAMP (src/worker/data/
// declared-values.ts). Every expectation below is what a real rqlited 8.26.8 answered for the value stored in such a
// column (measured through /db/query: a DATETIME column, and a BOOLEAN one).
import { describe, expect, it } from "vitest";
import type { SqlValue } from "../../src/shared/sql";
import {
  conversionFor,
  marshalTime,
  parseDriverTime,
  shownRows,
  UnshowableValue,
} from "../../src/worker/data/declared-values";

type Shown = SqlValue | boolean;

/** [stored value, as a DATETIME column shows it, as a BOOLEAN column shows it] */
const MEASURED: readonly (readonly [SqlValue, Shown, Shown])[] = [
  [0, "1970-01-01T00:00:00Z", false],
  [1, "1970-01-01T00:00:01Z", true],
  [2, "1970-01-01T00:00:02Z", true],
  [-1, "1969-12-31T23:59:59Z", false],
  [1700000000, "2023-11-14T22:13:20Z", true],
  [1700000000123, "2023-11-14T22:13:20.123Z", true],
  [1000000000001, "2001-09-09T01:46:40.001Z", true],
  [-1000000000001, "1938-04-24T22:13:19.999Z", false],
  [-62135596800, "0001-01-01T00:00:00Z", false],
  [-62135596801, "0000-12-31T23:59:59Z", false],
  [253402300799, "9999-12-31T23:59:59Z", true],
  [1.5, 1.5, 1.5],
  [1e20, 100000000000000000000, 100000000000000000000],
  ["2024-01-02 03:04:05", "2024-01-02T03:04:05Z", "2024-01-02 03:04:05"],
  ["2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"],
  ["2024-01-02", "2024-01-02T00:00:00Z", "2024-01-02"],
  ["2024-01-02 03:04:05.123456", "2024-01-02T03:04:05.123456Z", "2024-01-02 03:04:05.123456"],
  ["2024-01-02T03:04:05.123456789Z", "2024-01-02T03:04:05.123456789Z", "2024-01-02T03:04:05.123456789Z"],
  ["2024-01-02 03:04:05.1234567891", "2024-01-02T03:04:05.123456789Z", "2024-01-02 03:04:05.1234567891"],
  ["2024-01-02 03:04:05+02:00", "2024-01-02T03:04:05+02:00", "2024-01-02 03:04:05+02:00"],
  ["2024-01-02T03:04:05-05:30", "2024-01-02T03:04:05-05:30", "2024-01-02T03:04:05-05:30"],
  ["2024-01-02 03:04:05.5+00:00", "2024-01-02T03:04:05.5Z", "2024-01-02 03:04:05.5+00:00"],
  ["2024-01-02 03:04", "2024-01-02T03:04:00Z", "2024-01-02 03:04"],
  ["2024-01-02T03:04", "2024-01-02T03:04:00Z", "2024-01-02T03:04"],
  ["garbage", "0001-01-01T00:00:00Z", "garbage"],
  ["", "0001-01-01T00:00:00Z", ""],
  ["true", "0001-01-01T00:00:00Z", "true"],
  ["2024-02-30", "0001-01-01T00:00:00Z", "2024-02-30"],
  ["2024-1-2", "0001-01-01T00:00:00Z", "2024-1-2"],
  ["2024-01-02 3:04:05", "2024-01-02T03:04:05Z", "2024-01-02 3:04:05"],
  ["2024-01-02 03:04:05,25", "2024-01-02T03:04:05.25Z", "2024-01-02 03:04:05,25"],
  ["2024-01-02 03:04:05Z", "2024-01-02T03:04:05Z", "2024-01-02 03:04:05Z"],
  ["2024-01-02 03:04:05ZZ", "0001-01-01T00:00:00Z", "2024-01-02 03:04:05ZZ"],
  [" 2024-01-02", "0001-01-01T00:00:00Z", " 2024-01-02"],
  ["2024-01-02 24:00:00", "0001-01-01T00:00:00Z", "2024-01-02 24:00:00"],
  ["2024-01-02 03:04:05 +0200", "0001-01-01T00:00:00Z", "2024-01-02 03:04:05 +0200"],
  ["2024-01-02 03:04:05+02:60", "2024-01-02T03:04:05+03:00", "2024-01-02 03:04:05+02:60"],
  ["0000-01-01 00:00:00", "0000-01-01T00:00:00Z", "0000-01-01 00:00:00"],
  ["9999-12-31 23:59:59-01:00", "9999-12-31T23:59:59-01:00", "9999-12-31 23:59:59-01:00"],
  [9223372036854, "2262-04-11T23:47:16.854Z", true],
  [9223372036855, "1677-09-21T00:12:43.145448384Z", true],
  [-9223372036854, "1677-09-21T00:12:43.146Z", false],
  [-9223372036855, "2262-04-11T23:47:16.854551616Z", false],
  [9223372036854775807n, "1969-12-31T23:59:59.999Z", true],
  [-9223372036854775808n, "1970-01-01T00:00:00Z", false],
  [9007199254740993n, "2134-05-28T23:52:50.731811392Z", true],
  [-9007199254740993n, "1805-08-06T00:07:09.268188608Z", false],
  [4611686018427387904n, "1970-01-01T00:00:00Z", true],
  [1000000000000000000n, "2033-06-30T17:10:05.20689664Z", true],
  [253402300799999, "1816-03-30T05:56:08.065277376Z", true],
  [-62135596800000, "1754-08-30T22:43:41.128654848Z", false],
  [-62135596800001, "1754-08-30T22:43:41.127654848Z", false],
  [
    "2024-12-31 23:59:59.999999999999+23:59",
    "2024-12-31T23:59:59.999999999+23:59",
    "2024-12-31 23:59:59.999999999999+23:59",
  ],
  ["2024-12-31T23:59:60", "0001-01-01T00:00:00Z", "2024-12-31T23:59:60"],
  ["2024-00-10", "0001-01-01T00:00:00Z", "2024-00-10"],
  ["2024-13-10", "0001-01-01T00:00:00Z", "2024-13-10"],
  ["2023-02-29", "0001-01-01T00:00:00Z", "2023-02-29"],
  ["2000-02-29 00:00:00", "2000-02-29T00:00:00Z", "2000-02-29 00:00:00"],
  ["1900-02-29", "0001-01-01T00:00:00Z", "1900-02-29"],
  ["2024-01-02 03:04:05.", "0001-01-01T00:00:00Z", "2024-01-02 03:04:05."],
  ["2024-01-02 03:04:05.+01:00", "0001-01-01T00:00:00Z", "2024-01-02 03:04:05.+01:00"],
  ["2024-01-02 03:04:05-00:00", "2024-01-02T03:04:05Z", "2024-01-02 03:04:05-00:00"],
  ["2024-01-02 03:04:05+00:30", "2024-01-02T03:04:05+00:30", "2024-01-02 03:04:05+00:30"],
  ["2024-01-02 03:04:05-23:59", "2024-01-02T03:04:05-23:59", "2024-01-02 03:04:05-23:59"],
  ["2024-01-02 03:04:05+2:00", "0001-01-01T00:00:00Z", "2024-01-02 03:04:05+2:00"],
  ["2024-01-02 03:04:05+02:00:00", "0001-01-01T00:00:00Z", "2024-01-02 03:04:05+02:00:00"],
  ["2024-01-02 03:04+02:00", "0001-01-01T00:00:00Z", "2024-01-02 03:04+02:00"],
  ["2024-01-02T03:04:05.000Z", "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.000Z"],
  ["2024-01-02T03:04:05.100", "2024-01-02T03:04:05.1Z", "2024-01-02T03:04:05.100"],
  ["\uff12\uff10\uff12\uff14-01-02", "0001-01-01T00:00:00Z", "\uff12\uff10\uff12\uff14-01-02"],
  ["2024-01-02z", "0001-01-01T00:00:00Z", "2024-01-02z"],
  ["2024-01-02 03:04:05Z+01:00", "0001-01-01T00:00:00Z", "2024-01-02 03:04:05Z+01:00"],
  // Offsets are two digits each, not range-checked: minutes past 59 carry into the hours.
  ["2024-01-02T03:04:05+00:61", "2024-01-02T03:04:05+01:01", "2024-01-02T03:04:05+00:61"],
  ["2024-01-02T03:04:05+00:99", "2024-01-02T03:04:05+01:39", "2024-01-02T03:04:05+00:99"],
  ["2024-01-02T03:04:05-00:99", "2024-01-02T03:04:05-01:39", "2024-01-02T03:04:05-00:99"],
  // The layouts' space between date and time reads a run of spaces (Go's parser), but no tab and not beside a "T".
  ["2024-01-02   03:04:05", "2024-01-02T03:04:05Z", "2024-01-02   03:04:05"],
  ["2024-01-02  3:04", "2024-01-02T03:04:00Z", "2024-01-02  3:04"],
  ["2024-01-02  03:04:05.5+01:00", "2024-01-02T03:04:05.5+01:00", "2024-01-02  03:04:05.5+01:00"],
  ["2024-01-02 \t03:04", "0001-01-01T00:00:00Z", "2024-01-02 \t03:04"],
  ["2024-01-02T 03:04", "0001-01-01T00:00:00Z", "2024-01-02T 03:04"],
  ["2024-01-02  T03:04", "0001-01-01T00:00:00Z", "2024-01-02  T03:04"],
  ["2024-01-02  ", "0001-01-01T00:00:00Z", "2024-01-02  "],
];

/** Stored values whose statement rqlite answers with an error in place of rows (DATETIME column). */
const UNSHOWABLE: readonly (readonly [SqlValue, string])[] = [
  [999999999999, "Time.MarshalText: year outside of range [0,9999]"],
  [1000000000000, "Time.MarshalText: year outside of range [0,9999]"],
  [-1000000000000, "Time.MarshalText: year outside of range [0,9999]"],
  [253402300800, "Time.MarshalText: year outside of range [0,9999]"],
  ["2024-01-02 03:04:05+24:00", "Time.MarshalText: timezone hour outside of range [0,23]"],
  ["2024-01-02T03:04:05+25:00", "Time.MarshalText: timezone hour outside of range [0,23]"],
  ["2024-01-02T03:04:05+99:00", "Time.MarshalText: timezone hour outside of range [0,23]"],
  ["2024-01-02T03:04:05+23:60", "Time.MarshalText: timezone hour outside of range [0,23]"],
  ["2024-01-02T03:04:05+23:99", "Time.MarshalText: timezone hour outside of range [0,23]"],
];

function shown(type: string, value: SqlValue): Shown {
  return conversionFor(type)?.(value) ?? value;
}

describe("values of declared BOOLEAN and date/time columns, as rqlite 8.26.8 shows them", () => {
  it.each(MEASURED)("%s", (stored, asDatetime, asBoolean) => {
    for (const type of ["datetime", "timestamp", "date"]) {
      expect(shown(type, stored), type).toEqual(asDatetime);
    }
    expect(shown("boolean", stored)).toEqual(asBoolean);
  });

  it.each(UNSHOWABLE)("%s cannot be shown", (stored, error) => {
    expect(() => shown("datetime", stored)).toThrow(new UnshowableValue(error));
  });

  it("converts only by the exact lowercased type: bool, datetime(6), time and inferred types stay as they are", () => {
    for (const type of ["bool", "datetime(6)", "time", "integer", "real", "text", "blob", "num", "", "BOOLEAN"]) {
      expect(conversionFor(type), type).toBeNull();
    }
  });

  it("leaves NULL and BLOBs as they are, and gives back the rows themselves when no column converts", () => {
    const blob = new Uint8Array([1, 2]);
    expect(shown("datetime", null)).toBeNull();
    expect(shown("boolean", blob)).toBe(blob);
    const rows = [[1, "2024-01-02"]];
    expect(shownRows(["integer", "text"], rows)).toBe(rows);
    expect(shownRows(["boolean", "date"], rows)).toEqual([[true, "2024-01-02T00:00:00Z"]]);
  });

  it("parses the driver's layouts and writes Go's RFC 3339 with nanoseconds", () => {
    expect(parseDriverTime("2024-01-02T03:04:05.000000001-01:30")).toEqual({
      year: 2024,
      month: 1,
      day: 2,
      hour: 3,
      minute: 4,
      second: 5,
      nanosecond: 1,
      offsetSeconds: -5400,
    });
    expect(parseDriverTime("2024-01-02 03:04:05+25:00")?.offsetSeconds).toBe(25 * 3600);
    expect(parseDriverTime("2024-01-02 03:04:05+00:61")?.offsetSeconds).toBe(61 * 60);
    const base = { year: 5, month: 6, day: 7, hour: 8, minute: 9, second: 10, nanosecond: 120_000_000 };
    expect(marshalTime({ ...base, offsetSeconds: 0 })).toBe("0005-06-07T08:09:10.12Z");
    expect(marshalTime({ ...base, offsetSeconds: -(23 * 3600 + 59 * 60) })).toBe("0005-06-07T08:09:10.12-23:59");
    expect(() => marshalTime({ ...base, year: 10_000, offsetSeconds: 0 })).toThrow(UnshowableValue);
    expect(() => marshalTime({ ...base, year: -1, offsetSeconds: 0 })).toThrow(UnshowableValue);
  });
});
