"""The recommendation service against a real uvicorn server on 127.0.0.1 (a free port) with a real HTTP client: the
answers equal `recommend()`, events folded one by one equal the whole history, every bad request is a 4xx with a
one-line reason that changes nothing, concurrent requests are batched, and users' states survive a restart."""

from __future__ import annotations

import copy
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import hydra
import pytest
import torch
from conftest import chain_log, make_chain_datamodule

pytest.importorskip("fastapi", reason="the service needs the [serve] extra: pip install -e '.[serve]'")
httpx = pytest.importorskip("httpx", reason="the service tests need httpx (the [serve] extra)")
uvicorn = pytest.importorskip("uvicorn", reason="the service needs the [serve] extra: pip install -e '.[serve]'")

from lightning_seqrec import SeqRecModule  # noqa: E402
from lightning_seqrec.errors import CheckpointError, SeqRecError  # noqa: E402
from lightning_seqrec.hub import save_pretrained  # noqa: E402
from lightning_seqrec.serve.app import Limits, bind, create_app  # noqa: E402
from lightning_seqrec.serve.state import UserStateStore  # noqa: E402

WAIT_S = 20
STARTUP_S = 120
"""How long a `seqrec serve` process may take to import and bind: a bound, not a timing check (importing torch and
lightning took over 20 s on 2 cores shared with two trainings)."""
BACKBONES = {
    "sasrec": {"num_blocks": 1, "num_heads": 2, "max_len": 8},
    "gru4rec": {"hidden_dim": 16},
    "lru": {"num_heads": 2, "interests": "max"},  # complex recurrent state, two interests
}


@pytest.fixture(scope="module")
def dm():
    return make_chain_datamodule()


def model_for(dm, backbone: str, **extra) -> SeqRecModule:
    """A tiny module of `backbone` on the chain data's vocabulary; `extra` goes to `SeqRecModule` (an input encoder)."""
    module = SeqRecModule(
        dm.num_items,
        backbone=backbone,
        backbone_kwargs={"embedding_dim": 16, **BACKBONES[backbone]},
        embedding_dim=16,
        max_len=8,
        seed=1,
        **extra,
    )
    module.attach_data(dm)
    return module.eval()


@pytest.fixture(scope="module", params=list(BACKBONES))
def model(request, dm):
    return model_for(dm, request.param)


@contextmanager
def running(app):
    """`app` served by uvicorn on 127.0.0.1 at a free port in a thread; yields an httpx client; stops within
    WAIT_S (the lifespan's shutdown, state saving included, runs before it returns)."""
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=WAIT_S) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(WAIT_S)
        assert not thread.is_alive(), "the server did not stop"
        sock.close()


def histories(dm, count: int = 6):
    """Raw-ID histories of different lengths (1 to 8 items) from the chain log's users."""
    users = dm.split.test.history.users[:count]
    return [dm.user_history(u)[: 1 + i % 8] for i, u in enumerate(users)]


def ids(entries):
    return [e["item_id"] for e in entries]


def test_recommendations_equal_recommend(model, dm):
    with running(create_app(model, name="tiny")) as client:
        for history in histories(dm):
            for exclude in (True, False):
                answer = client.post("/recommend", json={"history": history, "k": 7, "exclude_seen": exclude})
                assert answer.status_code == 200, answer.text
                expected = model.recommend([history], k=7, exclude_seen=exclude)[0]
                assert ids(answer.json()["items"]) == ids(expected)
                got = [e["score"] for e in answer.json()["items"]]
                assert got == pytest.approx([e["score"] for e in expected], abs=1e-5)
        described = client.get("/model").json()
        assert described["num_items"] == dm.num_items and described["backbone"] == model.architecture["backbone"]
        assert described["recurrent_state"] == (model.architecture["backbone"] != "sasrec")
        assert client.get("/health").json()["status"] == "ok"


def test_events_one_by_one_equal_the_whole_history(model, dm):
    with running(create_app(model)) as client:
        for user, history in enumerate(histories(dm, 3)):
            for n, item in enumerate(history, start=1):
                event = client.post(f"/users/u{user}/events", json={"item_id": item})
                assert event.status_code == 200 and event.json()["events"] == n, event.text
                incremental = client.get(f"/users/u{user}/recommend", params={"k": 5}).json()["items"]
                whole = client.post("/recommend", json={"history": history[:n], "k": 5}).json()["items"]
                assert ids(incremental) == ids(whole)
                assert [e["score"] for e in incremental] == pytest.approx([e["score"] for e in whole], abs=1e-5)


