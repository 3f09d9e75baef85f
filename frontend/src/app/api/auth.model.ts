/**
 * The kernel's sign-in and API token contract (under /api/v1/auth and /api/v1/tokens).
 * Keep the names identical to the wire so a grep finds both sides.
 */

export type Role = 'user' | 'admin';

/** Who is signed in: the answer of POST /auth/login (and of GET /auth/me, for scripts). */
export interface SessionUser {
  username: string;
  role: Role;
}

/**
 * The answer of GET /auth/session: 200 whether signed in or not, so that a signed-out
 * visit logs no failed request in the browser's console.
 */
export type SessionState =
  { signed_in: false } | { signed_in: true; username: string; role: Role; via: string };

/** Body of POST /api/v1/auth/login. */
export interface LoginRequest {
  username: string;
  password: string;
}

/** An API token as GET /api/v1/tokens lists it; timestamps are ISO UTC. */
export interface ApiToken {
  id: string;
  name: string;
  created_at: string;
  last_used_at: string | null;
  /** When it stops working (AUTH_API_TOKEN_TTL after creation); null: never. */
  expires_at: string | null;
}

/** The answer of POST /api/v1/tokens: the only time the secret is ever sent. */
export interface CreatedToken extends ApiToken {
  token: string;
}

/** The token name rule of POST /api/v1/tokens: 1 to 100 characters. */
export const TOKEN_NAME_MAX = 100;

export interface Message {
  message: string;
}
