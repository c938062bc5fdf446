"""The AI worker's image and audio analyses through core's routes, over the real broker and
Redis: real models on files the tests make (Pillow, espeak-ng), files too big for a message
by claim check, the refusals (415, 413, 422, 503), speech transcribed off the event loop, and a
worker killed mid-request."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from chassis.messaging import ClaimCheck
from chassis.telemetry import METRICS
from contracts import INLINE_MEDIA_MAX, MAX_MEDIA
from devstack import ROOT
from devstack.scratch import free_ports
from tests.conftest import REDIS_URL
from tests.factories import register
from tests.faults import eventually
from tests.media import (
    SPOKEN,
    form,
    image_file,
    noisy_png,
    problem_of,
    red_png,
    silence,
    spoken,
    words_heard,
)

IMAGE_ROUTE, AUDIO_ROUTE = "/api/ai/image/analyze", "/api/ai/audio/analyze"


async def send(client: Any, who: Any, route: str, field: str, data: bytes) -> Any:
    return await client.post(route, data=form(field, data), headers=who.auth)


def served(worker: Any, method: str, outcome: str = "ok") -> float:
    labels = {"service": "ai", "method": method, "outcome": outcome}
    return worker[METRICS].registry.get_sample_value("relais_rpc_requests_total", labels) or 0.0


@pytest.fixture
def redeemed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The claim keys the worker redeems."""
    keys: list[str] = []
    redeem = ClaimCheck.redeem

    async def spy(self: ClaimCheck, key: str) -> bytes:
        keys.append(key)
        return await redeem(self, key)

    monkeypatch.setattr(ClaimCheck, "redeem", spy)
    return keys


async def test_a_red_png_is_red_and_travels_in_its_message(client, make_ai_worker, redeemed):
    await make_ai_worker()
    customer = await register(client)
    response = await send(client, customer, IMAGE_ROUTE, "image", red_png())
    assert response.status == 200, await response.text()
    image = await response.json()
    assert (image["format"], image["width"], image["height"], image["mode"]) == (
        "PNG",
        64,
        48,
        "RGB",
    )
    assert image["dominant_colors"] == ["#ff0000"]
    assert len(image["phash"]) == 16 and int(image["phash"], 16) >= 0
    assert redeemed == []  # small enough for the message itself

    two_colours = Image.new("RGB", (200, 100), (0, 0, 255))
    two_colours.paste((255, 255, 0), (0, 0, 60, 100))
    response = await send(client, customer, IMAGE_ROUTE, "image", image_file(two_colours, "JPEG"))
    jpeg = await response.json()
    assert jpeg["format"] == "JPEG"
    # blue covers 70 % of it, yellow 30 %: both, most frequent first (JPEG shifts them a little)
    first, second = (bytes.fromhex(colour[1:]) for colour in jpeg["dominant_colors"][:2])
    assert first[2] > 240 and first[0] < 16 and first[1] < 16
    assert second[0] > 240 and second[1] > 240 and second[2] < 16


async def test_an_image_too_big_for_a_message_travels_by_claim_and_the_claim_is_deleted(
    client, make_ai_worker, redeemed
):
    await make_ai_worker()
    customer = await register(client)
    data = noisy_png(600)
    assert len(data) > INLINE_MEDIA_MAX
    response = await send(client, customer, IMAGE_ROUTE, "image", data)
    assert response.status == 200, await response.text()
    assert (await response.json())["width"] == 600
    assert len(redeemed) == 1
    redis = Redis.from_url(REDIS_URL)
    try:
        assert await redis.exists(redeemed[0]) == 0  # deleted once answered
    finally:
        await redis.aclose()


