"""The front door's nginx config (backend/dev/frontdoor.py): nginx accepts it, and it says what scale mode needs."""

from __future__ import annotations

import re

import pytest

from backend.dev import frontdoor


def test_the_generated_config_passes_nginx_t(tmp_path):
    try:
        frontdoor.nginx_path()
    except RuntimeError:
        pytest.skip("nginx is not installed (make nginx)")
    conf = frontdoor.write_config(tmp_path / "nginx", 3900, [3901, 3902, 3903])
    checked = frontdoor.check_config(conf)
    assert checked.returncode == 0, checked.stderr


def test_it_balances_without_stickiness_streams_and_never_retries_a_sent_post(tmp_path):
    text = frontdoor.write_config(tmp_path, 3900, [3901, 3902], fail_timeout_s=3).read_text()
    directives = "\n".join(line.split("#")[0] for line in text.splitlines())  # comments may name what is not used
    assert "listen 127.0.0.1:3900;" in directives
    assert re.findall(r"server (\S+) max_fails=1 fail_timeout=3s;", directives) == ["127.0.0.1:3901", "127.0.0.1:3902"]
    assert not re.search(r"\b(ip_hash|hash|sticky)\b", directives)
    assert "proxy_buffering off;" in directives and "proxy_set_header Upgrade $http_upgrade;" in directives
    assert "proxy_set_header Connection $connection_upgrade;" in directives
    assert re.search(r"proxy_next_upstream error timeout;", directives) and "non_idempotent" not in directives
    assert f"pid {tmp_path.resolve()}/nginx.pid;" in directives  # its own files, none of a system nginx
