#!/usr/bin/env bash
# buf breaking against the last release of the series VERSION belongs to (run by `make breaking`, in make test's
# lint stage). Releases are the tags vX.Y.Z (see CHANGELOG.md, "Releases"). Semantic versioning decides the series:
# for 0.Y.Z the newest tag v0.Y.*, for X >= 1 the newest vX.*; a version that starts a new series (0.2.0 after
# 0.1.x, 2.0.0 after 1.x) is where a breaking change may be released, so there is nothing to hold it to, and the
# check is skipped saying so. BREAKING_AGAINST (any buf input: .git#ref=HEAD~1, a branch, a directory) overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(tr -d '[:space:]' <VERSION)
[[ $version =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || { echo "breaking: VERSION '$version' is not X.Y.Z" >&2; exit 1; }
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}

if [[ -n ${BREAKING_AGAINST:-} ]]; then
	echo "breaking: against $BREAKING_AGAINST (BREAKING_AGAINST)"
	exec buf breaking --against "$BREAKING_AGAINST"
fi

if ((major == 0)); then series="v0.$minor."; else series="v$major."; fi
releases=$(git tag --list 'v[0-9]*.[0-9]*.[0-9]*' | sort -V)
if [[ -z $releases ]]; then
	echo "breaking: skipped: no release tag (vX.Y.Z) exists yet; the first release is tagged v$version (CHANGELOG.md)"
	exit 0
fi
last=$(grep -F "$series" <<<"$releases" | grep -E "^${series//./\\.}[0-9]" | tail -n1 || true)
if [[ -z $last ]]; then
	echo "breaking: skipped: VERSION $version starts a new series (no ${series}* tag; the last release is $(tail -n1 <<<"$releases")):"
	echo "  breaking changes may be released in it; CHANGELOG.md must list them"
	exit 0
fi
# The repository's object store (a worktree's .git is a file that buf's git input does not follow).
repo=$(git rev-parse --path-format=absolute --git-common-dir)
echo "breaking: against release $last"
buf breaking --against "$repo#tag=$last"
