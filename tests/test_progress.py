import io

from tfsr.progress import step_bar


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_step_bar_refreshes_once_a_minute_in_a_log_file(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with step_bar(10, "run", initial=3) as bar:
        assert (bar.mininterval, bar.n, bar.total, bar.unit) == (60.0, 3, 10, "step")


def test_step_bar_refreshes_every_second_on_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stderr", _Terminal())
    with step_bar(10, "run") as bar:
        assert bar.mininterval == 1.0


def test_disabled_step_bar_writes_nothing(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    with step_bar(10, "run", enabled=False) as bar:
        bar.update(2)
        bar.set_postfix(loss="0.1")
    assert stream.getvalue() == ""
