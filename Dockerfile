FROM python:3.11-slim
# Not root: files the harness writes into a mounted ./results belong to this UID (10001),
# or to the UID compose passes with `user:` (README: HARNESS_UID=$(id -u)).
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin loadharness
WORKDIR /app
COPY pyproject.toml README.md ./
COPY harness ./harness
COPY mockserver ./mockserver
COPY scenarios ./scenarios
RUN pip install --no-cache-dir . && mkdir -p /app/results && chown 10001:10001 /app/results
USER 10001
# Results land in /app/results: mount the host's ./results there.
ENTRYPOINT []
