import pytest
import torch

from scan_server.device import choose_device
from scan_server.errors import ParameterError


def test_auto_and_cpu():
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_bad_device_names_are_refused():
    with pytest.raises(ParameterError, match="unknown device"):
        choose_device("tpu-9000")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_an_error_not_a_fallback():
    with pytest.raises(ParameterError, match="CUDA is not available"):
        choose_device("cuda")


def test_thread_count_is_set_per_thread_and_defaults_to_the_environment(monkeypatch):
    import threading

    from scan_server.device import configure_threads

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    seen: list[int] = []

    def worker() -> None:
        seen.append(configure_threads(0))
        seen.append(torch.get_num_threads())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [1, 1] and torch.get_num_threads() == before    # the caller's count is its own
    with pytest.raises(ParameterError):
        configure_threads(-1)
