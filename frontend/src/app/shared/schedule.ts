import { AbstractControl, ValidationErrors } from '@angular/forms';

const pad = (n: number): string => String(n).padStart(2, '0');

/** A time as "Run at" takes it, in the browser's zone, to the second: "2026-11-01T14:05:09". */
export function toLocalInput(timestamp: number): string {
  const d = new Date(timestamp);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` +
    `T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** A date and a time, then maybe a zone: "2026-11-01 14:05", "2026-11-01T14:05:09 UTC". */
const RUN_AT = /^(\d{4})-(\d{1,2})-(\d{1,2})(?:T|\s+)(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*(\S+))?$/i;
const UTC_NAMES = /^(?:z|utc|gmt)$/i;
const OFFSET = /^(?:utc|gmt)?([+-])(\d{1,2})(?::?(\d{2}))?$/i;

export const RUN_AT_FORMAT_ERROR =
  'Not a date and time: write it as 2026-11-01 14:05 (seconds optional), or leave it ' +
  'empty to run at once.';

/** "Run at" read: when (ms since epoch), or what is wrong with it. */
export type RunAt = { at: number } | { error: string };

/**
 * "Run at" as typed: a date and a time ("2026-11-01 14:05", seconds optional, a "T" in
 * place of the space too), in the browser's zone unless a zone follows it: "Z" or "UTC",
 * an offset ("+02:00", "-0500", "UTC+2") or a zone name ("America/New_York").
 */
export function parseRunAt(text: string): RunAt {
  const match = RUN_AT.exec(text.trim());
  if (!match) {
    return { error: RUN_AT_FORMAT_ERROR };
  }
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map((n) => Number(n ?? 0));
  const zone = match[7];
  // The time as written, read as if in UTC: no zone makes 2026-02-30 or 25:00 a time.
  const wall = Date.UTC(year, month - 1, day, hour, minute, second);
  const check = new Date(wall);
  if (
    check.getUTCMonth() !== month - 1 ||
    check.getUTCDate() !== day ||
    check.getUTCHours() !== hour ||
    check.getUTCMinutes() !== minute ||
    check.getUTCSeconds() !== second
  ) {
    return { error: 'No such date or time: check the month, day, hours and minutes.' };
  }
  if (!zone) {
    return { at: new Date(year, month - 1, day, hour, minute, second).getTime() };
  }
  if (UTC_NAMES.test(zone)) {
    return { at: wall };
  }
  const offset = OFFSET.exec(zone);
  if (offset) {
    const [, sign, hours, minutes = '0'] = offset;
    if (Number(hours) > 14 || Number(minutes) > 59) {
      return { error: `${zone} is not a UTC offset: offsets run from -14:00 to +14:00.` };
    }
    const ms = (Number(hours) * 60 + Number(minutes)) * 60_000;
    return { at: sign === '+' ? wall - ms : wall + ms };
  }
  try {
    // Twice: the offset at the first guess may differ (a DST change in between).
    const guess = wall - offsetIn(zone, wall);
    return { at: wall - offsetIn(zone, guess) };
  } catch {
    return {
      error: `Unknown time zone "${zone}": use UTC, an offset like +02:00, or a name like Europe/Paris.`,
    };
  }
}

/** How far `zone`'s clocks are ahead of UTC at `at`, in ms (RangeError: no such zone). */
function offsetIn(zone: string, at: number): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: zone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  }).formatToParts(at);
  const part = (type: Intl.DateTimeFormatPartTypes): number =>
    Number(parts.find((p) => p.type === type)?.value);
  const shown = Date.UTC(
    part('year'),
    part('month') - 1,
    part('day'),
    part('hour'),
    part('minute'),
    part('second'),
  );
  return shown - Math.floor(at / 1000) * 1000;
}

/** The browser's zone for a hint: "Europe/Paris, UTC+01:00". */
export function zoneDescription(timestamp: number): string {
  const offset = -new Date(timestamp).getTimezoneOffset();
  const sign = offset < 0 ? '-' : '+';
  const hours = pad(Math.floor(Math.abs(offset) / 60));
  const utc = `UTC${sign}${hours}:${pad(Math.abs(offset) % 60)}`;
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return zone && zone !== 'UTC' ? `${zone}, ${utc}` : utc;
}

/**
 * Form validator for "Run at": empty (run at once) or a time still to come.
 * `{runAt: message}` otherwise. Time-dependent: re-run it right before sending.
 */
export function futureTimeValidator(
  control: AbstractControl<string | null>,
): ValidationErrors | null {
  const value = (control.value ?? '').trim();
  if (!value) {
    return null;
  }
  const runAt = parseRunAt(value);
  if ('error' in runAt) {
    return { runAt: runAt.error };
  }
  if (runAt.at <= Date.now()) {
    return {
      runAt: 'That time has already passed. Pick a later time, or leave it empty to run at once.',
    };
  }
  return null;
}

/** Form validator for a webhook address: empty, or an absolute http(s) URL. */
export function httpUrlValidator(control: AbstractControl<string | null>): ValidationErrors | null {
  const value = (control.value ?? '').trim();
  if (!value) {
    return null;
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { url: 'Not a URL: give a full address, like https://hooks.example.com/done.' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { url: 'Only http:// and https:// addresses can be called.' };
  }
  return null;
}
