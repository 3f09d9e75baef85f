import { AbstractControl, ValidationErrors } from '@angular/forms';

import { JsonObject } from '../api/job.model';

export interface ParsedParams {
  value: JsonObject | null;
  error: string | null;
}

/** Read the params text: empty means no params; anything else must be a JSON object. */
export function parseParams(text: string): ParsedParams {
  const trimmed = text.trim();
  if (!trimmed) {
    return { value: null, error: null };
  }
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return { value: null, error: `Not valid JSON: ${reason}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { value: null, error: 'Params must be a JSON object, like {"duration": 5}' };
  }
  return { value: value as JsonObject, error: null };
}

/** Form validator for a params textarea: `{params: message}` when it is not a JSON object. */
export function jsonObjectValidator(
  control: AbstractControl<string | null>,
): ValidationErrors | null {
  const { error } = parseParams(control.value ?? '');
  return error ? { params: error } : null;
}
