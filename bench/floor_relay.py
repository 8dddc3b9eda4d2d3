"""The seeds' Node relay pattern, line for line, on this relay's stack (aiohttp + uvloop + orjson): the cost floor of
a Python relay, measured beside ours and the Node relays by `make bench-load RELAYS=...,floor`.

    PORT=5070 MODEL_URL=ws://127.0.0.1:8765/v1/realtime .venv/bin/python bench/floor_relay.py

Like the seeds-style relay it has no marks, no authentication, no records and no error handling: caller media goes to
the model as `input_audio_buffer.append`, model audio deltas go to the caller as `media`. The difference between this
row and ours is what the product's own work costs per call; the difference between this row and the Node relay is
the stack's. Never a product component: it exists to be measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import aiohttp
import orjson
import uvloop
from aiohttp import web

TEXT = aiohttp.WSMsgType.TEXT
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http", aiohttp.ClientSession)


async def media_stream(request: web.Request) -> web.WebSocketResponse:
    caller = web.WebSocketResponse(decode_text=False)
    await caller.prepare(request)
    model = await request.app[HTTP].ws_connect(
        os.environ["MODEL_URL"], headers={"Authorization": "Bearer floor"}, decode_text=False
    )
    await model.send_frame(orjson.dumps({"type": "session.update", "session": {"type": "realtime"}}), TEXT)
    stream_sid: list[str] = [""]

    async def model_to_caller() -> None:
        async for message in model:
            if message.type is TEXT:
                event = orjson.loads(message.data)
                if event.get("type") == "response.output_audio.delta":
                    media = {"event": "media", "streamSid": stream_sid[0], "media": {"payload": event["delta"]}}
                    await caller.send_frame(orjson.dumps(media), TEXT)
        await caller.close()

    to_caller = asyncio.create_task(model_to_caller())
    async for message in caller:
        if message.type is TEXT:
            frame = orjson.loads(message.data)
            if frame.get("event") == "media":
                append = {"type": "input_audio_buffer.append", "audio": frame["media"]["payload"]}
                await model.send_frame(orjson.dumps(append), TEXT)
            elif frame.get("event") == "start":
                stream_sid[0] = frame["start"]["streamSid"]
    await model.close()
    to_caller.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await to_caller
    return caller


async def main() -> None:
    app = web.Application()
    app.router.add_get("/media-stream", media_stream)
    app[HTTP] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))  # no cap of 100 connections
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(os.environ["PORT"])).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main())
