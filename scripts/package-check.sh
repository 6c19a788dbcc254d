#!/usr/bin/env bash
# The published crates build from what they hold, as a user gets them from crates.io:
#
# 1. `cargo package` packs docket-tasks-syntax, docket-tasks-macros and docket-tasks as `cargo
#    publish` would, and builds each from its own package (default features; the three are
#    verified together, through a temporary local registry);
# 2. the `.crate` files are unpacked afresh;
# 3. a scratch crate outside the workspace depends on `docket-tasks` by its crates.io coordinates
#    (the docs.rs features: cli, prometheus, opentelemetry), with `[patch.crates-io]` pointing the
#    three names at the unpacked packages; it builds the packaged `docket` binary, then builds and
#    runs `scripts/package-check/main.rs`: a `#[docket::task]` run once on `memory://` (the macro,
#    its duration syntax, the Lua scripts the crate compiles in), and the command line.
#
# A file the build needs but the package lacks fails one of these steps. Everything is built in
# one target directory of its own (target/package-check, or PACKAGE_CHECK_TARGET), kept between
# runs. The scratch crate starts from the workspace's Cargo.lock, so it builds the versions CI
# tests, and needs the network only for what is not cached yet.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

target=${PACKAGE_CHECK_TARGET:-$root/target/package-check}
export CARGO_TARGET_DIR=$target
# No debug info: these builds are checks, and it would take most of the disk and link time.
export CARGO_PROFILE_DEV_DEBUG=false
crates=(docket-tasks-syntax docket-tasks-macros docket-tasks)
version=$(cargo pkgid -p docket-tasks | sed 's/.*[@#]//')

# --allow-dirty: the check runs on a working tree too, and packs it as it is.
package_args=()
for crate in "${crates[@]}"; do package_args+=(-p "$crate"); done
cargo package --locked --allow-dirty "${package_args[@]}"

unpacked=$target/unpacked
rm -rf "$unpacked"
mkdir -p "$unpacked"
for crate in "${crates[@]}"; do
  archive=$target/package/$crate-$version.crate
  echo "$crate: $(wc -c <"$archive") bytes, $(tar -tzf "$archive" | grep -vc '/$') files"
  tar -xzf "$archive" -C "$unpacked"
done

scratch=$target/scratch
mkdir -p "$scratch/src"
cp scripts/package-check/main.rs "$scratch/src/main.rs"
cp Cargo.lock "$scratch/Cargo.lock"
cat >"$scratch/Cargo.toml" <<EOF
[package]
name = "package-check"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
docket-tasks = { version = "=$version", features = ["cli", "prometheus", "opentelemetry"] }
tokio = { version = "1", features = ["macros", "rt"] }

[patch.crates-io]
docket-tasks = { path = "$unpacked/docket-tasks-$version" }
docket-tasks-macros = { path = "$unpacked/docket-tasks-macros-$version" }
docket-tasks-syntax = { path = "$unpacked/docket-tasks-syntax-$version" }

# Not a part of any workspace around it.
[workspace]
EOF

cd "$scratch"
# The binary users get from `cargo install docket-tasks --features cli` (the dependency above
# turns `cli` on).
cargo build -p docket-tasks --bin docket
"$target/debug/docket" version
cargo run
