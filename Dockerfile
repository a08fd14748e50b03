# One image for the three Python services (shopping-api, stats-worker, local-issuer);
# docker-compose.yml picks the command. Build: docker build -t logto-m2m-reference .
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Dependencies first, read from pyproject.toml alone: this layer is rebuilt only when the
# dependency list changes, not on every code edit.
WORKDIR /src
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['postgres']))" > requirements.txt \
 && pip install -r requirements.txt

COPY README.md ./
COPY logto_m2m ./logto_m2m
COPY shopping_api ./shopping_api
COPY stats_worker ./stats_worker
COPY local_issuer ./local_issuer
RUN pip install --no-deps . && cd / && rm -rf /src

# Never run as root. /data holds what must outlive a container (reports, the local issuer's
# key and custom data); named volumes mounted there inherit this ownership.
RUN useradd --create-home --uid 10001 --user-group app \
 && mkdir -p /data/reports /data/local-issuer \
 && chown -R app:app /data
USER app
WORKDIR /data

EXPOSE 8000 3001
# Exec form, no shell in between: the program is PID 1 and gets `docker stop`'s SIGTERM itself.
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "shopping_api:create_app()"]
