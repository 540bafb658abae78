# syntax=docker/dockerfile:1
# The bot's image: `stagingbot web` (the default) or `stagingbot worker` by argument.
#   docker build -t stagingbot .
#   docker run -p 8080:8080 -v $PWD/config.toml:/etc/stagingbot/config.toml:ro stagingbot
#   docker run -v $PWD/config.toml:/etc/stagingbot/config.toml:ro stagingbot worker
# NOTE: no image has been built from this file on the development machines (they have no
# Docker engine); the test suite lints it with hadolint (tests/unit/test_dockerfile.py).
# Kubernetes: manifests/bot/ (README "Running it in a cluster").

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with stagingbot and its dependencies (wheels only, no compiler) ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/stagingbot
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
# Every dependency ships manylinux wheels for amd64 and arm64: nothing is compiled, and
# a dependency that would need a compiler fails here instead of slipping one in.
RUN /opt/stagingbot/bin/pip install --only-binary=:all: --no-binary=stagingbot . \
    && /opt/stagingbot/bin/pip uninstall --yes pip \
    && /opt/stagingbot/bin/python -m compileall -q /opt/stagingbot

# --- runtime: the slim Python image, the virtualenv, the staging templates; no build tools ---
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="stagingbot" \
      org.opencontainers.image.description="One staging environment per pull request" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 stagingbot \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin stagingbot
COPY --from=build /opt/stagingbot /opt/stagingbot
COPY manifests/staging /app/manifests/staging
WORKDIR /app
ENV PATH=/opt/stagingbot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STAGINGBOT_CONFIG=/etc/stagingbot/config.toml \
    STAGINGBOT_SERVER_HOST=0.0.0.0
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 8080
# For plain Docker: web (and run) must answer /healthz; a worker is asked on
# metrics.worker_port when set (bot/healthcheck.py). Kubernetes uses its probes instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "bot.healthcheck"]
ENTRYPOINT ["stagingbot"]
CMD ["web"]
