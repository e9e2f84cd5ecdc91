# syntax=docker/dockerfile:1
# Build with the locked dependency set. BuildKit cache mounts keep the crate registry and the
# target directory between builds, so a source change recompiles the project, not its
# dependencies.
FROM rust:1.95-slim-bookworm AS build
# jemalloc, the binary's allocator, is built with make (the image brings gcc, not make).
RUN apt-get update \
    && apt-get install -y --no-install-recommends make=4.3-4.1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY config ./config
# Replay recordings are compiled into the binary; benches and tests are declared targets.
COPY tests ./tests
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin finance-cache-warmer \
    && cp target/release/finance-cache-warmer /finance-cache-warmer

# Minimal runtime: glibc, CA certificates (for rustls' platform verifier), a non-root user, no
# shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /finance-cache-warmer /usr/local/bin/finance-cache-warmer
# Probes reach the endpoint from outside the container.
ENV FCW_SERVER__LISTEN=0.0.0.0:9184
EXPOSE 9184
# The distroless image's "nonroot" user, numerically (Kubernetes runAsNonRoot needs a number).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/finance-cache-warmer"]
# `run` is the daemon; pass `once <job>` as the container's arguments for a CronJob.
CMD ["run"]
