"""CDP API keys: deterministic EC P-256 key pairs and the ES256 JWT check Coinbase runs.

A CDP key is a key name (`organizations/{org_id}/apiKeys/{key_id}`) plus an EC private
key PEM. Every request carries `Authorization: Bearer <JWT>` signed with that key; the
simulator keeps only the public half and verifies for real. Two claim sets are accepted:
the official SDK's (`iss: "cdp"`, `uri`) and ccxt's (`iss: "coinbase-cloud"`, `aud`,
`uris: [uri]`) [docs/brokers.md §2.2, CBPY jwt_generator.py, CCXT create_auth_token].

Token times are checked against wall time, not the simulator's clock: the client signs
with its own wall clock, and pushing the simulated clock forward ("make time pass") must
not look like client clock skew.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# Order of the P-256 group: a private scalar must lie in [1, n - 1].
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
JWT_MAX_LIFETIME = 120      # "expires after 2 minutes" [CB-PG rest-api-auth]
CLOCK_SLACK = 1             # the SDK truncates to whole seconds, so allow one
ISSUERS = frozenset({"cdp", "coinbase-cloud"})


class Unauthorized(Exception):
    """Any authentication failure: the API answers 401 `Unauthorized`, whatever the cause."""


@dataclass(frozen=True)
class KeyPair:
    name: str
    private_pem: str
    public_key: ec.EllipticCurvePublicKey


def _uuid_from(digest: bytes) -> str:
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def derive_key(seed: int, serial: int) -> KeyPair:
    """The same (seed, serial) always gives the same key name and private scalar."""
    base = f"coinbase-cdp-key:{seed}:{serial}".encode()
    org_id = _uuid_from(hashlib.sha256(base + b":org").digest())
    key_id = _uuid_from(hashlib.sha256(base + b":key").digest())
    scalar = int.from_bytes(hashlib.sha256(base + b":scalar").digest(), "big") % (_P256_ORDER - 1) + 1
    private = ec.derive_private_key(scalar, ec.SECP256R1())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    return KeyPair(name=f"organizations/{org_id}/apiKeys/{key_id}", private_pem=pem,
                   public_key=private.public_key())


def _bearer(authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthorized("no bearer token")
    return authorization[len("Bearer "):].strip()


def key_name_of(authorization: str | None) -> str:
    """The key a token claims to be signed with (`kid`), before any verification."""
    try:
        header = jwt.get_unverified_header(_bearer(authorization))
    except jwt.PyJWTError:
        raise Unauthorized("malformed token") from None
    if header.get("alg") != "ES256" or not header.get("kid") or not header.get("nonce"):
        raise Unauthorized("bad header")
    return str(header["kid"])


def verify(authorization: str | None, public_key: ec.EllipticCurvePublicKey, *, key_name: str,
           method: str, host: str, path: str, now: float | None = None) -> dict:
    """Check signature, issuer, subject, lifetime and the request binding (`uri`)."""
    token = _bearer(authorization)
    try:
        claims = jwt.decode(token, public_key, algorithms=["ES256"],
                            options={"verify_exp": False, "verify_nbf": False, "verify_aud": False,
                                     "verify_iat": False, "verify_iss": False})
    except jwt.PyJWTError:
        raise Unauthorized("bad signature") from None
    now = time.time() if now is None else now
    if claims.get("sub") != key_name or claims.get("iss") not in ISSUERS:
        raise Unauthorized("bad subject or issuer")
    try:
        nbf, exp = float(claims["nbf"]), float(claims["exp"])
    except (KeyError, TypeError, ValueError):
        raise Unauthorized("missing nbf/exp") from None
    if nbf > now + CLOCK_SLACK or exp <= now or exp > now + JWT_MAX_LIFETIME + CLOCK_SLACK:
        raise Unauthorized("token not valid now")
    expected = f"{method.upper()} {host}{path}"
    uris = claims.get("uris") if isinstance(claims.get("uris"), list) else [claims.get("uri")]
    if expected not in uris:
        raise Unauthorized("uri does not match the request")
    return claims
