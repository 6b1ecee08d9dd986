"""bench/'s scenarios and peers load and fit together (no servers, no wrk)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.harness.peers import PEERS, VARIANTS, Settings, UnknownPeer, peer_of  # noqa: E402
from bench.harness.places import WRK_DIR  # noqa: E402
from bench.harness.scenarios import SCENARIOS  # noqa: E402


def test_every_scenario_has_a_unique_key_and_its_script() -> None:
    keys = [scenario.key for scenario in SCENARIOS]
    assert len(keys) == len(set(keys))
    for scenario in SCENARIOS:
        assert (WRK_DIR / scenario.script).is_file(), scenario.key


def test_both_servers_have_every_kind_of_peer() -> None:
    pairs = {"quart_app": "granian", "quart-bare": "quart-bare-granian",
             "ceiling": "ceiling-granian", "quart_app-nometrics": "granian-nometrics"}
    for on_hypercorn, on_granian in pairs.items():
        hypercorn = PEERS[on_hypercorn].command(8000, Settings())
        granian = PEERS[on_granian].command(8000, Settings())
        assert "--server" not in hypercorn
        assert granian[granian.index("--server") + 1] == "granian"
        assert [a for a in hypercorn if a not in ("--server", "granian")] == \
            [a for a in granian if a not in ("--server", "granian")]


def test_a_variant_adds_its_settings_to_the_peer() -> None:
    for variant, settings in VARIANTS.items():
        peer = peer_of(f"granian@{variant}")
        assert peer.name == f"granian@{variant}"
        assert peer.env(Settings()).items() >= settings.items()
        assert peer.command(8000, Settings()) == PEERS["granian"].command(8000, Settings())
    both = peer_of("quart_app@asyncio+nometrics").env(Settings())
    assert both["QUART_METRICS"] == "false"
    assert both["QUART_HYPERCORN__WORKER_CLASS"] == '"asyncio"'


@pytest.mark.parametrize("spec", ["nobody", "quart_app@fast", "@uvloop"])
def test_an_unknown_peer_or_variant_is_refused(spec: str) -> None:
    with pytest.raises(UnknownPeer):
        peer_of(spec)


def test_the_command_lists_scenarios_and_peers() -> None:
    out = subprocess.run([sys.executable, "bench/run.py", "--list"], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    for scenario in SCENARIOS:
        assert scenario.key in out
    for name in PEERS:
        assert name in out


def test_an_unknown_peer_stops_the_command_with_one_line() -> None:
    proc = subprocess.run([sys.executable, "bench/run.py", "--peers", "quart_app,nobody"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "unknown peer 'nobody': one of " + ", ".join(PEERS))
