# Multi-stage build of the edgeplane binary. One image serves both the control
# plane (default command) and the demo echo backend (`edgeplane echo-backend`).
# No `# syntax=` line: it would make BuildKit fetch its Dockerfile frontend
# from Docker Hub, so offline and air-gapped builds would fail; the built-in
# frontend has everything this file uses.

# ---- build ----
FROM rust:1.95-bookworm AS build
WORKDIR /src
# edgeplane's .proto files compile with pure-Rust protox (build.rs); the etcd
# client crate's build script needs protoc and the well-known types.
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --locked \
 && install -m 0755 target/release/edgeplane /edgeplane

# ---- runtime ----
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin edgeplane
COPY --from=build /edgeplane /usr/local/bin/edgeplane
# Manifests are mounted here read-only (a directory, so atomic saves are seen).
RUN mkdir -p /etc/edgeplane/manifests
USER 10001
# 9977: xDS (ADS over gRPC), 9091: admin (status, metrics).
EXPOSE 9977 9091
ENTRYPOINT ["edgeplane"]
CMD ["serve", "--config-dir", "/etc/edgeplane/manifests", "--xds-address", "0.0.0.0:9977", "--admin-address", "0.0.0.0:9091"]
