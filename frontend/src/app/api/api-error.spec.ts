import { HttpErrorResponse } from '@angular/common/http';

import { toApiError } from './api-error';

function response(status: number, error: unknown): HttpErrorResponse {
  return new HttpErrorResponse({ status, error, statusText: 'Error', url: '/api/v1/x' });
}

describe('toApiError', () => {
  it("maps Litestar's validation extras to the fields they name", () => {
    const error = toApiError(
      response(400, {
        status_code: 400,
        detail: 'Validation failed for POST /api/v1/job_executor/async',
        extra: [
          { key: 'estimated_time', message: 'Expected `float` >= 0', source: 'body' },
          { key: 'params.duration', message: 'must be a number', source: 'body' },
          { key: 'executor', message: 'unknown executor gpu', source: 'query' },
        ],
      }),
    );
    expect(error.unreachable).toBe(false);
    expect(error.status).toBe(400);
    expect(error.fields).toEqual({
      estimated_time: 'Expected `float` >= 0',
      params: 'must be a number',
      executor: 'unknown executor gpu',
    });
    expect(error.message).toContain('Validation failed');
  });

  it('accepts extras given as an object too', () => {
    const error = toApiError(
      response(400, { status_code: 400, detail: 'Bad', extra: { job_name: 'unknown task' } }),
    );
    expect(error.fields).toEqual({ job_name: 'unknown task' });
  });

  it('uses the detail as the message when no field is named', () => {
    const error = toApiError(
      response(409, { status_code: 409, detail: 'Job is already succeeded' }),
    );
    expect(error.message).toBe('Job is already succeeded (HTTP 409)');
    expect(error.fields).toEqual({});
  });

  it('calls a refused connection or a bare 502 "unreachable"', () => {
    expect(toApiError(response(0, new ProgressEvent('error'))).unreachable).toBe(true);
    expect(toApiError(response(502, 'Bad Gateway')).unreachable).toBe(true);
    expect(toApiError(response(0, null)).message).toContain('Cannot reach the API');
  });

  it("treats the kernel's own 503 (queue refused) as an answer, not an outage", () => {
    const error = toApiError(
      response(503, { status_code: 503, detail: 'The queue refused the job' }),
    );
    expect(error.unreachable).toBe(false);
    expect(error.message).toContain('The queue refused the job');
  });
});
