"""gunicorn's settings for the shopping API, all in one place.

gunicorn reads this file from the working directory, so from the repository root
``gunicorn "shopping_api:create_app()"`` uses it; elsewhere pass ``-c path/to/gunicorn.conf.py``.
Values come from the environment (or `.env`), see ``shopping_api.config.ServingSettings``;
a command-line flag still overrides them. Sync workers keep one request per process: in
production they sit behind a buffering reverse proxy (nginx), which absorbs slow clients.
"""

from gunicorn.arbiter import Arbiter

from shopping_api.config import ServingSettings
from shopping_api.logs import ACCESS_LOG_FORMAT, logging_config, set_log_level
from shopping_api.startup import check_settings, settings_or_exit

serving = settings_or_exit(ServingSettings)

bind = [serving.shopping_api_bind]
workers = serving.web_concurrency
worker_class = "sync"
# A request that takes longer than this gets its worker killed and restarted (the JWKS fetch and
# the database calls are bounded well below it).
timeout = 30
graceful_timeout = 20
# Behind the proxy a kept-alive connection costs a worker nothing between requests.
keepalive = 5
# X-Forwarded-For/-Proto are believed only from the proxy's address.
forwarded_allow_ips = serving.forwarded_allow_ips
# The one scheme header the proxy sets (nginx: X-Forwarded-Proto); gunicorn's default also reads
# X-Forwarded-Ssl and X-Forwarded-Protocol, and answers HTML 400 when they disagree.
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
# The API has no use for gunicorn's per-user control socket, which two servers would fight over.
control_socket_disable = True

# Logging: the app's lines, gunicorn's error log and its access log, all on stderr, one format,
# one level (LOG_LEVEL; --log-level on the command line wins, as for any gunicorn setting).
loglevel = serving.log_level
access_log_format = ACCESS_LOG_FORMAT
logconfig_dict = logging_config(serving.log_format)


def on_starting(server: Arbiter) -> None:
    """Once, in the master, before any worker is forked: stop on a bad setting, set the log level."""
    check_settings()
    set_log_level(server.cfg.loglevel)
