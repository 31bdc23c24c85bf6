# syntax=docker/dockerfile:1
# One image for every role, chosen by command: the entry point is the `fraudstream` CLI.
#   docker build -t fraudstream .
#   docker run --rm -p 8000:8000 fraudstream                    # serve (the default command)
#   docker run --rm -p 8000:8000 fraudstream serve --simulate 50
#   docker run --rm -v "$PWD/data:/data" fraudstream simulate /data/tx.parquet --days 60
# tests/test_container_files.py checks this file without a Docker engine: keep it parseable.

ARG PYTHON_VERSION=3.11

# --- builder: resolves and installs everything under /install, then is thrown away ---------
FROM python:${PYTHON_VERSION}-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src

# Dependencies first, from pyproject.toml alone: this layer is rebuilt only when they change,
# not on every edit of the code. Every dependency ships wheels, so no compiler is needed.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && pip install --prefix=/install --requirement requirements.txt

COPY README.md ./
COPY models ./models
COPY pipelines ./pipelines
COPY service ./service
RUN pip install --prefix=/install --no-deps .

# --- runtime: the slim base, the installed tree and an unprivileged user ---------------------
FROM python:${PYTHON_VERSION}-slim AS runtime

# FRAUDSTREAM_HOST: any `serve` listens on every interface of the container, not only the
# default command's (127.0.0.1 inside a container is unreachable from outside it).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FRAUDSTREAM_HOST=0.0.0.0 \
    FRAUDSTREAM_PORT=8000 \
    FRAUDSTREAM_DATA_DIR=/var/lib/fraudstream

# A fixed numeric id, so that orchestrators can check runAsNonRoot and volumes can be chowned.
RUN groupadd --system --gid 10001 fraudstream \
 && useradd --system --uid 10001 --gid fraudstream --no-create-home \
        --home-dir /var/lib/fraudstream --shell /usr/sbin/nologin fraudstream \
 && install --directory --owner=fraudstream --group=fraudstream /var/lib/fraudstream

COPY --from=builder /install /usr/local

USER 10001:10001
WORKDIR /var/lib/fraudstream
VOLUME ["/var/lib/fraudstream"]
EXPOSE 8000

# Liveness of `serve`; slim has no curl, so Python's urllib asks (any error exits non-zero).
# One-shot commands (simulate, evaluate, bench) end before it matters.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('FRAUDSTREAM_PORT', '8000') + '/healthz', timeout=4)"]

ENTRYPOINT ["fraudstream"]
CMD ["serve", "--host", "0.0.0.0"]
