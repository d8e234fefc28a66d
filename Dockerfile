# syntax=docker/dockerfile:1
# reco: one binary, every subcommand. Multi-stage: build with the Rust toolchain, run on a slim
# Debian with only the binary and CA certificates, as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# librdkafka is vendored and built with its own configure script (no cmake needed).
RUN cargo build --release --locked -p reco \
    && cp target/release/reco /usr/local/bin/reco \
    && strip /usr/local/bin/reco

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /lake --no-create-home reco \
    && mkdir -p /lake && chown reco:reco /lake
COPY --from=build /usr/local/bin/reco /usr/local/bin/reco
USER reco
WORKDIR /lake
ENV LAKEHOUSE_PATH=/lake
# In a container the published port arrives on the container's interface, so `reco up` (whose
# own default is loopback) listens on every interface here; it warns at start without tokens.
ENV RECO_HTTP_ADDR=0.0.0.0:8000
# API, API metrics (with --metrics-addr), silver metrics, gold metrics.
EXPOSE 8000 9100 9101 9102
ENTRYPOINT ["reco"]
CMD ["up"]
