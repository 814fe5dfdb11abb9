"""``make local``: the whole system on this machine, in the foreground, until Ctrl-C/SIGTERM.

moto's server is the AWS endpoint (DynamoDB with streams), the local gateway serves the
managed API through the real authorizer and API handlers, and stream pollers feed the real
stream handlers. State lives in memory and is gone when it stops.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
from typing import Any

from tollgate.local import aws

STARTER_PLAN: dict[str, Any] = {
    "requests_per_minute": 60,
    "requests_per_month": 100_000,
    "tokens_per_month": 2_000_000,
    "models": ["tollgate-echo"],
    "price_per_1k_prompt": "0.0005",
    "price_per_1k_completion": "0.0015",
}


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, str(default))
    lowest = 0 if default == 0 else 1  # 0 (any free port) only where it is the default
    if not (raw.isascii() and raw.isdigit()) or not lowest <= int(raw) < 65536:
        print(f"tollgate local: {name} must be a TCP port number, got {raw!r}", file=sys.stderr)
        raise SystemExit(2)
    return int(raw)


class LocalStack:
    """Everything ``make local`` runs; also used by the e2e tests and the benchmarks."""

    def __init__(self, api_port: int = 0, aws_port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self._api_port = api_port
        self._aws_port = aws_port
        self.ready = threading.Event()
        self.moto: aws.MotoServer | None = None
        self._stoppers: list[Any] = []

    def start(self) -> LocalStack:
        # Quiet handler output unless asked; never the real AWS.
        os.environ.setdefault(
            "POWERTOOLS_LOG_LEVEL", os.environ.get("TOLLGATE_LOG_LEVEL", "WARNING")
        )
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
        self.moto = aws.start(self.host, self._aws_port)
        self._stoppers.append(self.moto.stop)
        aws.point_clients_at(self.moto.endpoint)

        import boto3

        from functions.common.config import TableNames
        from functions.common.models import create_tables

        create_tables(boto3.client("dynamodb"), TableNames())

        from tollgate.local.pollers import start_pollers

        self.pollers = start_pollers(moto=self.moto)  # the stack's stream consumers
        self._stoppers.append(self.pollers)
        from tollgate.local.pollers import start_sweep

        self.sweep = start_sweep()  # the stack's schedule: orphaned reservations
        self._stoppers.append(self.sweep)

        from tollgate.local.gateway import LocalGateway, serve
        from tollgate.local.refusals import RefusalFeed

        feed = RefusalFeed().start()  # the access-log subscription of the deployed stack
        self._stoppers.append(feed.stop)
        self.gateway = serve(
            LocalGateway(ready=self.ready.is_set, access_log=feed.put),
            self.host,
            self._api_port,
        )
        from tollgate.local.github import LocalGitHub, key_path

        # The leak webhook's key list: a local test key, never GitHub's (tollgate/local/github.py).
        self.github = LocalGitHub(key_path(self.gateway.server_port), self.host).start()
        self._stoppers.append(self.github.stop)
        self.github.point_webhook_here()
        from functions.trust.config import ENV_ALLOW_HTTP
        from tollgate.local.oidc import LocalIssuer

        # The token route trusts http:// issuers on loopback here only (never in AWS), and a
        # local OIDC issuer lets anyone try the exchange (tollgate/local/oidc.py).
        os.environ.setdefault(ENV_ALLOW_HTTP, "1")
        self.issuer = LocalIssuer(self.host, _port("TOLLGATE_OIDC_PORT", 0)).start()
        self._stoppers.append(self.issuer.stop)
        # billing export (issue 14 item 5): a local Stripe for `billing export --to stripe`.
        from tollgate.local.stripe_fake import StripeFake

        self.stripe = StripeFake(host=self.host).start()
        self._stoppers.append(self.stripe.stop)
        thread = threading.Thread(target=self.gateway.serve_forever, daemon=True)
        thread.start()
        self._stoppers.append(self.gateway.shutdown)
        self.ready.set()
        return self

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.gateway.server_port}"

    def seed_demo(self) -> list[dict[str, Any]]:
        from functions.keys.service import KeyService

        return KeyService().seed(
            tenant_id="demo", plan="starter", plan_options=STARTER_PLAN, principal="demo-app"
        )

    def stop(self) -> None:
        for stop in reversed(self._stoppers):
            try:
                stop()
            except Exception as exc:  # keep stopping the rest
                print(f"tollgate local: while stopping: {exc}", file=sys.stderr)
        self._stoppers.clear()


def banner(stack: LocalStack, keys: list[dict[str, Any]]) -> str:
    live = next(k for k in keys if k["environment"] == "live")
    test = next(k for k in keys if k["environment"] == "test")
    url = stack.api_url
    return f"""
