import { FormControl } from '@angular/forms';

import { futureTimeValidator, httpUrlValidator, parseLocalInput, toLocalInput } from './schedule';

describe('Run at: local times', () => {
  it('reads back the local time it wrote, to the second', () => {
    const at = Date.parse('2026-11-01T14:05:09Z');
    const local = toLocalInput(at);
    expect(local).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
    expect(parseLocalInput(local)).toBe(at);
  });

  it('reads a value without seconds, as a datetime-local input may give it', () => {
    const local = toLocalInput(Date.parse('2026-11-01T14:05:00Z')).slice(0, 16);
    expect(parseLocalInput(local)).toBe(Date.parse('2026-11-01T14:05:00Z'));
  });

  it('refuses anything that is not a local date and time', () => {
    expect(parseLocalInput('tomorrow')).toBeNaN();
    expect(parseLocalInput('2026-11-01')).toBeNaN();
    // A zone in the text would not be the picker's: not accepted either.
    expect(parseLocalInput('2026-11-01T14:05:00Z')).toBeNaN();
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
    expect(check('2026-13-45T99:99')?.['runAt']).toMatch(/^Not a date and time/);
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
