#!/usr/bin/env bash
# Runs every check and every test on a fresh machine: installs pnpm, the
# dependencies and every Debian peer the tests use (docker-registry, skopeo,
# podman, htpasswd, openssl, tar, and chromium for the web UI's browser tests)
# when missing, then lint, typecheck, build, publint, attw, the pack check (scripts/pack-check.mjs), a release dry run and
# the whole vitest suite.
# With CI=true a peer that is still missing makes its tests fail, not skip.
cd "$(dirname "$0")/.."
source scripts/setup.sh

# command:Debian package
peers=(docker-registry:docker-registry skopeo:skopeo podman:podman htpasswd:apache2-utils openssl:openssl tar:tar chromium:chromium)
missing=()
for peer in "${peers[@]}"; do command -v "${peer%%:*}" >/dev/null 2>&1 || missing+=("${peer#*:}"); done
if ((${#missing[@]})); then
  echo "==> installing missing peers: ${missing[*]}"
  apt=(apt-get)
  [ "$(id -u)" -eq 0 ] || apt=(sudo -n apt-get)
  if command -v apt-get >/dev/null 2>&1; then
    "${apt[@]}" update -qq || true
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" ||
      echo "!!! could not install ${missing[*]}: their integration tests will be skipped (failed under CI)"
  else
    echo "!!! no apt-get: ${missing[*]} cannot be installed; their integration tests will be skipped (failed under CI)"
  fi
fi

echo "==> every package and app has tests"
node scripts/check-workspace.mjs

echo "==> lint"
pnpm lint
echo "==> typecheck"
pnpm turbo run typecheck --output-logs=errors-only
echo "==> build"
pnpm turbo run build --output-logs=errors-only
echo "==> publint"
pnpm turbo run publint --output-logs=errors-only
echo "==> attw (are the types wrong)"
pnpm turbo run attw --output-logs=errors-only
echo "==> pack-check (npm installs the tarballs outside the workspace; TypeScript 5.9 and newest; import and require)"
node scripts/pack-check.mjs
echo "==> release dry run (pnpm publish -r --dry-run: what a release would publish)"
if ! release=$(pnpm release:check 2>&1); then
  echo "$release"
  exit 1
fi
grep '^+ ' <<<"$release"

echo "==> tests"
report=$(mktemp -d)/vitest.json
status=0
pnpm vitest run --reporter=default --reporter=json --outputFile.json="$report" || status=$?
node scripts/summarize-tests.mjs "$report" || status=1
exit "$status"
