# A full version tag, not a moving one: a rebuild months later starts from the same Python.
FROM python:3.11.7-slim-bookworm
# Not root: files the harness writes into a mounted ./results belong to this UID (10001),
# or to the UID compose passes with `user:` (README: HARNESS_UID=$(id -u)).
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin loadharness
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY harness ./harness
COPY mockserver ./mockserver
COPY scenarios ./scenarios
# constraints.txt: the dependency versions the test suite passed with (make constraints)
RUN pip install --no-cache-dir -c constraints.txt . \
    && mkdir -p /app/results && chown 10001:10001 /app/results
USER 10001
# Results land in /app/results: mount the host's ./results there.
# 8080 the mockserver, 5555 the coordinator's ZeroMQ, 8089 the dashboard and /metrics
EXPOSE 8080 5555 8089
ENTRYPOINT []
CMD ["harness", "--help"]
