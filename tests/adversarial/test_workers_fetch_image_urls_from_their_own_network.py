"""Attack: send a vision request whose image_url points into the worker's own network (loopback, the LAN, a
cloud metadata service, or a name that resolves there): the worker fetches it from where it stands, and the
model describes what it found.

Workers fetch image URLs through the coordinator's checked fetch: public addresses only, the connection pinned
to the address checked, no redirects, at most max_image_bytes, within a time limit.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from gpu_worker.engines import EngineError
from gpu_worker.images import load_image
from tests.backend.agents.net import dns, recording_server  # noqa: F401  (dns: fixture)


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


async def test_a_worker_refuses_image_urls_inside_its_network(dns):
    image = png()
    with recording_server(lambda path: (200, {"content-type": "image/png"}, image)) as (port, hits):
        dns.answer("cdn.example", "127.0.0.1")
        for url in (f"http://127.0.0.1:{port}/cat.png", f"http://localhost:{port}/cat.png", f"http://cdn.example:{port}/cat.png",
                    f"http://[::ffff:127.0.0.1]:{port}/cat.png", "http://169.254.169.254/latest/meta-data/iam", "http://10.0.0.7/cat.png"):  # fmt: skip
            with pytest.raises(EngineError) as err:
                await load_image(url)
            assert err.value.code == "invalid_request" and "public" in str(err.value), (url, err.value)
        assert hits == []
