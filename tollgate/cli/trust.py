"""``tollgate trust``: trust policies for the OIDC token exchange (``POST /v1/auth/token``).

A policy says which external identities (issuer, audience, subject pattern, claims) may
exchange their token for a short-lived key of a tenant, and what that key may do
(functions/keys/trust.py; docs/threat-model.md, "Agent identity").
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from tollgate.cli import render
from tollgate.cli.context import BadInput, emit, service, split_csv, state

app = typer.Typer(
    help="Trust policies: which OIDC identities may exchange their token for a key.",
    no_args_is_help=True,
)

ActorOption = typer.Option(
    None, "--actor", metavar="NAME", help="Who acts (default: $TOLLGATE_ACTOR or cli:<user>)."
)
CLAIM_OPTION = typer.Option(
    None, "--claim", metavar="K=V", help="A claim that must equal V (repeatable)."
)
ALLOW_CIDR_OPTION = typer.Option(
    None, "--allow-cidr", metavar="CIDR,...", help="Networks the keys may be used from."
)
TAG_OPTION = typer.Option(
    None, "--tag", metavar="K=V", help="A tag of every issued key (repeatable)."
)
CLAIM_TAG_OPTION = typer.Option(
    None, "--claim-tag", metavar="TAG=CLAIM", help="Tag TAG from the token's CLAIM."
)
COLUMNS = (
    ("policy_id", "policy"),
    ("status", "status"),
    ("issuer", "issuer"),
    ("audience", "audience"),
    ("subject", "subject"),
    ("scopes", "scopes"),
    ("ttl", "ttl"),
)


@app.command("create")
def create(
    ctx: typer.Context,
    tenant: str = typer.Option(..., "--tenant", metavar="TENANT_ID"),
    issuer: str = typer.Option(
        ..., "--issuer", metavar="URL", help="The token's iss, e.g. https://token.actions..."
    ),
    audience: str = typer.Option(..., "--audience", metavar="AUD", help="Required in aud."),
    subject: str = typer.Option(
        ..., "--subject", metavar="PATTERN", help="Glob on sub: * ? [..], anchored, exact case."
    ),
    claim: list[str] | None = CLAIM_OPTION,
    principal: str | None = typer.Option(
        None, "--principal", metavar="TEMPLATE", help="From claims, e.g. gha:{repository}."
    ),
    scopes: str | None = typer.Option(
        None, "--scopes", metavar="S,S", help="Default: the tenant's plan scopes."
    ),
    env: str = typer.Option("live", "--env", metavar="live|test"),
    ttl: str = typer.Option("1h", "--ttl", metavar="DURATION", help="Key lifetime, at most 12h."),
    token_budget: int | None = typer.Option(
        None, "--token-budget", metavar="N", help="Tokens each issued key may use."
    ),
    spend_budget: str | None = typer.Option(
        None, "--spend-budget", metavar="USD", help="Money each issued key may spend, e.g. 5.00."
    ),
    allow_cidr: list[str] | None = ALLOW_CIDR_OPTION,
    tag: list[str] | None = TAG_OPTION,
    claim_tag: list[str] | None = CLAIM_TAG_OPTION,
    max_uses: int = typer.Option(
        1, "--max-uses", metavar="N", help="Exchanges allowed per token (1-100)."
    ),
    exchanges_per_minute: int = typer.Option(
        60, "--exchanges-per-minute", metavar="N", help="Per issuer and subject."
    ),
    actor: str | None = ActorOption,
) -> None:
    """Create a trust policy (and its root key, whose secret is never shown)."""
    from functions.keys import rules

    if state(ctx).stack and issuer.strip().startswith("http://"):
        raise BadInput("a deployed stack trusts https issuers only")
    cidrs = None
    if allow_cidr is not None:
        cidrs = [c for item in allow_cidr for c in (split_csv(item) or [])]
    policy = service(ctx).create_trust_policy(
        tenant,
        issuer_url=issuer,
        audience_value=audience,
        subject=subject,
        claims=claim,
        principal=principal,
        scopes=split_csv(scopes),
        environment=env,
        ttl_value=ttl,
        token_budget=token_budget,
        spend_budget_micros=rules.spend_micros("spend budget", spend_budget, minimum=1),
        allow_cidrs=cidrs,
        tags=tag,
        claim_tags=claim_tag,
        max_uses=max_uses,
        exchanges_per_minute=exchanges_per_minute,
        allow_http_loopback=not state(ctx).stack,
        actor=actor,
    )
    emit(ctx, policy, lambda c, p: render.record(c, p, f"Trust policy {p['policy_id']}"))


@app.command("list")
def list_(
    ctx: typer.Context, tenant: str = typer.Option(..., "--tenant", metavar="TENANT_ID")
) -> None:
    """A tenant's trust policies (deleted ones included)."""
    emit(ctx, service(ctx).list_trust_policies(tenant), _table)


@app.command("show")
def show(ctx: typer.Context, policy_id: str = typer.Argument(..., metavar="POLICY_ID")) -> None:
    """One trust policy."""
    emit(ctx, service(ctx).get_trust_policy(policy_id), lambda c, p: render.record(c, p))


@app.command("delete")
def delete(
    ctx: typer.Context,
    policy_id: str = typer.Argument(..., metavar="POLICY_ID"),
    reason: str = typer.Option(..., "--reason", metavar="TEXT", help="Why (audited)."),
    actor: str | None = ActorOption,
) -> None:
    """Delete a policy and revoke every key it issued (refused on their very next request)."""
    emit(ctx, service(ctx).delete_trust_policy(policy_id, reason=reason, actor=actor), _deleted)


def _table(console: Console, rows: list[dict[str, Any]]) -> None:
    render.table(console, rows, COLUMNS)


def _deleted(console: Console, result: dict[str, Any]) -> None:
    console.print(Text(f"Deleted trust policy {result['policy_id']}", style="bold"))
    console.print(Text(f"Revoked {len(result['revoked'])} key(s)"))
    for key_id in result["revoked"]:
        console.print(Text(f"  {key_id}"))