def test_bad_requests_are_one_line_4xx_and_change_nothing(dm):
    model = model_for(dm, "gru4rec")
    item = dm.vocab.raw_ids[0]
    limits = Limits(max_body_bytes=2048, max_history=20, max_k=50, max_user_id=16)
    with running(create_app(model, limits=limits)) as client:
        assert client.post("/users/alice/events", json={"item_id": item}).status_code == 200
        before = client.get("/users/alice/recommend").json()
        cases = [
            (client.post("/recommend", json={"history": [item, "no-such-item"]}), 422, "vocabulary"),
            (client.post("/recommend", json={"history": []}), 422, "empty"),
            (client.post("/recommend", json={"history": [item] * 21}), 413, "at most 20"),
            (
                client.post("/recommend", content=b'{"history": [1,', headers={"content-type": "application/json"}),
                400,
                "not valid JSON",
            ),
            (
                client.post("/recommend", content=b"x" * 3000, headers={"content-type": "application/json"}),
                413,
                "over 2048 bytes",
            ),
            (client.post("/recommend", json={"history": [item], "k": 0}), 422, "k=0"),
            (client.post("/recommend", json={"history": [item], "k": 51}), 422, "k=51"),
            (client.post("/recommend", json={"history": [item], "k": "ten"}), 422, "k:"),
            (client.post("/recommend", json={"history": [item], "colour": "red"}), 422, "colour"),
            (client.post("/recommend", json={"history": [item], "timestamps": [1, 2]}), 422, "timestamps"),
            (client.post("/recommend", json={"history": [item], "unknown": "maybe"}), 422, "unknown"),
            (client.post("/recommend", json={"history": [item], "explain": True}), 422, "explanations"),
            (client.post("/users/alice/events", json={"item_id": "no-such-item"}), 422, "vocabulary"),
            (client.post("/users/alice/events", json={"item": item}), 422, "item_id"),
            (client.post(f"/users/{'x' * 17}/events", json={"item_id": item}), 422, "user IDs"),
            (client.get("/users/bob/recommend"), 404, "no events"),
        ]
        for answer, status, needle in cases:
            assert answer.status_code == status, (needle, answer.text)
            detail = answer.json()["detail"]
            assert isinstance(detail, str) and "\n" not in detail and needle in detail, (needle, detail)
        assert client.get("/users/alice/recommend").json() == before
        assert client.get("/health").json()["users"] == 1

        skipped = client.post("/recommend", json={"history": [item, "no-such-item"], "unknown": "skip"}).json()
        assert skipped["skipped"] == ["no-such-item"]
        assert ids(skipped["items"]) == ids(model.recommend([[item]])[0])


def test_a_request_past_its_timeout_is_504_and_applies_nothing(dm):
    model = model_for(dm, "gru4rec")
    app = create_app(model, limits=Limits(timeout_s=0.3))
    release = threading.Event()
    with running(app) as client:
        app.state.service.worker.submit(release.wait, WAIT_S)  # the worker is busy past the timeout
        late = client.post("/users/carol/events", json={"item_id": dm.vocab.raw_ids[0]})
        slow = client.post("/recommend", json={"history": [dm.vocab.raw_ids[0]]})
        release.set()
        assert late.status_code == 504 and "nothing was changed" in late.json()["detail"]
        assert slow.status_code == 504
        assert client.get("/users/carol/recommend").status_code == 404


def test_concurrent_requests_are_answered_together_and_right(dm):
    model = model_for(dm, "sasrec")
    app = create_app(model)
    service, release = app.state.service, threading.Event()
    cases = histories(dm, 8)
    expected = [ids(model.recommend([h], k=5)[0]) for h in cases]
    with running(app) as client, ThreadPoolExecutor(8) as pool:
        service.worker.submit(release.wait, WAIT_S)  # hold the worker until all eight are queued
        before, received = service.batcher.batches, service.batcher.queries
        answers = [pool.submit(client.post, "/recommend", json={"history": h, "k": 5}) for h in cases]
        deadline = time.monotonic() + WAIT_S
        # every request has reached the batcher (queued, or taken by a first batch that waits for the worker)
        while service.batcher.queries - received < len(cases) and time.monotonic() < deadline:
            time.sleep(0.01)
        release.set()
        got = [ids(a.result(timeout=WAIT_S).json()["items"]) for a in answers]
        assert got == expected
        assert service.batcher.batches - before <= 2  # eight requests, at most two encoder passes
        more = list(pool.map(lambda h: client.post("/recommend", json={"history": h, "k": 5}), cases * 4))
        assert [ids(a.json()["items"]) for a in more] == expected * 4


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_states_survive_a_restart_and_the_store_is_bounded(dm, tmp_path, backbone):
    model = model_for(dm, backbone)
    state_file = tmp_path / "users.safetensors"
    users = {f"u{i}": h for i, h in enumerate(histories(dm, 3))}
    with running(create_app(model, state_file=state_file)) as client:
        for user, history in users.items():
            for item in history:
                assert client.post(f"/users/{user}/events", json={"item_id": item}).status_code == 200
        before = {user: client.get(f"/users/{user}/recommend").json() for user in users}
    assert state_file.is_file()
    restarted = create_app(copy.deepcopy(model), state_file=state_file, limits=Limits(max_users=2))  # the same weights
    with running(restarted) as client:
        assert client.get("/health").json()["users"] == 2  # the two most recently used
        assert client.get("/users/u0/recommend").status_code == 404
        for user in ("u1", "u2"):
            assert client.get(f"/users/{user}/recommend").json() == before[user]
        history = users["u1"]
        client.post("/users/u1/events", json={"item_id": history[0]})
        whole = client.post("/recommend", json={"history": [*history, history[0]], "k": 10}).json()["items"]
        assert ids(client.get("/users/u1/recommend").json()["items"]) == ids(whole)  # the state goes on from there


