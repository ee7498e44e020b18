"""GENESIS_PUSH_* and GENESIS_WEBHOOK_* map onto PushLimits and the SSRF allow-list; bad values stop the start."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest

from genesis.config import Settings, load_settings
from genesis.errors import ConfigurationError
from genesis.runtime import push_limits, webhook_policy


def test_push_settings_become_the_hub_limits(make_settings: Callable[..., Settings]) -> None:
    limits = push_limits(make_settings(push_connections_per_principal=3, push_subscriptions_per_connection=4,
                                       push_replay_count=77, push_heartbeat_seconds=2.5,
                                       push_revalidate_seconds=4.0, push_client_messages_burst=9))
    assert (limits.connections_per_principal, limits.subscriptions_per_connection, limits.replay_count,
            limits.heartbeat_seconds, limits.revalidate_seconds, limits.client_messages_burst) == (3, 4, 77, 2.5,
                                                                                                   4.0, 9)


def test_allowed_hosts_split_into_names_and_networks(make_settings: Callable[..., Settings]) -> None:
    policy = webhook_policy(make_settings(webhook_allowed_hosts="127.0.0.1, hooks.internal ,10.1.0.0/16"))
    assert policy.allow_hosts == frozenset({"hooks.internal"})
    assert ipaddress.ip_address("10.1.2.3") in policy.allow_networks[1]
    assert policy.allows_address(ipaddress.ip_address("127.0.0.1"))
    assert not policy.allows_address(ipaddress.ip_address("127.0.0.2"))


@pytest.mark.parametrize(("name", "value"), [("webhook_allowed_hosts", "10.0.0.0/33"),
                                             ("push_connections_per_principal", "0"),
                                             ("push_anomaly_method", "magic")])
def test_bad_push_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"GENESIS_{name.upper()}", value)
    with pytest.raises(ConfigurationError, match=f"GENESIS_{name.upper()}"):
        load_settings(_env_file=None)
