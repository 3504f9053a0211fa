# kallad: one image for `kallad scheduler`, `kallad executor` and `kallad run`.
# DuckDB is linked statically through cgo, so the builder needs gcc; the
# runtime needs only glibc and CA certificates (Postgres TLS, S3).
FROM golang:1.26-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends gcc g++ && rm -rf /var/lib/apt/lists/*
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# -buildvcs=false: the version comes from VERSION, and a context copied from a
# git worktree (whose .git is a file pointing outside it) would fail VCS stamping.
RUN CGO_ENABLED=1 go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /out/kallad ./cmd/kallad

FROM debian:bookworm-slim
# The data and staging folders exist in the image, owned by kalla (uid and gid
# 10001): Docker gives an empty named volume the owner of the folder it is
# mounted on, and a folder missing from the image would be root's, which
# kallad could not write (KALLA_DATA_DIR is such a volume in the compose files).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 kalla \
    && useradd --system --uid 10001 --gid kalla --home /var/lib/kalla kalla \
    && mkdir -p /var/lib/kalla/data /staging && chown -R kalla:kalla /var/lib/kalla /staging
COPY --from=build /out/kallad /usr/local/bin/kallad
# Numeric, so that Kubernetes can check runAsNonRoot.
USER 10001:10001
WORKDIR /var/lib/kalla
# BIND_PORT: the executor's probe port. kallad's own default (0, a free port)
# lets several executors share a host; in a container it must be known.
ENV KALLA_DATA_DIR=/var/lib/kalla/data STAGING_PATH=/staging BIND_PORT=50051
# 8080: HTTP job API (HTTP_PORT); 50050: cluster port (NATS) executors join
# (GRPC_PORT); 50051: executor /health, /ready and /metrics (BIND_PORT).
EXPOSE 8080 50050 50051
# The image has no curl: kallad checks itself. Without a URL it GETs /health
# on HTTP_PORT (a scheduler) and on BIND_PORT (an executor) on loopback.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["kallad", "health"]
ENTRYPOINT ["kallad"]
CMD ["scheduler"]