Tollgate is running locally (state is in memory and is gone when this stops).

  managed API     {url}/v1        (health: {url}/health)
  AWS endpoint    {stack.moto.endpoint if stack.moto else "?"}  (moto)

Seeded tenant 'demo' on plan 'starter' with two keys (shown once, keep them):
  live key  {live["key_id"]}  {live["secret"]}
  test key  {test["key_id"]}  {test["secret"]}

Try it:
  curl -s {url}/v1/chat/completions \\
    -H "Authorization: Bearer {live["secret"]}" -H "Content-Type: application/json" \\
    -d '{{"model": "tollgate-echo", "messages": [{{"role": "user", "content": "hello"}}]}}'

  .venv/bin/python - <<'PY'
from openai import OpenAI
client = OpenAI(base_url="{url}/v1", api_key="{live["secret"]}")
messages = [{{"role": "user", "content": "hi"}}]
reply = client.chat.completions.create(model="tollgate-echo", messages=messages)
print(reply.choices[0].message.content)
PY

Leak webhook: {url}/webhooks/github/secret-scanning, signed with a local test key
  ({stack.github.key_file}); report a key as leaked:
  .venv/bin/python -m tollgate.local.github report {test["secret"]}

OIDC token exchange (POST /v1/auth/token), with a local OIDC issuer at {stack.issuer.url}:
  .venv/bin/tollgate --local trust create --tenant demo --issuer {stack.issuer.url} \\
    --audience tollgate --subject 'agent-*' --scopes inference:invoke --ttl 15m
  TOKEN=$(curl -s {stack.issuer.url}/mint -d sub=agent-1 -d aud=tollgate)
  curl -s {url}/v1/auth/token -d subject_token=$TOKEN \\
    -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \\
    -d subject_token_type=urn:ietf:params:oauth:token-type:id_token

Billing export to a local Stripe (tollgate/local/stripe_fake.py; docs/billing.md):
  .venv/bin/tollgate --local billing map demo --stripe-customer cus_demo
  TOLLGATE_STRIPE_API_KEY=sk_test_local .venv/bin/tollgate --local billing export \\
    --to stripe --stripe-api-base {stack.stripe.url}

Manage it from another terminal:  .venv/bin/tollgate --local keys list --tenant demo
Stop with Ctrl-C.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: no options but ``--help`` (ports come from the environment)."""
    parser = argparse.ArgumentParser(
        prog="python -m tollgate.local",
        description="Run the whole of Tollgate on this machine (what `make local` runs), in "
        "the foreground until Ctrl-C. State lives in memory and is gone when it stops.",
        epilog="Environment: TOLLGATE_PORT (managed API, default 8080), TOLLGATE_AWS_PORT "
        "(embedded AWS endpoint, default 4566), TOLLGATE_LOG_LEVEL (default WARNING), "
        "TOLLGATE_FAULTS (inject DynamoDB faults; docs/soak.md), TOLLGATE_SWEEP_EVERY_S "
        "(the orphaned-reservation sweep's period, default 300), TOLLGATE_OIDC_PORT (the local "
        "OIDC issuer's port, default: any free one; printed).",
    )
    return parser.parse_args(argv)


def port_in_use_hint(api_port: int, aws_port: int) -> str:
    return (
        f"ports {api_port} (TOLLGATE_PORT) and {aws_port} (TOLLGATE_AWS_PORT) must be free: "
        "stop the other stack, or choose others, e.g. "
        "TOLLGATE_PORT=8081 TOLLGATE_AWS_PORT=4567 make local (and the same TOLLGATE_AWS_PORT "
        "for `tollgate --local`)"
    )


def main(argv: list[str] | None = None) -> int:
    parse_args(argv)  # --help prints usage and exits 0 before anything starts
    api_port = _port("TOLLGATE_PORT", 8080)
    aws_port = _port("TOLLGATE_AWS_PORT", 4566)
    stack = LocalStack(api_port, aws_port)
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
    except OSError as exc:
        print(f"tollgate local: cannot start: {exc}", file=sys.stderr)
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            print(f"tollgate local: {port_in_use_hint(api_port, aws_port)}", file=sys.stderr)
        stack.stop()
        return 1
    except SystemExit:  # werkzeug's server exits on a port in use, after saying so
        print(
            f"tollgate local: cannot start: {port_in_use_hint(api_port, aws_port)}",
            file=sys.stderr,
        )
        stack.stop()
        return 1
    try:
        keys = stack.seed_demo()
        print(banner(stack, keys), flush=True)
        stopping.wait()
    finally:
        print("tollgate local: stopping", file=sys.stderr, flush=True)
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
