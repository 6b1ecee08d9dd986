"""A stop under load through a real `python run.py`: every insert the server reads is answered,
or not executed. Clients on keep-alive connections send inserts with ids; SIGTERM arrives
mid-load; then the database and what each client saw must agree."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .server_process import ServerProcess

CLIENTS = 400
IDS_PER_CLIENT = 10_000


@dataclass
class Outcomes:
    created: set[int] = field(default_factory=set)  # answered 201
    refused: set[int] = field(default_factory=set)  # answered 503: must not be stored
    failed: set[int] = field(default_factory=set)  # no answer: the connection was closed
    other: dict[int, int] = field(default_factory=dict)  # any other status


async def keep_inserting(port: int, first_id: int, outcomes: Outcomes,
                         stop: asyncio.Event, started: threading.Event) -> None:
    """One keep-alive connection sending inserts until its first unanswered request.

    Plain HTTP/1.1 on a socket, so that the clients keep up with the server: a stop then
    finds requests arriving on connections that hypercorn counts as idle.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for info_id in range(first_id, first_id + IDS_PER_CLIENT):
            if stop.is_set():
                return
            body = json.dumps({"id": info_id, "name": "t", "money": "1.00"}).encode()
            writer.write(b"POST /api/info HTTP/1.1\r\nHost: test\r\n"
                         b"Content-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            try:
                status, headers = await read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError, ValueError):
                outcomes.failed.add(info_id)
                return
            started.set()
            if status == 201:
                outcomes.created.add(info_id)
            elif status == 503:
                outcomes.refused.add(info_id)
                assert int(headers["retry-after"]) >= 1
                return
            else:
                outcomes.other[info_id] = status
                return
            if headers.get("connection", "").lower() == "close":
                return
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines if line)
    await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers


def run_clients(port: int, outcomes: Outcomes, started: threading.Event,
                done: threading.Event) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        tasks = [asyncio.create_task(keep_inserting(
            port, 1 + n * IDS_PER_CLIENT, outcomes, stop, started)) for n in range(CLIENTS)]
        await asyncio.to_thread(done.wait)
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())


def stored_ids(database: Path) -> set[int]:
    with sqlite3.connect(database) as connection:
        return {row[0] for row in connection.execute("SELECT id FROM info")}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_stop_under_load_answers_every_insert_it_executes(
    tmp_path: Path, workers: str, server_flags: tuple[str, ...]
) -> None:
    database = tmp_path / "stop.sqlite3"
    env = {"QUART_DATABASE_URL": f"sqlite:///{database}"}
    outcomes = Outcomes()
    started, done = threading.Event(), threading.Event()
    with ServerProcess(*server_flags, "--workers", workers, env=env, log_dir=tmp_path) as server:
        clients = threading.Thread(target=run_clients,
                                   args=(server.port, outcomes, started, done))
        clients.start()
        try:
            assert started.wait(20)
            while len(outcomes.created) < 300 and clients.is_alive():
                threading.Event().wait(0.02)
            assert server.stop(signal.SIGTERM) == 0, server.output()
        finally:
            done.set()
            clients.join(60)
    stored = stored_ids(database)
    assert len(outcomes.created) >= 300
    assert not outcomes.other
    assert outcomes.created <= stored, "an insert answered 201 is not in the database"
    assert not outcomes.refused & stored, "an insert refused with 503 was executed"
    lost_answers = outcomes.failed & stored
    assert not lost_answers, f"{len(lost_answers)} inserts committed, their answer dropped"
    assert stored <= outcomes.created