async def test_what_is_not_a_whole_image_is_415_and_a_bad_form_says_why(client, make_ai_worker):
    worker = await make_ai_worker()
    customer = await register(client)
    png = red_png()
    for data in (png[: len(png) // 2], b"just some text, not an image", b""):
        response = await send(client, customer, IMAGE_ROUTE, "image", data)
        assert response.status == 415, await response.text()
        problem_of(response)
        assert (await response.json())["type"].endswith("/unsupported-media-type")
    assert served(worker, "ai.image.analyze", "refused") == 3
    # not a form at all, or a form without the field
    as_json = await client.post(IMAGE_ROUTE, json={"image": "x"}, headers=customer.auth)
    assert as_json.status == 415
    problem_of(as_json)
    boundary = "b22c481170fac3f721d664d896a966b3"
    as_form = {**customer.auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    no_field = await client.post(IMAGE_ROUTE, data=f"--{boundary}--\r\n".encode(), headers=as_form)
    assert no_field.status == 422
    missing = {"field": "image", "message": "a file is required"}
    assert (await no_field.json())["errors"] == [missing]
    another = await send(client, customer, IMAGE_ROUTE, "picture", png)
    assert another.status == 422
    assert [error["field"] for error in (await another.json())["errors"]] == ["picture"]
    # a part header aiohttp cannot parse (a control character in a name): 400, not 500
    malformed = await client.post(
        IMAGE_ROUTE,
        data=(
            f'--{boundary}\r\nContent-Disposition: form-data; name="|\x14¬"\r\n\r\n[]\r\n'
            f"--{boundary}--\r\n"
        ).encode(),
        headers=as_form,
    )
    assert malformed.status == 400, await malformed.text()
    problem_of(malformed)


async def test_a_decompression_bomb_is_refused_unworked(client, make_ai_worker):
    await make_ai_worker()
    customer = await register(client)
    # 144 million one-bit pixels in 18 kB: Pillow's limit is about 89 million
    bomb = image_file(Image.new("1", (12_000, 12_000)))
    assert len(bomb) < 100_000
    response = await send(client, customer, IMAGE_ROUTE, "image", bomb)
    assert response.status == 422, await response.text()
    problem_of(response)
    assert "decompression bomb" in (await response.json())["detail"]


async def test_a_file_over_10_mib_is_413_and_reaches_no_worker(client, make_ai_worker):
    worker = await make_ai_worker()
    customer = await register(client)
    response = await send(client, customer, IMAGE_ROUTE, "image", b"\0" * (MAX_MEDIA + 1))
    assert response.status == 413
    problem_of(response)
    assert "10 MiB" in (await response.json())["detail"]
    assert served(worker, "ai.image.analyze") + served(worker, "ai.image.analyze", "refused") == 0


async def test_speech_is_measured_transcribed_and_its_sentiment_given(client, make_ai_worker):
    worker = await make_ai_worker()
    customer = await register(client)
    response = await send(client, customer, AUDIO_ROUTE, "audio", spoken())
    assert response.status == 200, await response.text()
    audio = await response.json()
    assert (audio["format"], audio["sample_rate"], audio["channels"]) == ("WAV", 22050, 1)
    assert 1.5 < audio["duration_s"] < 6
    assert -40 < audio["loudness_dbfs"] < audio["peak_dbfs"] <= 0
    assert 0 < audio["silence_ratio"] < 0.6  # espeak pauses at the start and the end
    assert words_heard(audio["transcript"]) >= 0.6, audio["transcript"]
    assert audio["language"] == "en"
    assert audio["sentiment"]["label"] == "positive"
    for audio_format in ("FLAC", "OGG"):
        response = await send(client, customer, AUDIO_ROUTE, "audio", spoken(SPOKEN, audio_format))
        assert response.status == 200, await response.text()
        assert (await response.json())["format"] == audio_format
    # silence: measured, nothing heard, no sentiment
    quiet = await (await send(client, customer, AUDIO_ROUTE, "audio", silence(2))).json()
    assert quiet["silence_ratio"] == 1 and quiet["peak_dbfs"] == -120
    assert (quiet["transcript"], quiet["sentiment"]) == ("", None)
    registry = worker[METRICS].registry
    labels = {"service": "ai", "model": "speech"}
    assert registry.get_sample_value("relais_ai_model_load_seconds", labels) > 0


async def test_what_is_not_audio_is_415_and_a_recording_over_60_s_is_422(client, make_ai_worker):
    await make_ai_worker()
    customer = await register(client)
    wav = spoken()
    for data in (b"RIFF but nothing after", wav[: len(wav) // 2], red_png()):
        response = await send(client, customer, AUDIO_ROUTE, "audio", data)
        assert response.status == 415, await response.text()
        problem_of(response)
    too_long = await send(client, customer, AUDIO_ROUTE, "audio", silence(61))
    assert too_long.status == 422
    problem_of(too_long)
    assert "60 s" in (await too_long.json())["detail"]


async def test_other_rpcs_flow_while_a_long_recording_is_transcribed(client, make_ai_worker):
    await make_ai_worker()
    customer = await register(client)
    long_speech = spoken(" ".join([SPOKEN] * 8))  # about 20 s of speech
    audio = asyncio.create_task(send(client, customer, AUDIO_ROUTE, "audio", long_speech))
    await asyncio.sleep(1.0)  # the transcription is under way in the speech process
    started = time.monotonic()
    text = await client.post(
        "/api/ai/text/analyze", json={"text": "Lovely tea."}, headers=customer.auth
    )
    answered = time.monotonic() - started
    assert text.status == 200
    assert not audio.done(), "the recording was transcribed before the text was asked"
    assert answered < 1.0
    response = await audio
    assert response.status == 200, await response.text()
    assert words_heard((await response.json())["transcript"]) >= 0.5


async def test_without_a_worker_the_media_routes_are_503_at_once(client):
    customer = await register(client)
    for route, field, data in ((IMAGE_ROUTE, "image", red_png()), (AUDIO_ROUTE, "audio", b"x")):
        started = time.monotonic()
        response = await send(client, customer, route, field, data)
        assert response.status == 503
        assert time.monotonic() - started < 1.0
        problem_of(response)


async def metric(http: aiohttp.ClientSession, port: int, name: str, **labels: str) -> float:
    """A sample of a worker process' metrics endpoint (0 if absent)."""
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


@pytest.fixture
async def two_workers(
    amqp_url: str, redis_prefix: str, database_url: str
) -> AsyncIterator[list[tuple[asyncio.subprocess.Process, int]]]:
    """Two AI worker processes sharing the request queues, each with its metrics port."""
    started = []
    for _ in range(2):
        port, metrics_port = free_ports(2)
        env = {
            **os.environ,
            "RELAIS_ENV": "test",
            "HTTP_PORT": str(port),
            "METRICS_PORT": str(metrics_port),
            "AMQP_URL": amqp_url,
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "REDIS_KEY_PREFIX": redis_prefix,
            "OTEL_SDK_DISABLED": "true",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.ai",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        started.append((process, port, metrics_port))
    try:
        async with aiohttp.ClientSession() as http:

            async def ready(port: int) -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/health/ready") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            for _, port, _ in started:
                await eventually(lambda port=port: ready(port), within=60, every=0.2)
        yield [(process, metrics_port) for process, _, metrics_port in started]
    finally:
        for process, _, _ in started:
            if process.returncode is None:
                process.terminate()
                await process.wait()


async def test_a_worker_killed_mid_request_loses_no_request(client, two_workers):
    (doomed, doomed_metrics), (survivor, survivor_metrics) = two_workers
    customer = await register(client)
    wav = spoken()
    calls = [
        asyncio.create_task(send(client, customer, AUDIO_ROUTE, "audio", wav)) for _ in range(6)
    ]
    method = {"method": "ai.audio.analyze"}
    async with aiohttp.ClientSession() as http:
        # killed once it has taken a request, before it answered any
        taken = await eventually(
            lambda: metric(http, doomed_metrics, "relais_rpc_queue_wait_seconds_count", **method),
            within=20,
            every=0.02,
        )
        answered = await metric(
            http, doomed_metrics, "relais_rpc_requests_total", outcome="ok", **method
        )
        helpers = descendants(doomed.pid)
        assert helpers, "the worker transcribes in processes of its own"
        doomed.send_signal(signal.SIGKILL)
        await doomed.wait()
        assert taken >= 1 and answered == 0
        statuses = [(await call).status for call in calls]
        assert statuses == [200] * 6
        # the survivor answered all six: those the dead one had taken were redelivered to it
        assert (
            await metric(
                http, survivor_metrics, "relais_rpc_requests_total", outcome="ok", **method
            )
            == 6
        )
    after = [
        (await send(client, customer, IMAGE_ROUTE, "image", red_png())).status for _ in range(3)
    ]
    assert after == [200] * 3
    assert survivor.returncode is None
    # the dead worker's speech processes died with it
    await eventually(lambda: not any(Path(f"/proc/{pid}").exists() for pid in helpers), within=10)


def descendants(pid: int) -> list[int]:
    """The processes under `pid`, children first."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [grand for child in map(int, children) for grand in (child, *descendants(child))]
