"""Headless Debian Chromium driven by Playwright, and a provisioned server with the web routes.

Playwright's own browser download does not work here (closed network); Debian's build at
/usr/bin/chromium does, with the flags in /work/shared/PEERS.md. Fake media comes from a tone
WAV so a test can tell the browser's audio from the far end's.
"""

from __future__ import annotations

import math
import struct
import wave
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.conftest import ServerProcess, stop_server
from tests.web_ui.helpers import provision, start_web_server

CHROMIUM = "/usr/bin/chromium"
BROWSER_TONE_HZ = 700


def write_tone(path: Path, freq: float, seconds: float = 10.0, rate: int = 48000) -> Path:
    """A mono 16-bit sine WAV for ``--use-file-for-fake-audio-capture``."""
    n = int(seconds * rate)
    frames = struct.pack(
        f"<{n}h", *(int(9000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = start_web_server(tmp_path_factory.mktemp("web-ui"))
    try:
        provision(srv)
        yield srv
    finally:
        stop_server(srv)


def chromium_args(tone: Path | None) -> list[str]:
    """Headless flags from PEERS.md; with *tone*, a fake microphone the page may use at once.

    Without *tone* the browser has no microphone grant: permission prompts are denied, as a
    user who clicked "Block" would.
    """
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-device-for-media-stream",
    ]
    if tone is None:
        return [*args, "--deny-permission-prompts"]
    return [*args, "--use-fake-ui-for-media-stream", f"--use-file-for-fake-audio-capture={tone}"]


@asynccontextmanager
async def launched(tone: Path | None) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=chromium_args(tone)
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    async with launched(write_tone(tmp_path / "browser-tone.wav", BROWSER_TONE_HZ)) as chromium:
        yield chromium


@pytest.fixture
async def browser_without_microphone() -> AsyncIterator[Browser]:
    async with launched(None) as chromium:
        yield chromium
