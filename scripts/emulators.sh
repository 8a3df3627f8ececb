#!/usr/bin/env bash
# Installs what the tests take from npm into tests/emulators/node_modules, at the versions
# tests/emulators/package.json pins: the emulators (s3rver for S3, fauxqs for SQS and S3), the
# OpenAPI validator (@apidevtools/swagger-parser, ajv) and playwright-core (drives Debian's
# chromium in tests/test_web.sh; it downloads no browser of its own) and yaml (parses deploy/*.yaml
# in tests/test_deploy.sh). A second run does nothing.
# npm removes what package.json does not list, so every package checked here must be listed there.
# Exit 0 ok, 1 error.
set -euo pipefail
dir=$(dirname "$0")/../tests/emulators
if [ -x "$dir/node_modules/.bin/s3rver" ] && [ -x "$dir/node_modules/.bin/fauxqs" ] &&
    [ -f "$dir/node_modules/@apidevtools/swagger-parser/package.json" ] &&
    [ -f "$dir/node_modules/ajv/dist/2020.js" ] &&
    [ -f "$dir/node_modules/playwright-core/package.json" ] &&
    [ -f "$dir/node_modules/yaml/package.json" ]; then exit 0; fi
echo "emulators.sh: installing s3rver, fauxqs, swagger-parser, ajv, playwright-core and yaml (npm)" >&2
(cd "$dir" && npm install --no-audit --no-fund --no-package-lock --ignore-scripts --loglevel=error >&2) ||
    { echo "emulators.sh: npm install failed" >&2; exit 1; }
