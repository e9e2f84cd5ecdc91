# Build with the locked dependency set; the cache mounts keep the registry and target directory
# between builds.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked && cp target/release/finance-cache-warmer /finance-cache-warmer

# Minimal runtime: glibc, CA certificates, a non-root user; no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /finance-cache-warmer /usr/local/bin/finance-cache-warmer
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/finance-cache-warmer"]
CMD ["run"]
