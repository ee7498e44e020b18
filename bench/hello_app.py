"""The anchor of the API figures: a bare FastAPI app served by the same uvicorn settings as ``genesis serve``.

``/ws`` and ``POST /broadcast`` anchor the push figures: bare WebSockets that only wait, and a broadcast of one
timestamped message to all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()
sockets: set[WebSocket] = set()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"message": "hello"}


@app.websocket("/ws")
async def idle(websocket: WebSocket) -> None:
    await websocket.accept()
    sockets.add(websocket)
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        sockets.discard(websocket)


@app.post("/broadcast")
async def broadcast() -> dict[str, int]:
    text = f'{{"time_ns": {time.time_ns()}}}'

    async def one(ws: WebSocket) -> None:
        with contextlib.suppress(Exception):
            await ws.send_text(text)

    await asyncio.gather(*(one(ws) for ws in list(sockets)))
    return {"sent": len(sockets)}


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-connections", type=int, default=2048)
    args = parser.parse_args()
    # The keyword arguments of genesis.cli.serve: uvloop and httptools come from "auto".
    uvicorn.run(
        "bench.hello_app:app", host="127.0.0.1", port=args.port, workers=args.workers, proxy_headers=False,
        server_header=False, log_config=None, timeout_keep_alive=5, limit_concurrency=args.max_connections,
        timeout_graceful_shutdown=10, ws="websockets-sansio", ws_per_message_deflate=False, ws_max_size=64 * 1024,
    )


if __name__ == "__main__":
    main()
