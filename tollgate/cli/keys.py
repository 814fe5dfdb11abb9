"""``tollgate keys``: create, delegate, list, show, rotate, revoke, reinstate."""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from tollgate.cli import render
from tollgate.cli.context import BadInput, connect, emit, note, service, split_csv

app = typer.Typer(help="API keys: issue, delegate, rotate, revoke.", no_args_is_help=True)

ActorOption = typer.Option(
    None, "--actor", metavar="NAME", help="Who acts (default: $TOLLGATE_ACTOR or cli:<user>)."
)
# -- keyattrs (issue 15) -------------------------------------------------------------------
AllowCidrOption = typer.Option(
    None,
    "--allow-cidr",
    metavar="CIDR,...",
    help="Only requests from these networks (IPv4/IPv6, at most 16; repeatable). "
    "Default: anywhere (delegate: the parent's).",
)
TagOption = typer.Option(
    None,
    "--tag",
    metavar="KEY=VALUE",
    help="A tag carried into usage and statements (repeatable, at most 8; fixed for the "
    "key's life).",
)


def _cidrs(values: list[str] | None) -> list[str] | None:
    return list(values) if values else None


def _tags(values: list[str] | None) -> dict[str, str] | None:
    """``k=v`` strings to a mapping; the service checks them (exit 2 on a bad one)."""
    if not values:
        return None
    from functions.keys import rules

    return rules.tags(values)


# -- end keyattrs ----------------------------------------------------------------------------


@app.command("create")
def create(
    ctx: typer.Context,
    tenant: str = typer.Option(..., "--tenant", metavar="TENANT_ID"),
    env: str = typer.Option("live", "--env", metavar="live|test"),
    principal: str = typer.Option(
        "default", "--principal", metavar="NAME", help="Service account or agent identity."
    ),
    scopes: str | None = typer.Option(
        None, "--scopes", metavar="S,S", help="Default: the plan's scopes."
    ),
    expires_in: str | None = typer.Option(
        None, "--expires-in", metavar="DURATION", help="e.g. 30d, 12h (default: never)."
    ),
    allow_cidr: list[str] | None = AllowCidrOption,
    tag: list[str] | None = TagOption,
) -> None:
    """Issue a key. Its secret is printed once and stored only as a hash."""
    key = service(ctx).create_key(
        tenant,
        environment=env,
        principal=principal,
        scopes=split_csv(scopes),
        expires_in=expires_in,
        allow_cidrs=_cidrs(allow_cidr),
        tags=_tags(tag),
    )
    emit(ctx, key, render.issued)


@app.command("delegate")
def delegate(
    ctx: typer.Context,
    parent_key_id: str = typer.Argument(..., metavar="PARENT_KEY_ID"),
    principal: str = typer.Option(..., "--principal", metavar="NAME", help="The agent identity."),
    scopes: str | None = typer.Option(
        None, "--scopes", metavar="S,S", help="A subset of the parent's (default: the same)."
    ),
    token_budget: int | None = typer.Option(
        None, "--token-budget", metavar="N", help="Total tokens this key may use."
    ),
    expires_in: str | None = typer.Option(
        None, "--expires-in", metavar="DURATION", help="Clamped to the parent's expiry."
    ),
    allow_cidr: list[str] | None = AllowCidrOption,
    tag: list[str] | None = TagOption,
    spend_budget: str | None = typer.Option(
        None, "--spend-budget", metavar="USD", help="Total money this key may spend, e.g. 5.00."
    ),
) -> None:
    """Issue a child key for an agent, never wider or longer-lived than its parent (its
    networks within the parent's; the parent's tags unless overridden)."""
    from functions.keys import rules

    key = service(ctx).delegate_key(
        parent_key_id,
        principal=principal,
        scopes=split_csv(scopes),
        token_budget=token_budget,
        expires_in=expires_in,
        allow_cidrs=_cidrs(allow_cidr),
        tags=_tags(tag),
        spend_budget_micros=rules.spend_micros("spend budget", spend_budget, minimum=1),
    )
    if key.get("expiry_clamped"):
        note(ctx, "note: the requested expiry was later than the parent's; clamped to it")
    emit(ctx, key, lambda c, k: render.issued(c, k, "Delegated"))


