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
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/kallad ./cmd/kallad

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/kalla kalla && mkdir -p /var/lib/kalla /staging && chown kalla /var/lib/kalla /staging
COPY --from=build /out/kallad /usr/local/bin/kallad
USER kalla
WORKDIR /var/lib/kalla
ENV KALLA_DATA_DIR=/var/lib/kalla/data STAGING_PATH=/staging
# 8080: HTTP job API; 50050: cluster port (NATS) executors join; 50051: executor probes and metrics.
EXPOSE 8080 50050 50051
ENTRYPOINT ["kallad"]
CMD ["scheduler"]
