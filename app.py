#!/usr/bin/env python3
"""The CDK app: `npx cdk synth` / `npx cdk deploy -c key=value ...` (context keys: infra/settings.py, infra/DEPLOY.md).

Synth runs offline with no Docker: Lambda code and its dependency layer are built locally (infra/bundling.py); the
relay image is only built by `cdk deploy`.
"""

from __future__ import annotations

import sys

from infra.application import build_app
from infra.bundling import BundlingError
from infra.settings import ContextError


def main() -> int:
    try:
        app, _stack = build_app()
    except (ContextError, BundlingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app.synth()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