@app.command("list")
def list_(
    ctx: typer.Context, tenant: str = typer.Option(..., "--tenant", metavar="TENANT_ID")
) -> None:
    """A tenant's keys (never their secrets)."""
    emit(
        ctx,
        service(ctx).list_keys(tenant),
        lambda c, rows: render.table(c, rows, render.KEY_COLUMNS),
    )


@app.command("show")
def show(ctx: typer.Context, key_id: str = typer.Argument(..., metavar="KEY_ID")) -> None:
    """One key (never its secret)."""
    emit(ctx, service(ctx).get_key(key_id), lambda c, k: render.record(c, k))


@app.command("rotate")
def rotate(
    ctx: typer.Context,
    key_id: str = typer.Argument(..., metavar="KEY_ID"),
    grace: str = typer.Option(
        "1h", "--grace", metavar="DURATION", help="How long the old secret still works (0: none)."
    ),
) -> None:
    """Issue a new secret; the old one keeps working for the grace period, then not."""
    emit(
        ctx,
        service(ctx).rotate_key(key_id, grace=grace),
        lambda c, k: render.issued(c, k, "Rotated"),
    )


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    key_id: str | None = typer.Argument(None, metavar="KEY_ID"),
    secret: str | None = typer.Option(
        None, "--secret", metavar="SECRET", help="A leaked secret ('-': read it from stdin)."
    ),
    tenant: str | None = typer.Option(None, "--tenant", metavar="TENANT_ID", help="All its keys."),
    principal: str | None = typer.Option(
        None, "--principal", metavar="NAME", help="With --tenant: only this principal's keys."
    ),
    reason: str = typer.Option(..., "--reason", metavar="TEXT", help="Why (audited)."),
    actor: str | None = ActorOption,
) -> None:
    """Revoke a key, a leaked secret's key, or all of a tenant's (or a principal's) keys,
    with their delegated keys.

    Takes effect on the very next request. Revocation is final. With --stack this invokes
    the stack's revoke function; with --local it runs the same handler here.
    """
    if sum(x is not None for x in (key_id, secret, tenant)) != 1:
        raise BadInput("give exactly one of KEY_ID, --secret or --tenant")
    if principal is not None and tenant is None:
        raise BadInput("--principal needs --tenant")
    if secret == "-":  # noqa: S105 - "-" means stdin, not a password
        secret = sys.stdin.readline().strip()
    st = connect(ctx)
    if st.stack or st.local or principal is not None:
        from functions.keys import default_actor
        from tollgate.cli.revoke import invoke

        target = {"key_id": key_id, "secret": secret, "tenant_id": tenant, "principal": principal}
        payload = {k: v for k, v in target.items() if v is not None}
        result = invoke(st, {**payload, "reason": reason, "actor": actor or default_actor()})
    else:
        result = service(ctx).revoke(
            key_id=key_id, secret=secret, tenant_id=tenant, reason=reason, actor=actor
        )
    emit(ctx, result, _render_revoked)


def _render_revoked(console: Console, result: dict[str, Any]) -> None:
    ids = result["revoked"]
    console.print(Text(f"Revoked {len(ids)} key(s)", style="bold"))
    for key_id in ids:
        console.print(Text(f"  {key_id}"))


@app.command("reinstate")
def reinstate(
    ctx: typer.Context,
    key_id: str = typer.Argument(..., metavar="KEY_ID"),
    reason: str = typer.Option(..., "--reason", metavar="TEXT", help="Why (audited)."),
    actor: str | None = ActorOption,
) -> None:
    """Make a suspended key active again (a revoked key stays revoked)."""
    emit(
        ctx,
        service(ctx).reinstate(key_id, reason=reason, actor=actor),
        lambda c, k: render.record(c, k, f"Reinstated {k['key_id']}"),
    )


@app.command("set-limit")
def set_limit(
    ctx: typer.Context,
    key_id: str = typer.Argument(..., metavar="KEY_ID"),
    requests_per_minute: str = typer.Option(
        ...,
        "--requests-per-minute",
        metavar="N|none",
        help="This key's own per-minute limit, higher or lower than the plan's (0 admits "
        "nothing); none: the plan's again.",
    ),
    actor: str | None = ActorOption,
) -> None:
    """Override the plan's per-minute limit for one key (exact from its next request)."""
    emit(
        ctx,
        service(ctx).set_limit(key_id, requests_per_minute=requests_per_minute, actor=actor),
        lambda c, k: render.record(c, k, f"Limit of {k['key_id']}"),
    )
