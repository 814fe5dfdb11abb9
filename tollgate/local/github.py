"""``make local``'s GitHub: a key list for the leak webhook, and a way to send it signed reports.

At start the local stack (:class:`LocalGitHub`) makes a fresh ECDSA P-256 key pair, writes
its private key to a file only this user can read (``TOLLGATE_LOCAL_GITHUB_KEY``, or
:func:`key_path` of the API port), serves the public key as GitHub's key list
(``{"public_keys": [...]}``) on a loopback port of its own, and points the webhook at it
(``TOLLGATE_GITHUB_KEYS_URL``): the webhook's real fetch-and-verify path runs, against a key
that is not GitHub's. The key file is removed when the stack stops.

To send a signed leak report to a running ``make local`` (docs/runbook.md):

    .venv/bin/python -m tollgate.local.github report tg_live_...   [more tokens]

signs ``[{"token", "type", "url", "source"}, ...]`` with the local key and posts it to
``/webhooks/github/secret-scanning`` (``TOLLGATE_PORT``, default 8080), printing the answer.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

ENV_KEY_FILE: Final = "TOLLGATE_LOCAL_GITHUB_KEY"
IDENTIFIER: Final = "tollgate-local-test-key"
KEYS_PATH: Final = "/meta/public_keys/secret_scanning"
WEBHOOK_PATH: Final = "/webhooks/github/secret-scanning"
ID_HEADER: Final = "Github-Public-Key-Identifier"
SIG_HEADER: Final = "Github-Public-Key-Signature"


def key_path(api_port: int) -> Path:
    """Where the stack on ``api_port`` keeps its signing key (unless told otherwise)."""
    override = os.environ.get(ENV_KEY_FILE, "").strip()
    if override:
        return Path(override)
    return Path(tempfile.gettempdir()) / f"tollgate-local-{api_port}" / "github-test-key.pem"


def _public_pem(private: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return str(
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def key_list(private: Any) -> bytes:
    """GitHub's key list document for ``private``'s public key."""
    entry = {"key_identifier": IDENTIFIER, "key": _public_pem(private), "is_current": True}
    return json.dumps({"public_keys": [entry]}).encode()


def load_key(path: Path) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key(path.read_bytes(), password=None)


def sign(body: bytes, private: Any) -> dict[str, str]:
    """The two signature headers GitHub would send with ``body``."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    signature = base64.b64encode(private.sign(body, ec.ECDSA(hashes.SHA256()))).decode()
    return {ID_HEADER: IDENTIFIER, SIG_HEADER: signature}


def report_body(tokens: list[str], url: str = "https://gist.github.com/local/1") -> bytes:
    return json.dumps(
        [{"token": t, "type": "tollgate_api_key", "url": url, "source": "gist"} for t in tokens]
    ).encode()


class LocalGitHub:
    """The key pair, its key file and the key list server of one local stack."""

    def __init__(self, key_file: Path, host: str = "127.0.0.1") -> None:
        self.key_file = key_file
        self.host = host
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> LocalGitHub:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        private = ec.generate_private_key(ec.SECP256R1())
        self.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        document = key_list(private)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = self.path.split("?")[0] == KEYS_PATH
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(document if found else b'{"message": "Not Found"}')

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer((self.host, 0), Handler)
        threading.Thread(target=self.server.serve_forever, name="local-github", daemon=True).start()
        return self

    @property
    def keys_url(self) -> str:
        assert self.server is not None
        return f"http://{self.host}:{self.server.server_port}{KEYS_PATH}"

    def point_webhook_here(self) -> None:
        """The in-process webhook fetches this key list (never the real GitHub's)."""
        from functions.respond.config import ENV_KEYS_URL
        from functions.webhook import handler as webhook

        os.environ[ENV_KEYS_URL] = self.keys_url
        webhook.reset()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        self.key_file.unlink(missing_ok=True)


def send_report(api_url: str, tokens: list[str], key_file: Path) -> tuple[int, Any]:
    """Sign a report naming ``tokens`` with the local key and post it; (status, answer)."""
    body = report_body(tokens)
    headers = {"Content-Type": "application/json", **sign(body, load_key(key_file))}
    request = urllib.request.Request(  # noqa: S310 - the local gateway
        api_url.rstrip("/") + WEBHOOK_PATH, data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read() or b"null")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tollgate.local.github",
        description="Send a leak report signed with make local's test key to the local webhook.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="report TOKEN(s) as leaked (the local stack revokes them)")
    rep.add_argument("tokens", nargs="+", metavar="TOKEN")
    port = os.environ.get("TOLLGATE_PORT", "8080")
    rep.add_argument("--api", default=f"http://127.0.0.1:{port}", help="the local gateway's URL")
    rep.add_argument("--key-file", type=Path, default=None, help="the local signing key (PEM)")
    args = parser.parse_args(argv)
    key_file = args.key_file or key_path(int(port) if port.isascii() and port.isdigit() else 8080)
    if not key_file.exists():
        print(f"no local signing key at {key_file}: is make local running?", file=sys.stderr)
        return 2
    try:
        status, answer = send_report(args.api, args.tokens, key_file)
    except OSError as exc:
        print(f"cannot reach the local gateway at {args.api}: {exc}", file=sys.stderr)
        return 1
    if isinstance(answer, list):  # the labels, without echoing the tokens back
        answer = [{k: v for k, v in a.items() if k != "token_raw"} for a in answer]
    print(json.dumps(answer, indent=2))
    return 0 if status == 200 else 1


if __name__ == "__main__":
    raise SystemExit(main())
