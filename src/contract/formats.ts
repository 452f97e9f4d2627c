/**
 * The string formats of the contract, narrowed to what both databases store faithfully. Both
 * refuse year 0 (and PostgreSQL years past 9999 that an offset produces, PGlite anything past
 * 9999), and PGlite's parameter encoding reads a year below 100 as 19xx or 20xx: a date-time
 * such as 0000-01-01T00:00:00Z passed the format check and failed in the database as a 500,
 * and 0099-06-01 would have been stored as 1999. So an instant (after its offset) outside
 * 1000-01-01 .. 9999-12-31 UTC, or a calendar date outside those years, is invalid input (400).
 */
import { fullFormats } from 'ajv-formats/dist/formats.js';

export const EARLIEST_INSTANT = Date.UTC(1000, 0, 1);
export const LATEST_INSTANT = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

type Check = (value: string) => boolean;
const checkOf = (format: unknown): Check => (typeof format === 'function' ? (format as Check) : (format as { validate: Check }).validate);
const rfc3339DateTime = checkOf(fullFormats['date-time']);
const rfc3339Date = checkOf(fullFormats.date);

/** RFC 3339 date-time whose instant lies within the storable range (Date.parse NaN: not storable either). */
export function storableDateTime(value: string): boolean {
  if (!rfc3339DateTime(value)) return false;
  const at = Date.parse(value);
  return at >= EARLIEST_INSTANT && at <= LATEST_INSTANT;
}

/** RFC 3339 full-date (YYYY-MM-DD, a real day) of a year from 1000 to 9999. */
export function storableDate(value: string): boolean {
  return rfc3339Date(value) && value >= '1000-01-01';
}

/** The range, as the schemas document it. */
export const STORABLE_RANGE = 'between 1000-01-01 and 9999-12-31 (UTC)';
