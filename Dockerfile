# One image for the three Python services (shopping-api, stats-worker, local-issuer) and the
# one-shot provisioner; docker-compose.yml picks the command. Build: docker build -t logto-m2m-reference .
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Dependencies first, from the lock file (exact versions with hashes, `make lock`): an image built
# next month runs the versions the tests passed on, and this layer is rebuilt only when the lock
# changes, not on every code edit.
WORKDIR /src
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

# The project itself, without resolving anything again.
COPY pyproject.toml README.md ./
COPY logto_m2m ./logto_m2m
COPY shopping_api ./shopping_api
COPY stats_worker ./stats_worker
COPY local_issuer ./local_issuer
RUN pip install --no-deps . && cd / && rm -rf /src

# gunicorn's settings for the API (bind, workers, timeouts, logging, the settings check).
COPY gunicorn.conf.py /app/gunicorn.conf.py

# Never run as root. /data holds what must outlive a container (reports, the local issuer's
# key and custom data); named volumes mounted there inherit this ownership.
RUN useradd --create-home --uid 10001 --user-group app \
 && mkdir -p /data/reports /data/local-issuer \
 && chown -R app:app /data
USER app
WORKDIR /data

# Inside a container gunicorn listens on every interface (the default, 127.0.0.1, is for a laptop).
ENV SHOPPING_API_BIND=0.0.0.0:8000
EXPOSE 8000 3001
# Exec form, no shell in between: the program is PID 1 and gets `docker stop`'s SIGTERM itself.
CMD ["gunicorn", "-c", "/app/gunicorn.conf.py", "shopping_api:create_app()"]
