import { FieldError, Problem } from '../app/api/api-error';

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  422: 'Unprocessable Entity',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** An error body as the kernel answers it (docs/errors.md), for a faked response. */
export function problem(
  status: number,
  detail: string,
  errors: FieldError[] = [],
  more: Partial<Problem> = {},
): Problem {
  return {
    type: 'about:blank',
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    instance: '/api/v1/x',
    errors,
    ...more,
  };
}
