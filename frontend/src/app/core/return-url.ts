/** The sign-in page's path; never a place to come back to. */
export const SIGN_IN_PATH = '/sign-in';

/** Where the app goes after signing in when no (usable) returnUrl was given. */
export const DEFAULT_RETURN_URL = '/jobs';

// Any base will do: it only tells whether a URL stays on the origin it is resolved against.
const PROBE_ORIGIN = 'http://taskbroker.invalid';

/** Whether a router URL (path, query, fragment) is the sign-in page. */
export function isSignInUrl(url: string): boolean {
  const path = url.split(/[?#]/, 1)[0];
  return path === SIGN_IN_PATH || path.startsWith(`${SIGN_IN_PATH}/`);
}

/**
 * A returnUrl that is safe to navigate to after signing in: a path of this app
 * ("/jobs?status=failed"), else null. Refuses absolute and protocol-relative URLs
 * ("https://evil.example", "//evil.example", "/\evil.example"), other schemes
 * ("javascript:…"), control characters, and the sign-in page itself (no loop).
 */
export function safeReturnUrl(value: string | null | undefined): string | null {
  if (!value || value.length > 2048 || !value.startsWith('/')) {
    return null;
  }
  // "//host" and "/\host" are read as another host by browsers; no control characters.
  // eslint-disable-next-line no-control-regex
  if (value.startsWith('//') || /[\\\u0000-\u001f\u007f]/.test(value)) {
    return null;
  }
  let resolved: URL;
  try {
    resolved = new URL(value, PROBE_ORIGIN);
  } catch {
    return null;
  }
  if (resolved.origin !== PROBE_ORIGIN || isSignInUrl(value)) {
    return null;
  }
  return value;
}
