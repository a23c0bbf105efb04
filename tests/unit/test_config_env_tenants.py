"""Per-tenant overrides from the environment keep the tenant id's case; every other part does not."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifactor.config import TenantPolicy
from notifactor.config.loader import load_config
from notifactor.errors import ConfigError

#: Tenant ids a shell can spell in a variable name (no ``- . : @``, and ``_`` is not an id character).
shell_tenant_ids = st.from_regex(r"[A-Za-z0-9]{1,24}", fullmatch=True).filter(
    lambda t: t.lower() != "default"
)


def test_a_mixed_case_tenant_id_is_configured_as_spelled() -> None:
    config = load_config(None, {"NOTIFACTOR_TENANTS__BigCo__BURST": "7"})
    assert config.tenant_policy("BigCo").burst == 7
    assert config.tenant_policy("bigco") == TenantPolicy()
    assert "bigco" not in config.tenants


def test_the_key_parts_other_than_the_tenant_id_are_case_insensitive() -> None:
    config = load_config(
        None,
        {
            "NOTIFACTOR_Tenants__AcMe__Daily_Quota": "9",
            "NOTIFACTOR_TENANTS__Default__BURST": "11",
            "NOTIFACTOR_tenants__default__rate_per_s": "3",
        },
    )
    assert config.tenant_policy("AcMe").daily_quota == 9
    assert config.tenant_policy("AcMe").burst == 11  # merged over the default
    assert config.tenant_policy("default").burst == 11
    assert config.tenant_policy("default").rate_per_s == 3


def test_an_env_override_merges_into_the_same_tenant_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[tenants."BigCo"]\nrate_per_s = 5\n', encoding="utf-8")
    config = load_config(path, {"NOTIFACTOR_TENANTS__BigCo__BURST": "7"})
    assert config.tenant_policy("BigCo").rate_per_s == 5
    assert config.tenant_policy("BigCo").burst == 7
    assert set(config.tenants) == {"default", "BigCo"}


@given(shell_tenant_ids, st.integers(1, 10_000))
def test_any_shell_spellable_tenant_id_keeps_its_case(tenant_id: str, burst: int) -> None:
    config = load_config(None, {f"NOTIFACTOR_TENANTS__{tenant_id}__BURST": str(burst)})
    assert set(config.tenants) == {"default", tenant_id}
    assert config.tenant_policy(tenant_id).burst == burst


def test_a_bad_tenant_override_names_the_tenant_as_spelled() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"NOTIFACTOR_TENANTS__BigCo__BURST": "0"})
    assert "tenants.BigCo.burst: must be > 0" in str(info.value)
