"""Upstreams and routes: where the gateway sends a call for a priced model.

An *upstream* is an OpenAI-compatible service: a name, a base URL ending in
``/v1`` and a secret key, sealed at rest (``core.secret_box``) and never shown
again. A *route* maps one priced model (``ai_models``) to an upstream and the
model name the upstream knows, with the token limits the worst case is built
from (``core.gateway.call_plan``). A model is callable through the gateway
when its price is enabled, its route is enabled and its upstream is enabled.

Every change is audited (secrets appear only as "set" / "changed").
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.clock import utcnow
from core.errors import ValidationError
from core.gateway.call_plan import RouteLimits
from core.gateway.models import GatewayRoute, Upstream
from core.models import AiModel
from core.rawdb import RawCursor
from core.secret_box import SecretBox
from core.versions import bump_config_version

# Defaults of ``set-route`` when a limit is not given: a common chat model.
DEFAULT_CONTEXT_WINDOW = 128_000
DEFAULT_MAX_OUTPUT = 16_384
DEFAULT_OUTPUT_CAP = 4_096
DEFAULT_OVERHEAD = 256
MAX_TOKENS_LIMIT = 10**9
# What the audit trail says of a new secret (never the secret itself).
SECRET_CHANGED = "changed"  # noqa: S105


@dataclass(frozen=True)
class ResolvedRoute:
    """Everything a call for one model needs, read in one query."""

    model_id: int
    model_name: str
    model_enabled: bool
    route_enabled: bool
    upstream_enabled: bool
    upstream_name: str
    base_url: str
    secret_sealed: str | None
    upstream_model: str
    limits: RouteLimits

    @property
    def callable(self) -> bool:
        return self.model_enabled and self.route_enabled and self.upstream_enabled


def clean_base_url(text: str) -> str:
    """An http(s) base URL without credentials, query or fragment, no trailing slash."""
    url = (text or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            "The base URL must start with https:// (or http://) and name a host.",
            field="base_url",
        )
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValidationError(
            "The base URL must not carry credentials, a query or a fragment; "
            "the key goes in the secret.",
            field="base_url",
        )
    if len(url) > 500:
        raise ValidationError(
            "The base URL is too long (500 characters at most).", field="base_url"
        )
    return url.rstrip("/")


def _name(text: str, what: str, field: str) -> str:
    name = (text or "").strip()
    if not 1 <= len(name) <= 100:
        raise ValidationError(f"{what} must be 1-100 characters.", field=field)
    return name


def create_upstream(
    session: Session,
    actor: audit.Actor,
    box: SecretBox,
    name: str,
    base_url: str,
    secret: str,
) -> Upstream:
    """A new upstream; its secret is stored sealed."""
    name = _name(name, "The upstream's name", "name")
    url = clean_base_url(base_url)
    if session.scalar(select(Upstream.id).where(Upstream.name == name)) is not None:
        raise ValidationError("An upstream with this name exists.", field="name")
    secret = (secret or "").strip()
    row = Upstream(name=name, base_url=url, secret_sealed=box.seal(secret) if secret else None)
    session.add(row)
    session.flush()
    bump_config_version(session)
    audit.record(
        session,
        actor,
        "upstream.create",
        "upstream",
        row.id,
        after={"name": name, "base_url": url, "secret": "set" if secret else "none"},
    )
    return row


def update_upstream(
    session: Session,
    actor: audit.Actor,
    box: SecretBox,
    upstream_id: int,
    *,
    base_url: str | None = None,
    secret: str | None = None,
    enabled: bool | None = None,
) -> Upstream:
    """Change an upstream; a ``secret`` of None (or empty) keeps the stored one."""
    row = session.get(Upstream, upstream_id)
    if row is None:
        raise ValidationError("No such upstream.")
    before = {"base_url": row.base_url, "enabled": row.enabled}
    after = dict(before)
    if base_url is not None:
        row.base_url = after["base_url"] = clean_base_url(base_url)
    if enabled is not None:
        row.enabled = after["enabled"] = enabled
    if secret and secret.strip():
        row.secret_sealed = box.seal(secret.strip())
        after["secret"] = SECRET_CHANGED
    if after != before:
        row.updated_at = utcnow()
        bump_config_version(session)
        audit.record(
            session, actor, "upstream.update", "upstream", row.id, before=before, after=after
        )
    return row


def find_upstream(session: Session, upstream_id: int) -> Upstream | None:
    return session.get(Upstream, upstream_id)


def upstreams(session: Session) -> list[Upstream]:
    return list(session.scalars(select(Upstream).order_by(Upstream.name)))


def _limit(value: int | None, default: int, what: str, field: str, minimum: int = 1) -> int:
    if value is None:
        return default
    if type(value) is not int or not minimum <= value <= MAX_TOKENS_LIMIT:
        raise ValidationError(
            f"{what} must be a whole number from {minimum} to {MAX_TOKENS_LIMIT:,}.", field=field
        )
    return value


def set_route(
    session: Session,
    actor: audit.Actor,
    model_name: str,
    upstream_name: str,
    *,
    upstream_model: str | None = None,
    context_window: int | None = None,
    max_output: int | None = None,
    default_output_cap: int | None = None,
    overhead: int | None = None,
    enabled: bool = True,
) -> GatewayRoute:
    """Create or replace the route of a priced model. Unset limits keep their
    current value (or take the defaults for a new route)."""
    model = session.scalar(select(AiModel).where(AiModel.name == model_name.strip()))
    if model is None:
        raise ValidationError(
            f"No priced model named {model_name.strip()!r}; price it first.", field="model"
        )
    upstream = session.scalar(select(Upstream).where(Upstream.name == upstream_name.strip()))
    if upstream is None:
        raise ValidationError(f"No upstream named {upstream_name.strip()!r}.", field="upstream")
    row = session.scalar(select(GatewayRoute).where(GatewayRoute.model_id == model.id))
    current = (
        (row.context_window, row.max_output, row.default_output_cap, row.overhead)
        if row is not None
        else (DEFAULT_CONTEXT_WINDOW, DEFAULT_MAX_OUTPUT, DEFAULT_OUTPUT_CAP, DEFAULT_OVERHEAD)
    )
    window = _limit(context_window, current[0], "The context window", "context_window")
    out = _limit(max_output, current[1], "The max output", "max_output")
    cap = _limit(
        default_output_cap, min(current[2], out), "The default output cap", "default_output_cap"
    )
    extra = _limit(overhead, current[3], "The overhead", "overhead", minimum=0)
    if cap > out:
        raise ValidationError(
            "The default output cap cannot be above the max output.", field="default_output_cap"
        )
    target = (upstream_model or "").strip() or (row.upstream_model if row else model.name)
    if len(target) > 200:
        raise ValidationError("The upstream model name is too long.", field="upstream_model")
    state = {
        "upstream": upstream.name,
        "upstream_model": target,
        "context_window": window,
        "max_output": out,
        "default_output_cap": cap,
        "overhead": extra,
        "enabled": enabled,
    }
    if row is None:
        row = GatewayRoute(model_id=model.id, upstream_id=upstream.id)
        session.add(row)
        before = None
    else:
        before = _route_state(session, row)
    row.upstream_id = upstream.id
    row.upstream_model = target
    row.context_window, row.max_output = window, out
    row.default_output_cap, row.overhead = cap, extra
    row.enabled = enabled
    row.updated_at = utcnow()
    session.flush()
    if before != state:
        bump_config_version(session)
        audit.record(
            session,
            actor,
            "route.set",
            "gateway_route",
            model.name,
            before=before,
            after=state,
        )
    return row


def _route_state(session: Session, row: GatewayRoute) -> dict[str, object]:
    upstream = session.get(Upstream, row.upstream_id)
    return {
        "upstream": upstream.name if upstream else None,
        "upstream_model": row.upstream_model,
        "context_window": row.context_window,
        "max_output": row.max_output,
        "default_output_cap": row.default_output_cap,
        "overhead": row.overhead,
        "enabled": row.enabled,
    }


def _resolved_query():
    return (
        select(
            AiModel.id,
            AiModel.name,
            AiModel.enabled,
            GatewayRoute.enabled.label("route_enabled"),
            Upstream.enabled.label("upstream_enabled"),
            Upstream.name.label("upstream_name"),
            Upstream.base_url,
            Upstream.secret_sealed,
            GatewayRoute.upstream_model,
            GatewayRoute.context_window,
            GatewayRoute.max_output,
            GatewayRoute.default_output_cap,
            GatewayRoute.overhead,
            GatewayRoute.created_at,
        )
        .join_from(GatewayRoute, AiModel, AiModel.id == GatewayRoute.model_id)
        .join(Upstream, Upstream.id == GatewayRoute.upstream_id)
    )


def _resolved(row) -> ResolvedRoute:
    return ResolvedRoute(
        model_id=row.id,
        model_name=row.name,
        model_enabled=row.enabled,
        route_enabled=row.route_enabled,
        upstream_enabled=row.upstream_enabled,
        upstream_name=row.upstream_name,
        base_url=row.base_url,
        secret_sealed=row.secret_sealed,
        upstream_model=row.upstream_model,
        limits=RouteLimits(
            context_window=row.context_window,
            max_output=row.max_output,
            default_output_cap=row.default_output_cap,
            overhead=row.overhead,
        ),
    )


def route_for(session: Session, model_name: str) -> ResolvedRoute | None:
    """The route of the model clients call ``model_name``, or None."""
    row = session.execute(_resolved_query().where(AiModel.name == model_name)).first()
    return None if row is None else _resolved(row)


_ROUTES_SQL = (
    "SELECT m.name, m.id, m.enabled, r.enabled, u.enabled, u.name, u.base_url,"
    " u.secret_sealed, r.upstream_model, r.context_window, r.max_output,"
    " r.default_output_cap, r.overhead"
    " FROM gateway_routes r JOIN ai_models m ON m.id = r.model_id"
    " JOIN upstreams u ON u.id = r.upstream_id"
)


class RouteCache:
    """Every route, resolved, cached per process like the price book
    (``core.pricebook``): changing a route, an upstream or a model bumps the
    config version, and the table is reloaded when the version read in the
    caller's transaction differs from the one it was loaded at."""

    def __init__(self) -> None:
        self._loaded: tuple[int, Mapping[str, ResolvedRoute]] | None = None

    def cached(self, version: int) -> Mapping[str, ResolvedRoute] | None:
        """The routes as loaded at config ``version``, without a query; None
        if the table was not loaded at that version."""
        loaded = self._loaded
        return loaded[1] if loaded is not None and loaded[0] == version else None

    def current(self, cursor: RawCursor, version: int) -> Mapping[str, ResolvedRoute]:
        """The routes by model name, as of config ``version`` (read by the caller)."""
        loaded = self._loaded
        if loaded is not None and loaded[0] == version:
            return loaded[1]
        table = {
            name: ResolvedRoute(
                model_id, name, bool(m_on), bool(r_on), bool(u_on), upstream, url, sealed,
                target, RouteLimits(window, out, cap, extra),
            )
            for (
                name, model_id, m_on, r_on, u_on, upstream, url, sealed,
                target, window, out, cap, extra,
            ) in cursor.execute(_ROUTES_SQL).fetchall()
        }  # fmt: skip
        self._loaded = (version, table)
        return table


def routes(session: Session) -> list[ResolvedRoute]:
    """Every route, by model name (the admin page)."""
    return [_resolved(r) for r in session.execute(_resolved_query().order_by(AiModel.name))]


def callable_models(session: Session) -> list[tuple[str, int]]:
    """(model name, created as Unix time) of every model callable now (``/v1/models``)."""
    rows = session.execute(
        _resolved_query()
        .where(
            AiModel.enabled.is_(True), GatewayRoute.enabled.is_(True), Upstream.enabled.is_(True)
        )
        .order_by(AiModel.name)
    )
    return [(r.name, calendar.timegm(r.created_at.utctimetuple())) for r in rows]
