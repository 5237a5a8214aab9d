"""What the receiver says when the API server does not answer: one line, never a traceback."""

from __future__ import annotations

import socket
import threading

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from receiver.jobapi import ApiUnavailable, JobApi, _unavailable, job_selector


def test_a_transport_error_wrapped_as_status_0_is_one_line() -> None:
    exc = ApiException(status=0, reason="SSLError\nEOF occurred in violation of protocol")
    reason = str(_unavailable(exc))
    assert reason == "API server unreachable: SSLError"


def test_an_answered_status_keeps_its_reason_on_one_line() -> None:
    reason = str(_unavailable(ApiException(status=500, reason="Internal\nServer Error")))
    assert reason == "API server answered 500 Internal Server Error"
    forbidden = str(_unavailable(ApiException(status=403, reason="Forbidden")))
    assert forbidden.startswith("API server answered 403 Forbidden (the receiver's Role")


def test_a_list_cut_off_midway_is_unavailable_not_a_traceback() -> None:
    # An API server that starts a large chunked answer and drops the connection midway (its
    # own timeout on a list of thousands of Jobs does this): the receiver says unavailable.
    with socket.create_server(("127.0.0.1", 0)) as server:

        def answer_half() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                    b'20\r\n{"kind":"JobList","items":[{"me\r\n'
                )

        thread = threading.Thread(target=answer_half, daemon=True)
        thread.start()
        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{server.getsockname()[1]}"
        configuration.retries = False
        jobs = JobApi(client.ApiClient(configuration), "hooksync", timeout=(2, 5))
        with pytest.raises(ApiUnavailable) as raised:
            jobs.list_jobs(job_selector())
        thread.join(timeout=5)
    assert str(raised.value) == "API server unreachable: ProtocolError"
