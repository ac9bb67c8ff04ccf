# The redis-ha image: the one binary (proxy, init-role, switchover, bench) on Debian slim.
#   docker build -t redis-ha:0.1.0 .
#   docker build --build-arg WITH_REDIS_TOOLS=1 -t redis-ha:0.1.0 .   # adds redis-cli for debugging
#   docker build --build-arg BINARY=host -f Dockerfile -t redis-ha:0.1.0 DIR
#       # takes DIR/redis-ha, a binary built on a bookworm host, instead of compiling (the tests
#       # do this: rust:1-bookworm cannot be pulled there); the runtime stage is the same
# Built on glibc bookworm, like the redis:7.2 image, whose Redis pods run this binary in preStop.

# Where the binary comes from: the `build` stage (default) or `host`.
ARG BINARY=build

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p redis-ha \
 && install -m 0755 target/release/redis-ha /redis-ha

FROM scratch AS host
COPY redis-ha /redis-ha

FROM ${BINARY} AS binary

FROM debian:bookworm-slim
ARG WITH_REDIS_TOOLS=0
RUN set -eux; \
    pkgs="ca-certificates"; \
    if [ "$WITH_REDIS_TOOLS" = 1 ]; then pkgs="$pkgs redis-tools"; fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends $pkgs; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --gid 10001 redis-ha; \
    useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin redis-ha
COPY --from=binary /redis-ha /usr/local/bin/redis-ha
USER 10001:10001
EXPOSE 6379 6380 8404
ENTRYPOINT ["redis-ha"]
CMD ["--help"]
