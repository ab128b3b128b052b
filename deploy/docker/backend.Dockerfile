# The example backend (deploy/local/backend.py) as an image for the kind
# runner: answers with its own name (the pod name), the Host, path and
# X-Forwarded-For it saw. Non-root.
#   docker build -f deploy/docker/backend.Dockerfile -t edge/backend:dev .
ARG DEBIAN=edge/debian:bookworm
FROM ${DEBIAN}
RUN apt-get update && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/local/backend.py /usr/local/bin/backend.py
USER 65532:65532
EXPOSE 8080
# NAME comes from the pod name (downward API) in deploy/kind/backend.yaml.
ENTRYPOINT ["/bin/sh", "-c", "exec python3 /usr/local/bin/backend.py \"${NAME:-backend-1}=0.0.0.0:8080\""]
