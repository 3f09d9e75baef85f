import { InjectionToken } from '@angular/core';

import { SessionState, SessionUser } from '../api/auth.model';

/** The URL index.html preloads (<link rel="preload" as="fetch">): keep the two the same. */
export const SESSION_URL = '/api/v1/auth/session';

/**
 * The answer of the first GET /auth/session: the user, null (not signed in), or undefined
 * (no answer worth trusting: the API is down or erred; AuthService asks again through
 * HttpClient, which reports an API that is down).
 */
export type EarlySession = Promise<SessionUser | null | undefined>;

/**
 * GET /auth/session started before the app boots (main.ts), so that the route guards need not
 * wait a round trip for it. A plain fetch of the same URL, mode and credentials as the
 * preload in index.html: the browser hands it the preloaded answer, which has been on its
 * way since the page's HTML was read.
 */
export function startSessionRequest(
  fetcher: (url: string) => Promise<Response> = (url) => fetch(url),
): EarlySession {
  return fetcher(SESSION_URL)
    .then(async (response): Promise<SessionUser | null | undefined> => {
      if (response.status === 401 || response.status === 204) {
        return null;
      }
      if (!response.ok) {
        return undefined;
      }
      // 200 whether signed in or not: {"signed_in": false} or who is signed in.
      const state = (await response.json()) as SessionState | null;
      return state?.signed_in && typeof state.username === 'string'
        ? { username: state.username, role: state.role }
        : null;
    })
    .catch(() => undefined);
}

/** The early GET /auth/session, when main.ts started one (tests and other hosts do not). */
export const EARLY_SESSION = new InjectionToken<EarlySession | null>('EARLY_SESSION', {
  providedIn: 'root',
  factory: () => null,
});
