import { HttpErrorResponse } from '@angular/common/http';

/** Litestar's standard error body: {status_code, detail, extra}. */
interface LitestarErrorBody {
  status_code?: number;
  detail?: string;
  extra?: unknown;
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

function isLitestarBody(body: unknown): body is LitestarErrorBody {
  return typeof body === 'object' && body !== null && ('detail' in body || 'status_code' in body);
}

/** Whether a failed response means "the API is down" rather than "the API said no". */
export function isUnreachable(error: HttpErrorResponse): boolean {
  if (error.status === 0) {
    return true;
  }
  // A 5xx without Litestar's JSON body comes from a proxy or a dead upstream, not the kernel.
  return error.status >= 500 && !isLitestarBody(error.error);
}

function fieldName(key: string): string {
  // Litestar names nested fields "params.x" or "body.params"; the form has one control per top field.
  const parts = key.split('.').filter((part) => part && part !== 'body' && part !== '$');
  return parts[0] ?? key;
}

function collectFields(extra: unknown): Record<string, string> {
  const fields: Record<string, string> = {};
  const add = (key: unknown, message: unknown): void => {
    if (typeof key === 'string' && key && typeof message === 'string') {
      const name = fieldName(key);
      fields[name] = fields[name] ? `${fields[name]}; ${message}` : message;
    }
  };
  if (Array.isArray(extra)) {
    for (const item of extra) {
      if (typeof item === 'object' && item !== null) {
        const record = item as Record<string, unknown>;
        add(record['key'], record['message']);
      }
    }
  } else if (typeof extra === 'object' && extra !== null) {
    for (const [key, message] of Object.entries(extra as Record<string, unknown>)) {
      add(key, message);
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
  const body = isLitestarBody(error.error) ? error.error : null;
  const detail =
    typeof body?.detail === 'string' && body.detail
      ? body.detail
      : error.statusText || 'Request failed';
  return {
    status: error.status,
    message: `${detail} (HTTP ${error.status})`,
    fields: collectFields(body?.extra),
    unreachable: false,
  };
}
