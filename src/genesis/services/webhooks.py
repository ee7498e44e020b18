"""Webhook endpoints: register (secret shown once), change, rotate the secret, delete; list and redeliver deliveries.

Who may: the ``webhooks:manage`` scope, granted to the ``admin`` role only. An endpoint is a
deployment-level integration: it may receive every user's backtests and the audit trail, and it
makes the server send requests out (the SSRF surface), so registering one is an administrator's
decision; a separate scope lets a provisioning script hold a token for exactly this
(``scope=webhooks:manage``) without the rest of ``admin``. An endpoint sees what its
registering token's scopes allow (``audit`` needs ``audit:read`` as well, ...), checked at
registration and at every delivery.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from genesis.errors import Conflict, Forbidden, InvalidInput, NotFound
from genesis.push.notice import WILDCARD, parse_subscription
from genesis.push.signing import generate_secret
from genesis.push.topics import FAMILIES, parse_topic
from genesis.push.urlpolicy import Resolver, UrlPolicy, resolve_destination, system_resolver
from genesis.services.auth import Principal
from genesis.storage.webhooks import EndpointRecord, SqlWebhookStore
from genesis.timeutil import now_us

MAX_TOPICS: Final = 20
ROTATION_OVERLAP_SECONDS: Final = 24 * 3600


def check_topics(topics: Sequence[str], scopes: frozenset[str]) -> list[str]:
    """Topics an endpoint may follow with ``scopes``, normalised and without duplicates.

    Raises:
        InvalidInput: none, too many, or a bad topic. Forbidden: a topic's scope is missing.
    """
    if not topics or len(topics) > MAX_TOPICS:
        raise InvalidInput(f"an endpoint follows 1-{MAX_TOPICS} topics")
    out: list[str] = []
    for raw in topics:
        topic = parse_subscription(raw)
        family = FAMILIES[topic[: -len(WILDCARD)]] if topic.endswith(WILDCARD) else parse_topic(topic).family
        if family.scope not in scopes:
            raise Forbidden(f"topic {topic!r} needs the scope {family.scope!r}",
                            details={"required_scope": family.scope})
        if topic not in out:
            out.append(topic)
    return out


@dataclass(frozen=True, slots=True)
class Registered:
    endpoint: EndpointRecord
    secret: str  # shown once


class WebhookService:
    """Use cases of the webhook API."""

    def __init__(self, store: SqlWebhookStore, *, policy: UrlPolicy, resolver: Resolver = system_resolver,
                 max_endpoints: int = 100) -> None:
        self.store = store
        self.policy = policy
        self.resolver = resolver
        self.max_endpoints = max_endpoints

    async def register(self, *, principal: Principal, url: str, topics: Sequence[str], description: str) -> Registered:
        """A new enabled endpoint with a new secret; it receives what is announced from now on.

        Raises:
            InvalidInput / UrlRefused: bad topics or a URL the SSRF policy refuses. Forbidden: a topic's scope.
            Conflict: ``GENESIS_WEBHOOK_MAX_ENDPOINTS`` endpoints exist.
        """
        followed = check_topics(topics, principal.scopes)
        await resolve_destination(url, self.policy, self.resolver)
        secret = generate_secret()
        now = now_us()
        record = EndpointRecord(
            id="ep_" + secrets.token_urlsafe(12), owner=principal.subject, scopes=principal.scopes, url=url,
            description=description, topics=tuple(followed), secret=secret, previous_secret=None,
            previous_secret_until_us=None, enabled=True, disabled_reason=None, audit_cursor=0, paused_until_us=None,
            created_at_us=now, updated_at_us=now,
        )
        if not await self.store.create_endpoint(record, max_endpoints=self.max_endpoints):
            raise Conflict(f"at most {self.max_endpoints} webhook endpoints", details={"limit": self.max_endpoints})
        return Registered(record, secret)

    async def get(self, endpoint_id: str) -> EndpointRecord:
        """Raises: NotFound."""
        found = await self.store.get_endpoint(endpoint_id)
        if found is None:
            raise NotFound(f"no webhook endpoint {endpoint_id!r}")
        return found

    async def update(
        self, endpoint_id: str, *, principal: Principal, url: str | None = None, topics: Sequence[str] | None = None,
        description: str | None = None, enabled: bool | None = None,
    ) -> EndpointRecord:
        """Change an endpoint; enabling one clears why it was disabled and resumes its pending deliveries.

        Raises:
            NotFound. InvalidInput / UrlRefused / Forbidden: as for :meth:`register`.
        """
        current = await self.get(endpoint_id)
        values: dict[str, object] = {"updated_at_us": now_us()}
        if topics is not None:
            values["topics"] = check_topics(topics, principal.scopes)
            values["scopes"] = principal.scopes  # the endpoint now sees what the changing token allows
        if url is not None:
            await resolve_destination(url, self.policy, self.resolver)
            values["url"] = url
        if description is not None:
            values["description"] = description
        if enabled is not None and enabled != current.enabled:
            values.update(enabled=enabled, disabled_reason=None if enabled else "disabled by request",
                          paused_until_us=None)
        updated = await self.store.update_endpoint(endpoint_id, **values)
        if updated is None:
            raise NotFound(f"no webhook endpoint {endpoint_id!r}")
        return updated

    async def rotate_secret(self, endpoint_id: str, *, overlap_seconds: int = ROTATION_OVERLAP_SECONDS) -> Registered:
        """A new secret; deliveries are signed with the old one too for ``overlap_seconds`` (receivers switch over).

        Raises:
            NotFound.
        """
        current = await self.get(endpoint_id)
        secret = generate_secret()
        now = now_us()
        updated = await self.store.update_endpoint(
            endpoint_id, secret=secret, previous_secret=current.secret,
            previous_secret_until_us=now + overlap_seconds * 1_000_000, updated_at_us=now)
        if updated is None:
            raise NotFound(f"no webhook endpoint {endpoint_id!r}")
        return Registered(updated, secret)

    async def delete(self, endpoint_id: str) -> None:
        """Delete an endpoint with its deliveries and attempts. Raises: NotFound."""
        if not await self.store.delete_endpoint(endpoint_id):
            raise NotFound(f"no webhook endpoint {endpoint_id!r}")

    async def redeliver(self, endpoint_id: str, msg_id: str) -> None:
        """Queue a delivery again now (same ``webhook-id``, a fresh retry schedule). Raises: NotFound."""
        await self.get(endpoint_id)
        if not await self.store.redeliver(endpoint_id, msg_id, now_us=now_us()):
            raise NotFound(f"no delivery {msg_id!r} of endpoint {endpoint_id!r}")
