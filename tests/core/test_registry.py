"""The one registry type: registration, lookup by normalised name, and errors that help."""

from __future__ import annotations

import pytest

from graphssl.core.errors import ConfigError
from graphssl.core.registry import Registry


def test_register_by_call_and_decorator_and_lookup_ignores_case_and_separators():
    things = Registry("thing")
    things.register("alpha-one", 1)

    @things.register("Beta_Two")
    def beta() -> int:
        return 2

    assert things.get("ALPHA_ONE") == 1 and things["alpha-one"] == 1
    assert things.get("beta-two") is beta and beta() == 2
    assert "Alpha_One" in things and "gamma" not in things and 3 not in things
    assert things.names() == ["Beta_Two", "alpha-one"] and list(things) == things.names()
    assert dict(things.items()) == {"alpha-one": 1, "Beta_Two": beta} and len(things) == 2


def test_unknown_name_suggests_close_matches_and_lists_all():
    things = Registry("backbone", hint="Or pass your own nn.Module.")
    for name in ("gin", "gine", "gcn", "painn"):
        things.register(name, name.upper())
    with pytest.raises(ConfigError) as info:
        things.get("gien")
    message = str(info.value)
    assert "unknown backbone 'gien'" in message and "Did you mean" in message and "'gin'" in message
    assert "Registered: gcn, gin, gine, painn." in message and message.endswith("Or pass your own nn.Module.")
    with pytest.raises(ConfigError, match="unknown backbone 'zzz'. Registered"):
        things.get("zzz")


def test_a_taken_name_is_refused_unless_replaced():
    things = Registry("objective")
    things.register("mae", 1)
    things.register("mae", 1)  # the same entry again is harmless (modules imported twice)
    with pytest.raises(ConfigError, match="objective 'MAE' is already registered"):
        things.register("MAE", 2)
    things.register("MAE", 2, replace=True)
    assert things.get("mae") == 2 and things.names() == ["MAE"]
