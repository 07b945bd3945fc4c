# syntax=docker/dockerfile:1
# Container image of edge-sync-service (either role: NODE_TYPE=CSS or ESS).
#
#   docker buildx build --platform linux/amd64|linux/arm64|linux/arm/v7 -t NAME .
#   (buildContainer.sh <amd64|arm64|armhf> does this with the original's image names)
#
# The build stage runs on the builder's own platform and cross-compiles a static (musl)
# binary for the requested one, so no emulation is needed; the runtime stage is distroless
# static: no shell, no package manager, CA certificates for outgoing TLS, a non-root user.

ARG RUST_VERSION=1.95

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS build
ARG TARGETARCH
ARG BUILDARCH
# A target of the builder's architecture needs musl-gcc; another one Debian's cross compiler
# and that architecture's musl headers (multiarch musl-dev): ring and the bundled SQLite
# compile C for the target (see scripts/build-release.sh). $packages is split on purpose;
# Debian's stable packages are not pinned (the base image tag fixes the release).
# hadolint ignore=DL3008,SC2086
RUN set -eu; \
    case "$TARGETARCH" in \
      amd64) debarch=amd64 cross=gcc-x86-64-linux-gnu ;; \
      arm64) debarch=arm64 cross=gcc-aarch64-linux-gnu ;; \
      arm) debarch=armhf cross=gcc-arm-linux-gnueabihf ;; \
      *) echo "unsupported platform: $TARGETARCH" >&2; exit 1 ;; \
    esac; \
    if [ "$TARGETARCH" = "$BUILDARCH" ]; then \
      packages="musl-tools"; \
    else \
      dpkg --add-architecture "$debarch"; \
      packages="$cross musl-dev:$debarch"; \
    fi; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages; \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=edge-sync-service-target-${TARGETARCH} \
    set -eu; \
    case "$TARGETARCH" in amd64) arch=amd64 ;; arm64) arch=arm64 ;; arm) arch=armhf ;; esac; \
    scripts/build-release.sh "$arch"; \
    mkdir -p /out/edge-sync-service /out/var/edge-sync-service; \
    cp target/dist/edge-sync-service /out/edge-sync-service/edge-sync-service

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=unknown
LABEL org.opencontainers.image.title="edge-sync-service" \
      org.opencontainers.image.description="Cloud-edge object synchronization service compatible with Open Horizon's sync service (MMS)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# Same binary path as the original's images, so commands written for them keep working.
COPY --from=build /out/edge-sync-service/edge-sync-service /edge-sync-service/edge-sync-service
# Owned by the runtime user, so a fresh named volume mounted here is writable for it.
COPY --from=build --chown=65532:65532 /out/var/edge-sync-service /var/edge-sync-service
USER 65532:65532
# Everything the node keeps (database, object data, the ESS's generated certificate).
# Configuration comes from environment variables (NODE_TYPE, ORG_ID, ...), or from a file
# mounted at the default path /etc/edge-sync-service/sync.conf, which the health check
# reads too. Logs go to the container log (stdout); LOG_TRACE_DESTINATION=file would write
# them under /var/edge-sync-service/log and /var/edge-sync-service/trace instead.
ENV PERSISTENCE_ROOT_PATH=/var/edge-sync-service \
    LOG_TRACE_DESTINATION=stdout
VOLUME /var/edge-sync-service
# UnsecureListeningPort (HTTP, the CSS's default) and SecureListeningPort (HTTPS, the ESS's).
EXPOSE 8080 8443
# No shell or curl here: the binary probes its own node's /api/v1/health.
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD ["/edge-sync-service/edge-sync-service", "--healthcheck"]
CMD ["/edge-sync-service/edge-sync-service"]
