#!/usr/bin/env bash
# Get datasets/ exactly as datasets.dvc records it, on a fresh clone or an existing checkout.
#
#   1. already there and matching datasets.dvc -> nothing to do
#   2. `dvc pull` from the default remote (see .dvc/config; a team points it at S3/GCS/Azure)
#   3. no remote, or the remote lacks the data -> rebuild with the seeded recipe
#      scripts/make_datasets.py (stdlib only, byte-identical on every machine)
#   4. verify with `dvc status` that datasets/ matches the md5 in datasets.dvc; fail loudly if not
#
# Env: DVC (default: dvc on PATH, else .venv/bin/dvc), PYTHON (default: python3 on PATH).
# Exit: 0 data ready, 1 data could not be made to match datasets.dvc.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DVC="${DVC:-$(command -v dvc || echo "$ROOT/.venv/bin/dvc")}"
PYTHON="${PYTHON:-$(command -v python3 || echo "$ROOT/.venv/bin/python")}"
export DVC_NO_ANALYTICS=1

fail() {
    echo "get_data: ERROR: $*" >&2
    exit 1
}

[ -x "$DVC" ] || command -v "$DVC" >/dev/null || fail "dvc not found (run 'make install' first)"
[ -f datasets.dvc ] || fail "datasets.dvc is missing: nothing says which data this commit expects"

# `dvc status --json` prints {} when the workspace matches the recorded md5 of every file.
matches() {
    local out
    out="$("$DVC" status --json datasets.dvc 2>/dev/null)" || return 1
    [ "$out" = "{}" ]
}

if [ -d datasets ] && matches; then
    echo "get_data: datasets/ already matches datasets.dvc"
    exit 0
fi

if "$DVC" pull --quiet datasets.dvc 2>/dev/null && matches; then
    echo "get_data: pulled datasets/ from the DVC remote"
    exit 0
fi

echo "get_data: the DVC remote has no copy (or none is reachable); rebuilding with the recipe"
"$PYTHON" scripts/make_datasets.py --out datasets

# `dvc status` wants the data in the local cache, which a rebuild does not fill. `dvc commit`
# hashes the workspace into the cache and would record a *different* md5 in datasets.dvc if the
# files differ: compare against the recorded md5, and always restore datasets.dvc byte for byte.
recorded_md5() { awk '$1 == "-" && $2 == "md5:" {print $3; exit}' "$1"; }
saved="$(mktemp)"
trap 'rm -f "$saved"' EXIT
cp datasets.dvc "$saved"
"$DVC" commit --force --quiet datasets.dvc >/dev/null 2>&1 || true
got="$(recorded_md5 datasets.dvc)"
want="$(recorded_md5 "$saved")"
cp "$saved" datasets.dvc

if [ -z "$want" ] || [ "$got" != "$want" ] || ! matches; then
    "$DVC" status datasets.dvc >&2 || true
    fail "datasets/ (md5 ${got:-?}) does not match datasets.dvc (md5 ${want:-?}).
  If you changed the data on purpose, record it:  dvc add datasets && dvc push
  If datasets/ holds stale or extra files, reset:  rm -rf datasets && bash scripts/get_data.sh
  If the recipe changed but datasets.dvc did not (or the reverse), commit both together."
fi
echo "get_data: rebuilt datasets/ and verified it against datasets.dvc (md5 $want)"
