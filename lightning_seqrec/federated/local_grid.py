"""`LocalGrid`: a Flower `Grid` that delivers each message to a `ClientApp` called in this process, one node per
market. The same ServerApp and ClientApp run on it as in the simulation and deployment engines, without Ray; a
client that raises answers with an error reply, as Flower's engines do. Used by tests and the benchmark."""

from __future__ import annotations

import time
from collections.abc import Iterable
from uuid import uuid4

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

CLIENT_ERROR = 1


class LocalGrid(Grid):
    """`num_nodes` nodes with `partition-id` 0..n-1, each with its own persistent `Context`; `sent` and `replies`
    keep every message, so tests can inspect what clients send."""

    def __init__(self, client_app: ClientApp, num_nodes: int, run_id: int = 1):
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = run_id, 0, 1
        self.client_app, self._run = client_app, Run.create_empty(run_id=run_id)
        self.contexts = {
            node: Context(
                run_id=run_id,
                node_id=node,
                node_config={"partition-id": node - 1, "num-partitions": num_nodes},
                state=RecordDict(),
                run_config={},
            )
            for node in range(1, num_nodes + 1)
        }
        self.sent: list[Message] = []
        self.replies: list[Message] = []

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        raise NotImplementedError("LocalGrid delivers synchronously: use send_and_receive.")

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        raise NotImplementedError("LocalGrid delivers synchronously: use send_and_receive.")

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """Each message's reply, in order; clients run one after another, and replies completed after `timeout`
        seconds (counted from the call) are dropped, as a late reply is by a SuperLink."""
        deadline = None if timeout is None else time.monotonic() + timeout
        replies = []
        for message in messages:
            message.metadata.__dict__["_message_id"] = uuid4().hex
            self.sent.append(message)
            try:
                reply = self.client_app(message, self.contexts[message.metadata.dst_node_id])
            except Exception as err:  # noqa: BLE001 - a failing client is a reply with an error, not a server crash
                reply = Message(Error(code=CLIENT_ERROR, reason=f"{type(err).__name__}: {err}"), reply_to=message)
            if deadline is None or time.monotonic() <= deadline:
                self.replies.append(reply)
                replies.append(reply)
        return replies
