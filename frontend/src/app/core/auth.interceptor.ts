import { HttpErrorResponse, HttpInterceptorFn } from '@angular/common/http';
import { inject } from '@angular/core';
import { Router } from '@angular/router';
import { tap } from 'rxjs';

import { API_BASE } from '../api/api-base';
import { signInUrlTree } from './auth.guard';
import { AuthService } from './auth.service';
import { NoticeService } from './notice.service';
import { isSignInUrl } from './return-url';

/** Calls whose 401 is an answer the caller handles, not a lost session. */
const OWN_401 = ['/auth/me', '/auth/session', '/auth/login', '/auth/logout'];

/** Whether a 401 from this request URL means "the session is gone". */
export function needsSession(url: string, base: string): boolean {
  const path = url.split(/[?#]/, 1)[0];
  if (!path.startsWith(`${base}/`)) {
    return false;
  }
  const rest = path.slice(base.length);
  return !OWN_401.includes(rest);
}

/**
 * A 401 from the API (the session expired, was revoked, or the user signed out in
 * another tab): forget the user and go to /sign-in?returnUrl=<where the user was>.
 * The error still reaches the caller.
 */
export const authInterceptor: HttpInterceptorFn = (request, next) => {
  const base = inject(API_BASE);
  const auth = inject(AuthService);
  const router = inject(Router);
  const notices = inject(NoticeService);
  return next(request).pipe(
    tap({
      error: (error: unknown) => {
        if (
          !(error instanceof HttpErrorResponse) ||
          error.status !== 401 ||
          !needsSession(request.url, base)
        ) {
          return;
        }
        const hadUser = auth.user() !== null;
        auth.clear();
        const current = router.url;
        if (isSignInUrl(current)) {
          return; // already there, with its own returnUrl
        }
        if (hadUser) {
          notices.show('Your session has ended. Sign in again to continue.');
        }
        void router.navigateByUrl(signInUrlTree(router, current));
      },
    }),
  );
};
