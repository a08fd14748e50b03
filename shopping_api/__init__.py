"""The "online shopping" API: a Logto API resource whose routes demand scoped access tokens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from logto_m2m.settings import ENV_FILE, load_settings

from .config import ApiSettings


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings from the environment, overridden by ``test_config`` when given.

    ``test_config`` takes setting names as in the settings table (``DATABASE_URL``...) and any
    Flask config key; ``ENV_FILE: None`` stops `.env` from being read.
    """
    app = Flask(__name__, instance_relative_config=True)
    config = dict(test_config or {})
    env_file = config.pop("ENV_FILE", ENV_FILE)
    overrides = {key.lower(): config.pop(key) for key in list(config)
                 if key.lower() in ApiSettings.model_fields}
    settings = load_settings(ApiSettings, env_file=env_file, **overrides)
    app.config.from_mapping(SETTINGS=settings)
    app.config.update(config)

    from . import auth, errors

    errors.init_app(app)
    auth.init_app(app)
    return app
