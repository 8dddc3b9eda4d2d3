"""`make phone`: the local stack and the softphone page on http://127.0.0.1:PORT (loopback only).

    python -m local.phone [--port 8765] [--profile PATH] [--model auto|openai|spoken|scripted]

auto: the real OpenAI Realtime when OPENAI_API_KEY is set, else the local offline voice model (else the scripted one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from callcore.profiles import DEFAULT_PROFILES_DIR, ProfileError
from local.phone.server import create_phone_app
from local.stack import ModelKind, StackOptions, local_stack

MODEL_DESCRIPTIONS = {
    "openai": "OpenAI Realtime (OPENAI_API_KEY)",
    "spoken": "the local stand-in voice model (offline speech recognition + synthesis), not OpenAI",
    "scripted": "the scripted model (answers every turn with the same tone)",
}


def stack_options(profile_path: Path, model: ModelKind) -> StackOptions:
    """The stack set up as the profile's business line, the profile published into the local call table as `cdk
    deploy` publishes it (so `make call` and `make phone` run a profile the same way). Raises ProfileError."""
    return StackOptions.for_profile(profile_path, model=model)


def chosen_model(requested: str) -> ModelKind:
    """The model to run; raises SystemExit naming what is missing."""
    has_key = bool(os.environ.get("OPENAI_API_KEY", "").strip())
    if requested == "openai" and not has_key:
        raise SystemExit("--model openai needs OPENAI_API_KEY: export it, or use --model spoken (offline)")
    if requested == "auto":
        return "openai" if has_key else "spoken"
    return requested  # type: ignore[return-value]


@contextlib.asynccontextmanager
async def serve_phone(options: StackOptions, *, port: int, profile: str) -> AsyncIterator[tuple[str, ModelKind]]:
    """The stack and the page, until the context ends; yields the page's URL and the model the stack runs (the
    spoken one falls back to the scripted one where its speech parts cannot load)."""
    from aiohttp import web  # noqa: PLC0415

    async with local_stack(options) as stack:
        description = MODEL_DESCRIPTIONS[stack.model_kind]
        if stack.model_kind != "openai" and not os.environ.get("OPENAI_API_KEY", "").strip():
            description += " (no OPENAI_API_KEY set: export it to talk to OpenAI)"
        app = create_phone_app(stack, model_description=description, profile=profile)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            host, bound = runner.addresses[0][:2]
            yield f"http://{host}:{bound}/", stack.model_kind
        finally:
            await runner.cleanup()


async def run(options: StackOptions, *, port: int, profile: str) -> None:
    try:
        async with serve_phone(options, port=port, profile=profile) as (url, model_kind):
            print(f"model: {MODEL_DESCRIPTIONS[model_kind]}")
            print(f"softphone: {url}  (open it in a browser; Ctrl-C stops)", flush=True)
            stop = asyncio.Event()
            for signal_number in (signal.SIGINT, signal.SIGTERM):
                asyncio.get_running_loop().add_signal_handler(signal_number, stop.set)
            await stop.wait()
            print("stopping the softphone and the local stack")
    except TimeoutError:
        hint = " (check OPENAI_API_KEY)" if options.model == "openai" else ""
        raise SystemExit(f"the model did not render the greeting within 30 s{hint}") from None
    except OSError as error:
        raise SystemExit(f"cannot listen on 127.0.0.1:{port}: {error.strerror} (try --port 0)") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8765, help="the page's port on 127.0.0.1 (0: any free one)")
    parser.add_argument(
        "--profile",
        type=Path,
        default=DEFAULT_PROFILES_DIR / "example.toml",
        help="the receptionist profile the page's calls reach (a profiles/<id>.toml file)",
    )
    parser.add_argument("--model", choices=["auto", "openai", "spoken", "scripted"], default="auto")
    args = parser.parse_args(argv)
    model = chosen_model(args.model)
    try:
        options = stack_options(args.profile, model)
    except (ProfileError, FileNotFoundError) as error:
        raise SystemExit(f"profile {args.profile}: {error}") from None
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C while the stack is still starting
        asyncio.run(run(options, port=args.port, profile=args.profile.stem))
    return 0


if __name__ == "__main__":
    sys.exit(main())
