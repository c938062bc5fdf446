# The exporters of the compose stack: the same Debian packages the native stack runs (NGINX,
# PostgreSQL, Redis, processes), with curl for their health checks. One image, one exporter per
# container (compose's `command` picks it).
ARG DEBIAN_IMAGE=debian:bookworm-slim
FROM ${DEBIAN_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="relais-exporters" \
      org.opencontainers.image.description="Prometheus exporters of the Relais compose stack (Debian's packages)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.vendor="Relais"
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       prometheus-nginx-exporter prometheus-postgres-exporter prometheus-redis-exporter \
       prometheus-process-exporter curl ca-certificates \
    && rm -rf /var/lib/apt/lists/*
USER nobody
STOPSIGNAL SIGTERM
