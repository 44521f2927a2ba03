-- The RSA keys the gateway signs the services' access tokens with (services/gateway/signing.py).
-- One key is active (signs); a retired one stays published in the JWKS for the overlap, so the tokens it
-- signed verify until they expire. Rows are kept after that as the rotation history (public parts only matter).
CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY CHECK (length(kid) BETWEEN 1 AND 128),  -- RFC 7638 thumbprint
    private_key    TEXT NOT NULL,    -- PKCS#8 PEM as a Fernet token under AVATAR_SECRETS_KEY, never plaintext
    public_jwk     JSONB NOT NULL,   -- what the JWKS publishes: kty, n, e, kid, use, alg
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    activated_at   TIMESTAMPTZ,
    retired_at     TIMESTAMPTZ,
    CHECK (retired_at IS NULL OR activated_at IS NOT NULL)
);
-- at most one active key, whatever number of gateways start or rotate at once
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true))
    WHERE activated_at IS NOT NULL AND retired_at IS NULL;
