# syntax=docker/dockerfile:1
# agent-fleet image: both binaries (`ingest`, `worker`) on debian-slim with git and CA
# certificates, running as a non-root user (uid 10001).
#
#   docker build -t agent-fleet:dev .
#   docker run --rm agent-fleet:dev worker --help
#   docker run --rm -p 8080:8080 agent-fleet:dev ingest
#
# Dependency caching without extra tools (the cargo-chef idea in plain shell):
#   1. `recipe` copies the sources and reduces them to the manifests (Cargo.toml files,
#      Cargo.lock) plus an empty stub for every .rs file. Its output changes only when a
#      manifest, the lock file or the set of .rs files changes.
#   2. `build` copies that recipe and compiles every dependency against the stubs: this
#      layer stays cached while only source code changes.
#   3. `build` then copies the real sources and compiles the two binaries.

# The toolchain the workspace is tested with (rustc 1.95 on the development machine);
# Cargo.toml's rust-version (1.88) is the floor, the lock file may need newer.
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS recipe
WORKDIR /src
COPY . .
RUN set -eu; mkdir -p /recipe; \
    find . -path ./target -prune -o \( -name Cargo.toml -o -name Cargo.lock \) -type f -print \
      | while read -r f; do mkdir -p "/recipe/$(dirname "$f")"; cp "$f" "/recipe/$f"; done; \
    find . -path ./target -prune -o -name '*.rs' -type f -print \
      | while read -r f; do mkdir -p "/recipe/$(dirname "$f")"; \
          printf '#![allow(dead_code)]\nfn main() {}\n' > "/recipe/$f"; done

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
ENV CARGO_TERM_COLOR=never CARGO_INCREMENTAL=0
COPY --from=recipe /recipe/ ./
# Dependencies only (the workspace's own crates are stubs here).
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    cargo build --release --locked -p ingest -p worker
COPY . .
# The real sources may carry older mtimes than the stub build: touch them so cargo
# rebuilds the workspace crates (dependencies stay as built above).
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    find . -path ./target -prune -o -name '*.rs' -type f -exec touch {} + \
    && cargo build --release --locked -p ingest -p worker \
    && install -D -m 0755 target/release/ingest /out/ingest \
    && install -D -m 0755 target/release/worker /out/worker

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# git: the worker clones and pushes with the git CLI; ca-certificates: HTTPS to GitHub,
# Jira and the LLM provider (rustls reads the system store through git, and git needs it);
# bubblewrap and util-linux (prlimit, setpriv): the sandbox of the repositories' checks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates tini bubblewrap util-linux \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 agent \
    && useradd --uid 10001 --gid 10001 --home-dir /home/agent --create-home --shell /usr/sbin/nologin agent \
    && mkdir -p /workspace && chown 10001:10001 /workspace
COPY --from=build /out/ingest /out/worker /usr/local/bin/
# HOME must be writable for git; WORKSPACE_DIR holds the task dirs. On Kubernetes, with a
# read-only root filesystem, both are emptyDir mounts (deploy/base/worker-deployment.yaml).
ENV HOME=/home/agent \
    WORKSPACE_DIR=/workspace \
    LOG_FORMAT=json \
    RUST_LOG=info
USER 10001:10001
WORKDIR /home/agent
# 8080: ingest (webhooks, /healthz, /readyz, /metrics); 9090: worker (/metrics, /healthz, /readyz).
EXPOSE 8080 9090
# tini as PID 1: forwards SIGTERM to the service (both stop gracefully on it) and reaps
# the git child processes the worker starts.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["worker"]
