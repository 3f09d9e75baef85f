import { FormControl } from '@angular/forms';

import { jsonObjectValidator, parseParams } from './params';

describe('params', () => {
  it('accepts a JSON object and treats an empty field as no params', () => {
    expect(parseParams('{"duration": 5, "tags": ["a"]}')).toEqual({
      value: { duration: 5, tags: ['a'] },
      error: null,
    });
    expect(parseParams('   ')).toEqual({ value: null, error: null });
  });

  it('says why text is not valid JSON', () => {
    expect(parseParams('{"duration": ').error).toMatch(/^Not valid JSON: /);
  });

  it('refuses JSON that is not an object', () => {
    for (const text of ['[1, 2]', '42', '"text"', 'null']) {
      expect(parseParams(text).error).toContain('must be a JSON object');
    }
  });

  it('works as a form validator', () => {
    const control = new FormControl('{', { nonNullable: true, validators: [jsonObjectValidator] });
    expect(control.errors?.['params']).toMatch(/Not valid JSON/);
    control.setValue('{"ok": true}');
    expect(control.valid).toBe(true);
  });
});
