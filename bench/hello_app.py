"""The anchor of the API figures: a bare FastAPI app served by the same uvicorn settings as ``genesis serve``."""

from __future__ import annotations

import argparse

from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"message": "hello"}


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # The keyword arguments of genesis.cli.serve: uvloop and httptools come from "auto".
    uvicorn.run(
        "bench.hello_app:app", host="127.0.0.1", port=args.port, workers=args.workers, proxy_headers=False,
        server_header=False, log_config=None, timeout_keep_alive=5, limit_concurrency=2048,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
