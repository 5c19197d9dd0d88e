# Queue billing service: the production image (Heroku container stack).
#
#   docker build -t queue .                              web image (last stage, CMD raxx-queue serve)
#   docker build --target release -t queue-release .     release-phase image (CMD raxx-queue migrate)
#
# heroku.yml builds the last stage; .github/workflows/deploy.yml pushes both images.
# Nothing secret is baked in: every setting comes from the dyno's environment (SPEC §2).
# Only classic-builder syntax is used (no RUN --mount, no COPY --chmod), so the file
# builds the same with or without BuildKit.
#
# PYTHON_IMAGE: the base of every stage. Left at its default for Heroku and CI; a
# machine that cannot reach Docker Hub builds against a stand-in made from Debian's
# packages (scripts/python-standin.sh, docs/deploy.md).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------
# deps: the locked runtime dependencies in /opt/venv (reused until uv.lock changes)
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS deps

# A build behind a TLS-inspecting proxy hands pip and uv the proxy's CA bundle
# (docs/deploy.md); left unset, both keep their own trust roots. Build arguments of
# the build stages only: they reach neither image.
ARG PIP_CERT
ARG SSL_CERT_FILE
ARG UV_NATIVE_TLS

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy

# binutils: `strip`, for the extension modules below (this stage only).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*

# Same uv as the lock file was written with (see CI and docker-compose.test.yml).
RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /src

# Only the lock and the project's metadata: a change to the code or the README does not
# rebuild this layer. Export [project.dependencies] (no dev group, no `embedded` extra),
# install them hash-checked and from wheels only (the slim image has no compiler).
# Then cut what the service never runs: debug symbols of the extension modules
# (uvloop's and asyncpg's are most of their size), and bytecode for the Stripe SDK's
# typing-only parameter classes (stripe/params, imported only under TYPE_CHECKING).
# Everything else is compiled now: a non-root dyno cannot write bytecode at start-up.
COPY pyproject.toml uv.lock ./
RUN uv export --frozen --no-dev --no-emit-project --format requirements-txt \
        --output-file requirements.txt \
    && python -m venv --without-pip /opt/venv \
    && uv pip install --python /opt/venv/bin/python \
        --require-hashes --only-binary :all: --no-deps -r requirements.txt \
    && find /opt/venv -name '*.so' -exec strip --strip-unneeded {} + \
    && /opt/venv/bin/python -m compileall -q -j 0 -x '/stripe/params/' /opt/venv/lib \
    && echo /opt/queue/lib > /opt/venv/lib/python3.11/site-packages/raxx_queue.pth

# ---------------------------------------------------------------------------
# builder: the project's wheel, installed apart in /opt/queue (its own small layer)
# ---------------------------------------------------------------------------
FROM deps AS builder

# uv build fetches the build backend (hatchling): the same CA arguments as above.
ARG PIP_CERT
ARG SSL_CERT_FILE
ARG UV_NATIVE_TLS

COPY README.md ./
COPY queue/ ./queue/
RUN uv build --wheel --out-dir /tmp/dist \
    && uv pip install --python /opt/venv/bin/python --no-deps --compile-bytecode \
        --target /opt/queue/lib /tmp/dist/*.whl

# ---------------------------------------------------------------------------
# app: what the web and release images share
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS app

# sqitch runs the migrations: its pg engine talks to the registry through DBD::Pg
# and runs the change scripts through psql, hence libdbd-pg-perl and postgresql-client.
# curl: Heroku needs it in the image to stream release-phase output live (else the
# output only reaches the app's logs); deploy.yml follows that stream.
# Versions are not pinned: Debian replaces superseded versions in bookworm-security,
# so exact pins break rebuilds; the python:3.11-slim-bookworm tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        curl \
        libdbd-pg-perl \
        libpq5 \
        postgresql-client \
        sqitch \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 queue \
    && useradd --system --uid 10001 --gid queue --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin queue

# Code and migrations stay owned by root: the service cannot rewrite them. The
# dependencies and the project are separate layers: a code change ships the small one.
COPY --from=deps /opt/venv /opt/venv
COPY --from=builder /opt/queue /opt/queue
WORKDIR /app
COPY migrations/ ./migrations/

# SQITCH_FULLNAME / SQITCH_EMAIL: sqitch records who deployed each change; a dyno's
# user has no passwd entry and no git config to take them from.
ENV PATH="/opt/queue/lib/bin:/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LANG=C.UTF-8 \
    QUEUE_ENV=production \
    PORT=8000 \
    WEB_CONCURRENCY=2 \
    QUEUE_MIGRATIONS_DIR=/app/migrations/sqitch \
    SQITCH_FULLNAME="Queue release phase" \
    SQITCH_EMAIL="queue-release@localhost"

USER 10001:10001

# ---------------------------------------------------------------------------
# release: Heroku's release phase when deploying through the container registry
# ---------------------------------------------------------------------------
FROM app AS release

CMD ["raxx-queue", "migrate"]

# ---------------------------------------------------------------------------
# runtime: the web dyno (last stage, so a plain `docker build` produces it)
# ---------------------------------------------------------------------------
FROM app AS runtime

# Heroku ignores EXPOSE and HEALTHCHECK (it routes to $PORT and watches the dyno
# itself); both are here for `docker run` and local orchestration.
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/bin/sh", "-c", "curl -fsS \"http://127.0.0.1:${PORT}/health\" > /dev/null || exit 1"]

# Exec form: the server is PID 1 and receives SIGTERM itself. `serve` reads $PORT and
# $WEB_CONCURRENCY and drains within 25 s, inside Heroku's 30 s SIGTERM→SIGKILL window.
CMD ["raxx-queue", "serve"]
