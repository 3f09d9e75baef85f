import { FormControl } from '@angular/forms';

import {
  RUN_AT_FORMAT_ERROR,
  futureTimeValidator,
  httpUrlValidator,
  parseRunAt,
  toLocalInput,
} from './schedule';

const at = (text: string) => {
  const read = parseRunAt(text);
  return 'at' in read ? read.at : read.error;
};

describe('Run at: a date and time as typed', () => {
  it('reads back the local time it wrote, to the second, with a T or a space', () => {
    const when = Date.parse('2026-11-01T14:05:09Z');
    const local = toLocalInput(when);
    expect(local).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
    expect(at(local)).toBe(when);
    expect(at(local.replace('T', ' '))).toBe(when);
    expect(at(`  ${local.replace('T', '  ')} `)).toBe(when);
  });

  it('reads a value without seconds', () => {
    const local = toLocalInput(Date.parse('2026-11-01T14:05:00Z')).slice(0, 16);
    expect(at(local)).toBe(Date.parse('2026-11-01T14:05:00Z'));
  });

  it('takes a zone after the time: UTC, an offset, or a zone name', () => {
    const utc = Date.parse('2026-11-01T14:05:00Z');
    for (const text of ['2026-11-01 14:05 UTC', '2026-11-01T14:05Z', '2026-11-01 14:05:00 gmt']) {
      expect(at(text), text).toBe(utc);
    }
    expect(at('2026-11-01 16:05 +02:00')).toBe(utc);
    expect(at('2026-11-01 16:05+0200')).toBe(utc);
    expect(at('2026-11-01 09:05 -05:00')).toBe(utc);
    expect(at('2026-11-01 16:05 UTC+2')).toBe(utc);
    // Summer and winter time of a named zone, and the morning the clocks go forward.
    expect(at('2026-07-01 12:00 America/New_York')).toBe(Date.parse('2026-07-01T16:00:00Z'));
    expect(at('2026-01-15 12:00 Europe/Paris')).toBe(Date.parse('2026-01-15T11:00:00Z'));
    expect(at('2026-03-29 03:30 Europe/Paris')).toBe(Date.parse('2026-03-29T01:30:00Z'));
  });

  it('says what is wrong with what is not a date and time', () => {
    for (const text of ['tomorrow', '2026-11-01', '14:05', '2026-11-01 14h05']) {
      expect(at(text), text).toBe(RUN_AT_FORMAT_ERROR);
    }
    for (const text of ['2026-02-30 10:00', '2026-13-01 10:00', '2026-11-01 24:00']) {
      expect(at(text), text).toMatch(/^No such date or time/);
    }
    expect(at('2026-11-01 14:05 Mars/Olympus')).toMatch(/^Unknown time zone "Mars\/Olympus"/);
    expect(at('2026-11-01 14:05 +15:00')).toMatch(/is not a UTC offset/);
  });
});

describe('futureTimeValidator', () => {
  const check = (value: string) => futureTimeValidator(new FormControl(value));

  it('accepts nothing (run at once) and a time to come', () => {
    expect(check('')).toBeNull();
    expect(check(toLocalInput(Date.now() + 60_000))).toBeNull();
  });

  it('refuses a time that has passed, saying what to do instead', () => {
    expect(check(toLocalInput(Date.now() - 60_000))).toEqual({
      runAt: 'That time has already passed. Pick a later time, or leave it empty to run at once.',
    });
  });

  it('refuses a value that is no time at all', () => {
    expect(check('2026-13-45T99:99')?.['runAt']).toMatch(/^No such date or time/);
    expect(check('next week')?.['runAt']).toBe(RUN_AT_FORMAT_ERROR);
  });
});

describe('httpUrlValidator', () => {
  const check = (value: string) => httpUrlValidator(new FormControl(value));

  it('accepts nothing and http(s) URLs', () => {
    expect(check('')).toBeNull();
    expect(check('https://hooks.example.com/done?x=1')).toBeNull();
    expect(check('http://127.0.0.1:9000/hook')).toBeNull();
  });

  it('refuses what is not a URL, or not http(s)', () => {
    expect(check('hooks.example.com/done')?.['url']).toMatch(/^Not a URL/);
    expect(check('ftp://example.com/x')).toEqual({
      url: 'Only http:// and https:// addresses can be called.',
    });
  });
});
