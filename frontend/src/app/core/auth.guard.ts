import { inject } from '@angular/core';
import { CanActivateFn, CanMatchFn, Router, UrlTree } from '@angular/router';
import { map } from 'rxjs';

import { AuthService } from './auth.service';
import { DEFAULT_RETURN_URL, SIGN_IN_PATH, safeReturnUrl } from './return-url';

/** /sign-in, with the place to come back to when it is one of the app's own pages. */
export function signInUrlTree(router: Router, returnUrl: string | null): UrlTree {
  const target = safeReturnUrl(returnUrl);
  return router.createUrlTree([SIGN_IN_PATH], {
    queryParams: target && target !== '/' ? { returnUrl: target } : {},
  });
}

/** Every page but /sign-in: a signed-in user, else /sign-in?returnUrl=<this page>. */
export const signedInGuard: CanActivateFn = (_route, state) => {
  const router = inject(Router);
  return inject(AuthService)
    .session()
    .pipe(map((user) => (user ? true : signInUrlTree(router, state.url))));
};

/**
 * Admin pages (canMatch): the route matches for a signed-in admin only. Anyone else
 * falls through to the next route of the same path, which says "admins only" (or, signed
 * out, sends them to sign in); the admin page's code is never even loaded for them.
 */
export const adminGuard: CanMatchFn = () =>
  inject(AuthService)
    .session()
    .pipe(map((user) => user?.role === 'admin'));

/** /sign-in itself: someone already signed in goes on to returnUrl (or My jobs). */
export const signedOutGuard: CanActivateFn = (route) => {
  const router = inject(Router);
  return inject(AuthService)
    .session()
    .pipe(
      map((user) =>
        user
          ? router.parseUrl(
              safeReturnUrl(route.queryParamMap.get('returnUrl')) ?? DEFAULT_RETURN_URL,
            )
          : true,
      ),
    );
};
