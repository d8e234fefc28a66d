"""The ingest API as the seed platform ran it, for `make bench`'s side-by-side rows.

FastAPI with pydantic validation of each event, the seed's two HTTP metrics through
prometheus_client, and confluent-kafka with reco's producer settings (acks=all, idempotent,
linger.ms=2), answering 202 only after the broker acknowledged every event, as reco does.
Run by scripts/bench-api.sh with 2 uvicorn workers (uvloop, httptools) against the same
embedded broker `reco up` runs:

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 uvicorn --app-dir scripts fastapi_baseline:app \
        --workers 2 --loop uvloop --http httptools --port 8001

It is a benchmark baseline, not a second implementation: no dead-letter, no trending.
"""

import asyncio
import os
import threading
import time
import uuid
from datetime import datetime
from typing import List, Literal, Optional, Union

from confluent_kafka import Producer
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, Field, field_validator, model_validator

TOPICS = {"view": "events_views", "click": "events_clicks", "rating": "events_ratings"}

REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "endpoint", "status"])
DURATION = Histogram("http_request_duration_seconds", "HTTP request duration", ["method", "endpoint"])


class Event(BaseModel):
    model_config = {"extra": "forbid", "populate_by_name": True}

    type: Literal["view", "click", "rating"]
    event_id: Optional[str] = Field(default=None, min_length=1, max_length=128)
    user_id: Union[str, int]
    item_id: Union[str, int]
    timestamp: Optional[Union[datetime, int]] = None
    session_id: Optional[str] = Field(default=None, max_length=256)
    rating: Optional[float] = Field(default=None, ge=0, le=5)

    @field_validator("user_id", "item_id")
    @classmethod
    def non_empty_id(cls, v):
        v = str(v)
        if not v.strip() or len(v.encode()) > 256:
            raise ValueError("must be 1-256 bytes, not only whitespace")
        return v

    @model_validator(mode="after")
    def rating_only_on_ratings(self):
        if (self.type == "rating") != (self.rating is not None):
            raise ValueError("rating is required for type rating and forbidden otherwise")
        return self


producer = Producer(
    {
        "bootstrap.servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 2,
    }
)


def _poll_forever():
    while True:
        producer.poll(0.05)


threading.Thread(target=_poll_forever, daemon=True).start()
app = FastAPI()


@app.middleware("http")
async def metrics(request: Request, call_next):
    started = time.perf_counter()
    response = await call_next(request)
    endpoint = request.url.path
    REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
    DURATION.labels(request.method, endpoint).observe(time.perf_counter() - started)
    return response


def _send(loop, event: Event) -> asyncio.Future:
    done = loop.create_future()

    def delivered(err, _msg):
        loop.call_soon_threadsafe(
            lambda: done.done() or (done.set_exception(RuntimeError(str(err))) if err else done.set_result(None))
        )

    body = event.model_dump_json(exclude_none=True).encode()
    producer.produce(TOPICS[event.type], key=str(event.user_id).encode(), value=body, on_delivery=delivered)
    return done


@app.post("/events", status_code=202)
async def post_events(events: Union[Event, List[Event]]):
    batch = events if isinstance(events, list) else [events]
    if not batch:
        return JSONResponse({"error": {"code": "validation_failed", "message": "empty batch"}}, status_code=422)
    now_ms = int(time.time() * 1000)
    for e in batch:
        e.event_id = e.event_id or str(uuid.uuid4())
        e.timestamp = e.timestamp or now_ms
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(asyncio.gather(*(_send(loop, e) for e in batch)), timeout=5)
    except Exception as e:  # noqa: BLE001 - any delivery failure is a 503, as in reco
        return JSONResponse({"error": {"code": "broker_unavailable", "message": str(e)}}, status_code=503)
    return {"accepted": len(batch), "event_ids": [e.event_id for e in batch]}


@app.get("/health/live")
async def live():
    return {"status": "ok"}


@app.get("/metrics")
async def prometheus_metrics():
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
