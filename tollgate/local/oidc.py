"""A local OIDC issuer: a real HTTP server on 127.0.0.1 serving discovery and a JWK Set, with
keys generated when it starts, and the means to mint tokens (good ones and forged ones).

The tests exchange its tokens at ``POST /v1/auth/token`` exactly as a GitHub Actions job
exchanges GitHub's; ``make local`` runs one too (its URL is printed), with ``POST /mint``
(form ``sub``, ``aud``, any other claim) answering a signed token, for trying the exchange
by hand. It is a test double of an identity provider: never expose it.

``down = True`` makes every request answer 503 (the issuer is unreachable); ``hits`` counts
requests per path (how many fetches the token route made).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

DISCOVERY = "/.well-known/openid-configuration"
JWKS = "/jwks"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _Quiet(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class LocalIssuer:
    """Keys ``rsa-1`` (RS256) and ``ec-1`` (ES256); more with :meth:`add_key`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._private: dict[str, tuple[str, Any]] = {}
        self.published: list[str] = []  # kids in the JWK Set, in order
        self.down = False
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.add_key("rsa-1", "RS256")
        self.add_key("ec-1", "ES256")
        self._server: BaseWSGIServer = make_server(
            host, port, self._app, threaded=True, request_handler=_Quiet
        )
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> LocalIssuer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- keys ------------------------------------------------------------------------------
    def add_key(self, kid: str, alg: str = "RS256", *, publish: bool = True) -> None:
        key: Any
        if alg.startswith(("RS", "PS")):
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            key = ec.generate_private_key(ec.SECP256R1())
        with self._lock:
            self._private[kid] = (alg, key)
            if publish:
                self.published.append(kid)

    def jwk(self, kid: str) -> dict[str, Any]:
        alg, key = self._private[kid]
        family = RSAAlgorithm if alg.startswith(("RS", "PS")) else ECAlgorithm
        jwk: dict[str, Any] = json.loads(family.to_jwk(key.public_key()))
        jwk.update(kid=kid, use="sig", alg=alg)
        return jwk

    def public_pem(self, kid: str) -> bytes:
        return bytes(
            self._private[kid][1]
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    # -- tokens ----------------------------------------------------------------------------
    def claims(
        self,
        sub: str,
        aud: str | list[str],
        *,
        lifetime: int = 300,
        now: float | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        t = int(time.time() if now is None else now)
        base: dict[str, Any] = {
            "iss": self.url,
            "sub": sub,
            "aud": aud,
            "iat": t,
            "nbf": t,
            "exp": t + lifetime,
            "jti": secrets.token_hex(8),
        }
        base.update(extra)
        return {k: v for k, v in base.items() if v is not None}

    def sign(
        self, claims: dict[str, Any], *, kid: str = "rsa-1", header_kid: str | None = None
    ) -> str:
        """Sign with key ``kid``; the header names ``header_kid`` if given (a forgery)."""
        alg, key = self._private[kid]
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": header_kid or kid})

    def mint(self, sub: str, aud: str | list[str], *, kid: str = "rsa-1", **claims: Any) -> str:
        return self.sign(self.claims(sub, aud, **claims), kid=kid)

    @staticmethod
    def unsigned(claims: dict[str, Any], kid: str = "rsa-1") -> str:
        """``alg: none`` (no signature)."""
        header = b64url(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
        return f"{header}.{b64url(json.dumps(claims).encode())}."

    def hs256_with_public_key(self, claims: dict[str, Any], kid: str = "rsa-1") -> str:
        """HS256 with the issuer's *public* key (PEM) as the HMAC secret: the classic
        algorithm-confusion forgery."""
        header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
        signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
        mac = hmac.new(self.public_pem(kid), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"

    # -- HTTP ------------------------------------------------------------------------------
    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.hits[request.path] += 1
        if self.down:
            response = Response("unavailable", status=503)
        elif request.method == "GET" and request.path == DISCOVERY:
            response = self._json({"issuer": self.url, "jwks_uri": self.url + JWKS})
        elif request.method == "GET" and request.path == JWKS:
            with self._lock:
                kids = list(self.published)
            response = self._json({"keys": [self.jwk(k) for k in kids]})
        elif request.method == "POST" and request.path == "/mint":
            form = dict(request.form)
            sub, aud = form.pop("sub", "local-agent"), form.pop("aud", "tollgate")
            response = Response(self.mint(sub, aud, **form), content_type="text/plain")
        else:
            response = Response("not found", status=404)
        return response(environ, start_response)

    @staticmethod
    def _json(body: Any) -> Response:
        return Response(json.dumps(body), content_type="application/json")


@contextmanager
def running(host: str = "127.0.0.1", port: int = 0) -> Iterator[LocalIssuer]:
    issuer = LocalIssuer(host, port).start()
    try:
        yield issuer
    finally:
        issuer.stop()
