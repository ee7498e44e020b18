"""Follow Genesis topics over WebSocket and resume after a reconnect (pip install websockets).

GENESIS_TOKEN=... python push_websocket.py anomalies.BTC/USD backtests
"""

import asyncio
import json
import os
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

URL = os.environ.get("GENESIS_WS_URL", "ws://127.0.0.1:8000/ws")
TOKEN = os.environ["GENESIS_TOKEN"]
TOPICS = sys.argv[1:] or ["anomalies.BTC/USD"]
LIMIT = int(os.environ.get("GENESIS_EXAMPLE_LIMIT", "0"))  # stop after this many messages; 0 = never


async def main() -> None:
    last: dict[str, str] = {}  # topic -> id of the last message handled: where to resume
    handled = 0
    while True:
        try:
            async with connect(URL, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
                for topic in TOPICS:
                    since = {"since": last[topic]} if topic in last else {}
                    await ws.send(json.dumps({"type": "subscribe", "topic": topic, **since}))
                async for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "error":
                        print("refused:", message["detail"], file=sys.stderr)
                    if "seq" not in message:  # subscribed, heartbeat, pong, error
                        continue
                    if message["type"] == "gap":  # missed messages, said out loud: fetch them over REST
                        print("gap:", json.dumps(message["data"]), file=sys.stderr)
                    else:
                        print(json.dumps(message), flush=True)
                    last[message["topic"]] = message["id"]
                    handled += 1
                    if LIMIT and handled >= LIMIT:
                        return
        except ConnectionClosed as closed:
            if closed.rcvd is not None and closed.rcvd.code == 1008:  # refused or revoked: a new token is needed
                sys.exit(f"closed: {closed.rcvd.reason}")
        except OSError:
            pass
        await asyncio.sleep(1)  # the server restarted or the network broke: reconnect and resume


asyncio.run(main())
