"""The "online shopping" API: a Logto API resource whose routes demand scoped access tokens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from logto_m2m.settings import ENV_FILE, SettingsError, load_settings

from .config import ApiSettings
from .startup import exit_for_bad_setting


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings from the environment, overridden by ``test_config`` when given.

    ``test_config`` takes setting names as in the settings table (``DATABASE_URL``...) and any
    Flask config key; ``ENV_FILE: None`` stops `.env` from being read.
    """
    app = Flask(__name__, instance_relative_config=True, static_folder=None)  # JSON only
    config = dict(test_config or {})
    env_file = config.pop("ENV_FILE", ENV_FILE)
    overrides = {
        key.lower(): config.pop(key) for key in list(config) if key.lower() in ApiSettings.model_fields
    }
    try:
        settings = load_settings(ApiSettings, env_file=env_file, **overrides)
    except SettingsError as exc:
        if test_config is not None:
            raise
        # Started by the flask CLI (gunicorn.conf.py checks before any worker starts): one line.
        exit_for_bad_setting(str(exc))
    app.config.from_mapping(SETTINGS=settings)
    app.config.update(config)

    from . import auth, db, errors, health, logs, openapi, orders, products, seed, validation

    logs.init_app(app)  # first: every later hook and view logs with the request id
    errors.init_app(app)
    auth.init_app(app)
    db.init_app(app)
    validation.init_app(app)
    for module in (health, products, orders, openapi):
        app.register_blueprint(module.bp)
    app.cli.add_command(seed.seed_command)
    return app
