import { AbstractControl, ValidationErrors } from '@angular/forms';

const pad = (n: number): string => String(n).padStart(2, '0');

/** A time as a datetime-local input shows it, in the browser's zone: "2026-11-01T14:05:09". */
export function toLocalInput(timestamp: number): string {
  const d = new Date(timestamp);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}` +
    `T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/**
 * A datetime-local value ("2026-11-01T14:05" or with seconds), read in the browser's
 * zone, as ms since epoch; NaN when it is not such a value.
 */
export function parseLocalInput(value: string): number {
  // Without an offset, ECMAScript reads a date-time as local time: what the user picked.
  return /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(value)
    ? Date.parse(value)
    : Number.NaN;
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
  const at = parseLocalInput(value);
  if (Number.isNaN(at)) {
    return { runAt: 'Not a date and time: pick one, or leave it empty to run at once.' };
  }
  if (at <= Date.now()) {
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
