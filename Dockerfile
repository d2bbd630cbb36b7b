# syntax=docker/dockerfile:1
#
# The Strait image: /usr/local/bin/strait (agent, dns, ingress, lab, echo)
# and /usr/local/bin/strait-cni, which the agent DaemonSet's init container
# copies to the node. deploy/ runs every component from this one image.
#
#   docker build -t REGISTRY/strait:TAG .      (needs BuildKit, the default)
#
# The build stage installs what scripts/setup installs for the eBPF build
# (see ../shared/TOOLCHAIN.md for why these versions): LLVM 22 and
# bpf-linker 0.13.0 built against it, and the nightly whose LLVM is 22 with
# rust-src. proxy/build.rs builds the eBPF programs with that nightly and
# embeds the object into `strait`, so the image can only ever load programs
# built from these sources.

ARG RUST_VERSION=1.95
# The nightly of 2026-05-19 (rustc 1.97.0-nightly, LLVM 22.1.4) is published
# in the channel of the next day. A nightly with LLVM 23 fails to link.
ARG EBPF_NIGHTLY=nightly-2026-05-20
ARG BPF_LINKER_VERSION=0.13.0

FROM rust:${RUST_VERSION}-bookworm AS build
ARG EBPF_NIGHTLY
ARG BPF_LINKER_VERSION

# LLVM 22 for bpf-linker: its major version must match the nightly's. Debian
# 12 ships llvm-22-dev through bookworm-security, which the base image has.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      llvm-22-dev libpolly-22-dev libzstd-dev zlib1g-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*

# proxy/build.rs asks rustup for the toolchain named "nightly". rustup
# refuses "nightly" as a linked toolchain name, so the pinned dated nightly is
# installed and its directory renamed; the last line fails the build early if
# the LLVM major version is wrong.
RUN host=$(rustc -vV | sed -n 's/^host: //p') \
 && rustup toolchain install "$EBPF_NIGHTLY" --profile minimal --component rust-src \
 && mv "$RUSTUP_HOME/toolchains/$EBPF_NIGHTLY-$host" "$RUSTUP_HOME/toolchains/nightly-$host" \
 && rustc +nightly -vV | grep -q '^LLVM version: 22\.'

RUN LLVM_PREFIX=/usr/lib/llvm-22 PATH=/usr/lib/llvm-22/bin:$PATH \
    cargo install "bpf-linker@$BPF_LINKER_VERSION" --locked --no-default-features --features llvm-22

WORKDIR /src
COPY . .
# Only the two shipped binaries (the workspace's tests and benchmarks are not
# built). The target directory is a cache mount, so copy the binaries out in
# the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p strait -p strait-cni \
 && install -D -m 0755 target/release/strait /out/strait \
 && install -D -m 0755 target/release/strait-cni /out/strait-cni

# Runtime: debian slim rather than distroless, because the agent's init
# containers are small /bin/sh scripts (stat, sed, install, mv). The binaries
# need only glibc (TLS is rustls, no OpenSSL).
FROM debian:bookworm-slim
COPY --from=build /out/strait /out/strait-cni /usr/local/bin/
# Root by default: the agent and its init containers need it. The DNS and
# ingress pods set runAsUser 65532 in their manifests.
ENTRYPOINT ["/usr/local/bin/strait"]
