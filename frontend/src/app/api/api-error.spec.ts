import { HttpErrorResponse } from '@angular/common/http';

import { problem } from '../../testing/problem';
import { toApiError } from './api-error';

function response(status: number, error: unknown): HttpErrorResponse {
  return new HttpErrorResponse({ status, error, statusText: 'Error', url: '/api/v1/x' });
}

describe('toApiError', () => {
  it("maps a problem's errors to the form fields they name", () => {
    const error = toApiError(
      response(
        400,
        problem(400, 'Invalid request body field estimated_time: must be a number, at least 0', [
          { field: 'estimated_time', message: 'must be a number, at least 0', in: 'body' },
          { field: 'params.duration', message: 'must be a number', in: 'body' },
          { field: 'executor', message: 'unknown executor gpu', in: 'query' },
        ]),
      ),
    );
    expect(error.unreachable).toBe(false);
    expect(error.status).toBe(400);
    expect(error.fields).toEqual({
      estimated_time: 'must be a number, at least 0',
      params: 'must be a number',
      executor: 'unknown executor gpu',
    });
    expect(error.message).toBe(
      'Invalid request body field estimated_time: must be a number, at least 0 (HTTP 400)',
    );
  });

  it('joins two messages about one form field', () => {
    const error = toApiError(
      response(
        400,
        problem(400, 'Bad params', [
          { field: 'params.a', message: 'must be a number', in: 'body' },
          { field: 'params.b', message: 'required, but missing', in: 'body' },
        ]),
      ),
    );
    expect(error.fields).toEqual({ params: 'must be a number; required, but missing' });
  });

  it('uses the detail as the message when no field is named', () => {
    const error = toApiError(
      response(409, problem(409, 'Job is already succeeded', [], { current_status: 'succeeded' })),
    );
    expect(error.message).toBe('Job is already succeeded (HTTP 409)');
    expect(error.fields).toEqual({});
  });

  it('calls a refused connection, a bare 502 or a 5xx without a problem "unreachable"', () => {
    expect(toApiError(response(0, new ProgressEvent('error'))).unreachable).toBe(true);
    expect(toApiError(response(502, 'Bad Gateway')).unreachable).toBe(true);
    expect(toApiError(response(504, { message: 'upstream timed out' })).unreachable).toBe(true);
    expect(toApiError(response(0, null)).message).toContain('Cannot reach the API');
  });

  it("treats the kernel's own 503 (queue refused) as an answer, not an outage", () => {
    const error = toApiError(
      response(503, problem(503, 'The queue refused the job', [], { job_id: 'abc' })),
    );
    expect(error.unreachable).toBe(false);
    expect(error.message).toContain('The queue refused the job');
  });
});
