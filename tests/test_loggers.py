"""W&B online or offline by WANDB_MODE and the API key, and never the reason a run fails: real runs, real W&B."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from facseg.runtime.loggers import WandbLogger, wandb_offline, wandb_reachable
from tests.helpers import FEW_CONDITIONS, TINY, run_facseg, tiny_data


@pytest.mark.parametrize(
    ("environment", "netrc", "offline"),
    [
        ({}, None, True),  # no account: offline, never a login prompt
        ({"WANDB_API_KEY": "k" * 40}, None, False),
        ({}, "machine api.wandb.ai login user password " + "k" * 40, False),  # `wandb login`
        ({"WANDB_MODE": "offline", "WANDB_API_KEY": "k" * 40}, None, True),
        ({"WANDB_MODE": "online"}, None, False),
        ({"WANDB_MODE": "dryrun"}, None, True),
    ],
)
def test_the_mode_follows_wandb_mode_then_the_api_key(monkeypatch, tmp_path, environment, netrc, offline):
    for key in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    if netrc:
        (tmp_path / "netrc").write_text(netrc + "\n")
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    assert wandb_offline() is offline


def test_an_unreachable_server_is_told_at_once(monkeypatch):
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{listening.getsockname()[1]}")
        assert wandb_reachable()
    assert not wandb_reachable(timeout=2)  # the same address, closed now


def test_checkpoint_artifacts_are_skipped_offline_rather_than_refused(tmp_path):
    """Lightning refuses log_model with offline=True; an offline run simply logs no artifact."""
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, log_model=True)
    assert logger._offline and not logger._log_model


class Refusing(BaseHTTPRequestHandler):
    """A W&B server that refuses every key."""

    def _refuse(self):
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"errors": [{"message": "invalid API key"}]}).encode())

    do_GET = do_POST = do_PUT = _refuse

    def log_message(self, *args):
        pass


@pytest.mark.slow
@pytest.mark.parametrize("server", ["unreachable", "refusing"])
def test_an_online_run_that_cannot_start_goes_on_offline(tmp_path, tiny_root, server):
    """WANDB_MODE=online with a key: a server that cannot be reached (told in 5 s) or that refuses the key (W&B's
    start fails) gives an offline run, a warning, and a finished run, not a failed or hanging one."""
    refusing = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=refusing.serve_forever, daemon=True).start()
    port = refusing.server_address[1]
    if server == "unreachable":
        refusing.shutdown()
        refusing.server_close()
    run_dir = tmp_path / "run"
    environment = {"WANDB_MODE": "online", "WANDB_API_KEY": "k" * 40, "WANDB_BASE_URL": f"http://127.0.0.1:{port}"}
    try:
        result = run_facseg(
            [*TINY, *FEW_CONDITIONS, *tiny_data(tiny_root), f"hydra.run.dir={run_dir}"],
            cwd=tmp_path,
            timeout=300,
            env=environment,
        )
    finally:
        if server == "refusing":
            refusing.shutdown()
    assert result.returncode == 0, result.stderr[-3000:]
    log = (run_dir / "run.log").read_text()
    expected = "cannot be reached" if server == "unreachable" else "could not start online"
    assert expected in log and "logging offline" in log
    assert len(list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))) == 1
    assert (run_dir / "metrics.json").is_file()
