"""The tenant config: the packaged demo tenant, and one clear line for each kind of bad file."""

from __future__ import annotations

import pytest

from local_issuer.config import ConfigError, load_config, parse_config
from tests.support import clean_env, free_port, run_script

GOOD = """
resources:
  - name: Shopping API
    indicator: https://shopping.api
    scopes: [read:orders]
roles:
  - name: reader
    type: MachineToMachine
    scopes: {https://shopping.api: [read:orders]}
applications:
  - id: app-1
    secret: app-1-secret
    roles: [reader]
users:
  - id: user-1
    name: One
"""


def test_demo_config_is_the_contract():
    config = load_config()
    assert {r.indicator: sorted(r.scope_names) for r in config.resources} == {
        "https://shopping.api": sorted(["read:products", "write:products", "read:orders", "write:orders"]),
        "https://default.logto.app/api": ["all"],
    }
    assert all(r.access_token_ttl == 3600 for r in config.resources)
    apps = {a.id: a for a in config.applications}
    assert apps["m2m-stats-worker"].secret == "stats-worker-local-secret"
    assert apps["m2m-admin"].secret == "admin-local-secret"
    held = {
        (app_id, indicator): config.scopes_held(app, indicator)
        for app_id, app in apps.items()
        for indicator in ("https://shopping.api", "https://default.logto.app/api")
    }
    assert held == {
        ("m2m-stats-worker", "https://shopping.api"): {"read:products", "read:orders"},
        ("m2m-stats-worker", "https://default.logto.app/api"): {"all"},
        ("m2m-admin", "https://shopping.api"): {
            "read:products",
            "write:products",
            "read:orders",
            "write:orders",
        },
        ("m2m-admin", "https://default.logto.app/api"): frozenset(),
    }
    assert {(u.id, u.name) for u in config.users} == {
        ("user-alice", "Alice"),
        ("user-bob", "Bob"),
        ("user-carol", "Carol"),
        ("user-dave", "Dave"),
    }


def test_good_config_parses():
    config = parse_config(GOOD, source="good.yaml")
    assert config.resource("https://shopping.api").access_token_ttl == 3600  # Logto's default


BAD = [
    (
        "unknown role",
        GOOD.replace("roles: [reader]", "roles: [writer]"),
        "t.yaml: applications[0] (app-1): unknown role 'writer'",
    ),
    (
        "missing secret",
        GOOD.replace("    secret: app-1-secret\n", ""),
        "t.yaml: applications[0] (app-1).secret: is required",
    ),
    (
        "short secret",
        GOOD.replace("app-1-secret", "short"),
        "t.yaml: applications[0] (app-1).secret: String should have at least 8 characters",
    ),
    (
        "unknown scope in role",
        GOOD.replace("{https://shopping.api: [read:orders]}", "{https://shopping.api: [write:orders]}"),
        "t.yaml: roles[0] (reader): resource 'https://shopping.api' has no scope 'write:orders'",
    ),
    (
        "unknown resource in role",
        GOOD.replace("{https://shopping.api: [read:orders]}", "{https://other.api: [x]}"),
        "t.yaml: roles[0] (reader): unknown resource 'https://other.api'",
    ),
    (
        "typo in a field",
        GOOD.replace("    secret:", "    secrt: x\n    secret:"),
        "t.yaml: applications[0] (app-1).secrt: is not a known field",
    ),
    (
        "bad ttl",
        GOOD.replace("    scopes: [read:orders]", "    accessTokenTtl: -5\n    scopes: [read:orders]"),
        "t.yaml: resources[0] (Shopping API).accessTokenTtl: Input should be greater than or equal to 1",
    ),
    (
        "bad role type",
        GOOD.replace("type: MachineToMachine", "type: User"),
        "t.yaml: roles[0] (reader).type: Input should be 'MachineToMachine'",
    ),
    (
        "not a mapping",
        "- just\n- a list\n",
        "t.yaml: must be a mapping with resources, roles, applications, users",
    ),
]


@pytest.mark.parametrize(("text", "message"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_config_names_file_entry_and_problem(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="t.yaml")
    assert str(caught.value) == message


def test_duplicate_indicator_is_named():
    text = GOOD.replace("roles:", "  - {name: Again, indicator: 'https://shopping.api'}\nroles:", 1)
    with pytest.raises(ConfigError, match=r"^t.yaml: resources: defined twice: https://shopping.api$"):
        parse_config(text, source="t.yaml")


def test_bad_yaml_names_the_line():
    with pytest.raises(ConfigError, match=r"^t.yaml: not valid YAML \(line \d+, column \d+\): "):
        parse_config("resources: [\n  - name: x\n", source="t.yaml")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "tenant.json",
            '{"resources": [}',
            "tenant.json: not valid JSON (line 1, column 16): Expecting value",
        ),
        (
            "tenant.yaml",
            GOOD.replace("roles: [reader]", "roles: [ghost]"),
            "tenant.yaml: applications[0] (app-1): unknown role 'ghost'",
        ),
    ],
)
def test_server_refuses_to_start_with_a_bad_config(tmp_path, name, text, expected):
    config = tmp_path / name
    config.write_text(text)
    result = run_script(
        "local-issuer",
        "--config",
        str(config),
        "--state-dir",
        str(tmp_path / "s"),
        "--port",
        str(free_port()),
        env=clean_env(),
        cwd=tmp_path,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"local-issuer: {tmp_path / expected}"]
    assert "Traceback" not in result.stderr


def test_missing_config_file(tmp_path):
    result = run_script(
        "local-issuer",
        "--config",
        "nowhere.yaml",
        "--port",
        str(free_port()),
        env=clean_env(),
        cwd=tmp_path,
        timeout=30,
    )
    assert (result.returncode, result.stderr.strip()) == (2, "local-issuer: nowhere.yaml: file not found")
