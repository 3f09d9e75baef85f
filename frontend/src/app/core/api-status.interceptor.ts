import { HttpErrorResponse, HttpEventType, HttpInterceptorFn } from '@angular/common/http';
import { inject } from '@angular/core';
import { tap } from 'rxjs';

import { isUnreachable, toApiError } from '../api/api-error';
import { ApiStatus } from './api-status.service';

/** Tells {@link ApiStatus} whether each request reached the kernel. */
export const apiStatusInterceptor: HttpInterceptorFn = (request, next) => {
  const status = inject(ApiStatus);
  return next(request).pipe(
    tap({
      next: (event) => {
        if (event.type === HttpEventType.Response) {
          status.markUp();
        }
      },
      error: (error: unknown) => {
        if (error instanceof HttpErrorResponse) {
          if (isUnreachable(error)) {
            status.markDown(toApiError(error));
          } else {
            // A 4xx (or a Litestar 5xx) is an answer: the API is up.
            status.markUp();
          }
        }
      },
    }),
  );
};
