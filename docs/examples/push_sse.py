"""Follow Genesis topics over Server-Sent Events and resume after a reconnect (pip install httpx httpx-sse).

GENESIS_TOKEN=... python push_sse.py anomalies.BTC/USD audit
"""

import json
import os
import sys
import time

import httpx
from httpx_sse import connect_sse

BASE = os.environ.get("GENESIS_URL", "http://127.0.0.1:8000")
TOKEN = os.environ["GENESIS_TOKEN"]
TOPICS = sys.argv[1:] or ["anomalies.BTC/USD"]
LIMIT = int(os.environ.get("GENESIS_EXAMPLE_LIMIT", "0"))  # stop after this many messages; 0 = never


def main() -> None:
    last_id = None  # the id of the last event: a cursor with every topic's position
    handled = 0
    with httpx.Client(timeout=httpx.Timeout(10, read=60)) as client:  # heartbeats come every 15 s
        while True:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            if last_id:
                headers["Last-Event-ID"] = last_id
            try:
                with connect_sse(client, "GET", f"{BASE}/stream", params={"topics": ",".join(TOPICS)},
                                 headers=headers) as source:
                    if source.response.status_code != 200:
                        sys.exit(f"refused: {source.response.read().decode()}")
                    for event in source.iter_sse():
                        if not event.data:  # the reconnection delay the server suggests (retry:)
                            continue
                        if event.event == "close":  # token revoked or expired: log in again
                            sys.exit(f"closed: {event.data}")
                        message = json.loads(event.data)
                        print(json.dumps(message), flush=True)
                        last_id = event.id
                        handled += 1
                        if LIMIT and handled >= LIMIT:
                            return
            except httpx.TransportError:
                time.sleep(1)  # reconnect and resume from last_id


main()
