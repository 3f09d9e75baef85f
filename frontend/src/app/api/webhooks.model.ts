/**
 * The kernel's webhook signing secret contract (under /api/v1/webhooks/secret).
 * Keep the names identical to the wire so a grep finds both sides.
 */

/** GET /api/v1/webhooks/secret: whether you have one and since when (never the secret). */
export interface WebhookSecretState {
  exists: boolean;
  rotated_at: string | null;
}

/** The answer of POST /api/v1/webhooks/secret: the only time the secret is ever sent. */
export interface WebhookSecret {
  /** `whsec_<hex>`. */
  secret: string;
  rotated_at: string;
}
