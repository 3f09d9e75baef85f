import { HttpErrorResponse } from '@angular/common/http';

/** One field the API names in a problem: which, what is wrong, and where it was. */
export interface FieldError {
  field: string;
  message: string;
  in: 'body' | 'query' | 'path' | 'header' | 'cookie';
}

/**
 * Every error answer of the kernel: RFC 9457 problem details (docs/errors.md).
 * `errors` is always a list; the members after it appear only where they carry data.
 */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  errors: FieldError[];
  retry_after_seconds?: number;
  job_id?: string;
  job_ids?: string[];
  current_status?: string;
  limit_bytes?: number;
}

/** An API failure, reduced to what the UI shows. */
export interface ApiError {
  /** HTTP status; 0 when the server could not be reached at all. */
  status: number;
  /** One line for a banner or a form's general error slot. */
  message: string;
  /** Messages keyed by the field the server named (first path segment: `params.x` -> `params`). */
  fields: Record<string, string>;
  /** True when the API itself is unreachable, as opposed to refusing this request. */
  unreachable: boolean;
}

function isProblem(body: unknown): body is Partial<Problem> {
  return typeof body === 'object' && body !== null && 'status' in body && 'title' in body;
}

/** Whether a failed response means "the API is down" rather than "the API said no". */
export function isUnreachable(error: HttpErrorResponse): boolean {
  if (error.status === 0) {
    return true;
  }
  // A 5xx without a problem body comes from a proxy or a dead upstream, not the kernel.
  return error.status >= 500 && !isProblem(error.error);
}

function fieldName(key: string): string {
  // Nested fields are named "params.x" (or "body" for the body as a whole); the form has
  // one control per top field.
  const parts = key.split('.').filter((part) => part && part !== 'body' && part !== '$');
  return parts[0] ?? key;
}

function collectFields(errors: unknown): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const item of Array.isArray(errors) ? errors : []) {
    if (typeof item !== 'object' || item === null) {
      continue;
    }
    const { field, message } = item as Partial<FieldError>;
    if (typeof field === 'string' && field && typeof message === 'string') {
      const name = fieldName(field);
      fields[name] = fields[name] ? `${fields[name]}; ${message}` : message;
    }
  }
  return fields;
}

/** Turn anything a request can throw into an {@link ApiError}. */
export function toApiError(error: unknown): ApiError {
  if (!(error instanceof HttpErrorResponse)) {
    const message = error instanceof Error ? error.message : String(error);
    return { status: 0, message, fields: {}, unreachable: false };
  }
  if (isUnreachable(error)) {
    return {
      status: error.status,
      message:
        error.status === 0
          ? 'Cannot reach the API. Is the kernel running?'
          : `The API is unavailable (HTTP ${error.status}).`,
      fields: {},
      unreachable: true,
    };
  }
  const body = isProblem(error.error) ? error.error : null;
  const detail =
    typeof body?.detail === 'string' && body.detail
      ? body.detail
      : error.statusText || 'Request failed';
  return {
    status: error.status,
    message: `${detail} (HTTP ${error.status})`,
    fields: collectFields(body?.errors),
    unreachable: false,
  };
}
