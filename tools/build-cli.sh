#!/usr/bin/env bash
# `make cli`: the pinned Pulumi CLI and the dynamic provider plugin, in .tools/bin.
#
# No binary release of Pulumi is reachable from our machines, so the CLI is built
# from its published Go modules (tools/pulumi/go.mod pins them). A `pulumi` of the
# pinned version already on PATH is used instead, and a finished build is reused.
# What .tools/bin holds, and what it lacks (the Python language host), is in
# docs/cli.md.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
module="$root/tools/pulumi"
bin="$root/.tools/bin"
pinned=$(sed -n 's|^require github.com/pulumi/pulumi/pkg/v3 \(v[0-9.]*\)$|\1|p' "$module/go.mod")
[ -n "$pinned" ] || { echo "make cli: no pkg/v3 version in $module/go.mod" >&2; exit 2; }

version_of() { "$1" version 2>/dev/null | head -n 1 || true; }

# Another pulumi on PATH (not ours) of the pinned version: nothing to build.
ours=$(realpath -m "$bin/pulumi")
ambient=$(command -v pulumi || true)
if [ -n "$ambient" ] && [ "$(realpath -m "$ambient")" != "$ours" ] \
    && [ "$(version_of "$ambient")" = "$pinned" ]; then
    echo "make cli: using $ambient ($pinned, the pinned version)"
    exit 0
fi

if [ -x "$bin/pulumi" ] && [ -x "$bin/pulumi-resource-pulumi-python" ] \
    && [ "$(version_of "$bin/pulumi")" = "$pinned" ]; then
    echo "make cli: $bin/pulumi $pinned is built"
    exit 0
fi

command -v go >/dev/null || {
    echo "make cli: building the Pulumi CLI needs Go 1.26 or newer (https://go.dev/dl/)," \
         "or put pulumi $pinned on PATH" >&2
    exit 2
}

mkdir -p "$bin"
echo "make cli: building pulumi $pinned from its Go modules into $bin (6-8 minutes on" \
     "2 cores the first time; Go's caches make later builds quick)"
started=$(date +%s)
trap 'rm -f "$bin/pulumi.partial.$$"' EXIT
# The version is stamped as the release build does; without it `pulumi version` is
# empty and the Automation API cannot check the CLI. Built to a temporary name so
# an interrupted build never leaves a broken binary behind.
go build -C "$module" -buildvcs=false \
    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$pinned" \
    -o "$bin/pulumi.partial.$$" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
mv -f "$bin/pulumi.partial.$$" "$bin/pulumi"

# The dynamic provider plugin is a shell script of the SDK module (the CLI's release
# archive bundles the same file); the engine finds it beside the pulumi binary.
sdk=$(go list -C "$module" -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$bin/"
echo "make cli: built $(version_of "$bin/pulumi") in $(( $(date +%s) - started )) s"