def test_a_state_file_of_another_model_or_garbage_is_refused(dm, tmp_path):
    store = UserStateStore(model_for(dm, "gru4rec"))
    store.append("a", 1, None)
    store.save(tmp_path / "users.safetensors")
    other = UserStateStore(model_for(dm, "lru"))
    with pytest.raises(CheckpointError):
        other.load(tmp_path / "users.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x80\x04not a state file")
    with pytest.raises(CheckpointError):
        store.load(tmp_path / "junk.safetensors")
    assert len(other) == 0 and len(store) == 1


def test_seqrec_serve_starts_answers_and_stops_on_sigterm(dm, tmp_path):
    folder = tmp_path / "hub"
    save_pretrained(model_for(dm, "gru4rec"), folder)
    command = [sys.executable, "-m", "lightning_seqrec.cli", "serve", f"model=local-dir:{folder}", "port=0"]
    command.append(f"state_file={tmp_path / 'users.safetensors'}")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True).start()
        line = ""
        while not line.startswith("serving "):  # printed once the socket listens (after the log lines)
            line = lines.get(timeout=STARTUP_S)
        assert line.startswith("serving local-dir:"), line
        url = line.split(" on ")[1].strip()
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=WAIT_S) as client:
            deadline = time.monotonic() + WAIT_S
            while True:
                try:
                    assert client.get("/health").json()["status"] == "ok"
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            assert client.post("/users/x/events", json={"item_id": dm.vocab.raw_ids[0]}).status_code == 200
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=WAIT_S)
        # uvicorn shuts down gracefully (the lifespan writes the states), then re-raises SIGTERM as its exit status
        assert process.returncode in (0, -signal.SIGTERM) and (tmp_path / "users.safetensors").is_file()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=WAIT_S)


def test_a_model_that_reads_time_gets_timestamps_through_every_path(dm):
    module = model_for(dm, "gru4rec", input_encoder="dual_time", input_encoder_kwargs={"embedding_dim": 16})
    user = dm.split.test.history.users[0]
    history, times = dm.user_history(user)[:6], dm.user_times(user)[:6]
    with running(create_app(module)) as client:
        untimed = client.post("/recommend", json={"history": history})
        assert untimed.status_code == 422 and "timestamps" in untimed.json()["detail"]
        assert client.post("/users/t/events", json={"item_id": history[0]}).status_code == 422
        answer = client.post("/recommend", json={"history": history, "timestamps": times, "k": 5}).json()["items"]
        assert ids(answer) == ids(module.recommend([history], k=5, timestamps=[times])[0])
        for item, time_ in zip(history, times, strict=True):
            assert client.post("/users/t/events", json={"item_id": item, "timestamp": time_}).status_code == 200
        assert ids(client.get("/users/t/recommend", params={"k": 5}).json()["items"]) == ids(answer)
        assert client.get("/model").json()["uses_time"] is True


def test_explain_passes_through_to_the_attached_explainer(dm):
    from lightning_seqrec.explain import Explainer

    module = model_for(dm, "gru4rec")
    module.explainer = Explainer(module, dm.item_attributes()).fit(dm)
    history = histories(dm, 3)[2]
    with running(create_app(module)) as client:
        answer = client.post("/recommend", json={"history": history, "k": 3, "explain": True})
        assert answer.status_code == 200, answer.text
        expected = json.loads(json.dumps(module.recommend([history], k=3, explain=True)[0]))
        assert answer.json()["items"] == expected and all("explanation" in e for e in expected)


def test_seqrec_serve_explain_fits_an_explainer_on_the_models_data(tmp_path):
    from lightning_seqrec import cli, run

    sequences = tmp_path / "sequences.txt"
    log = chain_log()
    sequences.write_text(
        "".join(f"{i} {' '.join(map(str, g.item))}\n" for i, (_, g) in enumerate(log.groupby("user", sort=False)))
    )
    data = ["data=sequence_file", f"data.path={sequences}", "data.max_len=8"]
    cfg = run.compose("train", data)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("fit")
    torch.manual_seed(0)  # an untrained model: its weights decide whether any history item raises a score
    save_pretrained(model_for(datamodule, "gru4rec"), tmp_path / "hub")
    model = [f"model_spec=local-dir:{tmp_path / 'hub'}"]
    with pytest.raises(SeqRecError, match="does not record its data; pass data="):
        cli.service_app(run.compose("serve", [*model, "explain=true"]))
    history = datamodule.user_history(datamodule.split.test.history.users[0])
    with running(cli.service_app(run.compose("serve", [*model, "explain=true", *data]))) as client:
        answer = client.post("/recommend", json={"history": history, "k": 3, "explain": True})
        assert answer.status_code == 200, answer.text
        entries = answer.json()["items"]
        cited = [{str(name) for name, _ in e["explanation"]["because_you_interacted_with"]} for e in entries]
        assert len(cited) == 3 and all(names and names <= {str(i) for i in history} for names in cited)
