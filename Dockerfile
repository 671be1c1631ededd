FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY harness ./harness
COPY mockserver ./mockserver
COPY scenarios ./scenarios
RUN pip install --no-cache-dir .
# Results land in /app/results: mount the host's ./results there.
ENTRYPOINT []
