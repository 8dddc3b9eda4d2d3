"""`python -m analyst` runs the `calls` command."""

from __future__ import annotations

from analyst.cli import main

raise SystemExit(main())
