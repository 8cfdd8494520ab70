"""`make menuconfig` driven like a person would: in a real terminal (tmux).

The .config lives in a temporary directory (KCONFIG_CONFIG, which the
Makefile exports to the CLI), so the repo's own .config is never touched.
Every step waits for the text it expects on the screen, bounded in time, and
a failure shows the screen as it was.
"""

import os
import shutil
import subprocess
import time
import uuid

import pytest
import yaml

from mirror.config.kconfig import ROOT
from support.configs import QUIET_PROBES, run_mirror

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None or shutil.which("make") is None,
                                reason="needs tmux and make")

COLUMNS, LINES = 120, 40
STEP_TIMEOUT = 5.0  # seconds for any one screen to appear
EXIT_TIMEOUT = 5.0


class Terminal:
    """One tmux server of our own (its own socket), one session, one pane."""

    def __init__(self):
        self.socket = f"mirror-menuconfig-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.session = "menuconfig"
        self.socket_path = ""
        self.status_file = None
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("TMUX", "TMUX_PANE", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}

    def tmux(self, *args, check=True) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args],
                              env=self.env, capture_output=True, text=True, timeout=10,
                              check=check)

    def start(self, argv: list[str], env: dict[str, str], status_file):
        """Run argv in the pane; its exit status goes to status_file.

        tmux's own #{pane_dead_status} is not relied on: tmux 3.3a was seen
        to leave the ended program a zombie now and then, never reaped, so
        that the status never came. remain-on-exit keeps the pane (and what
        the program printed last, e.g. a traceback) after it ends; it is set
        in the same command sequence as new-session, so before the program
        can end.
        """
        self.status_file = status_file
        script = '"$@"; echo $? > "$STATUS_FILE"'
        result = self.tmux(
            "start-server", ";",
            "set-option", "-g", "remain-on-exit", "on", ";",
            "new-session", "-d", "-s", self.session, "-x", str(COLUMNS), "-y", str(LINES),
            "-c", str(ROOT),
            *(a for k, v in {**env, "STATUS_FILE": str(status_file)}.items()
              for a in ("-e", f"{k}={v}")),
            "sh", "-c", script, "sh", *argv, ";",
            "display-message", "-p", "#{socket_path}")
        self.socket_path = result.stdout.strip()

    def screen(self) -> str:
        result = self.tmux("capture-pane", "-p", "-t", self.session, "-S", "-", check=False)
        if result.returncode != 0:
            return f"(no screen: {result.stderr.strip()})"
        return "\n".join(line.rstrip() for line in result.stdout.rstrip().splitlines())

    def exit_status(self) -> int | None:
        """The program's exit status once it has ended, else None."""
        try:
            return int(self.status_file.read_text())
        except (FileNotFoundError, ValueError):  # not ended, or not written yet
            pass
        result = self.tmux("display-message", "-p", "-t", self.session, "#{pane_dead}",
                           check=False)
        if result.returncode != 0 or result.stdout.strip() == "1":
            # The shell (or the whole session) is gone. It writes the status
            # before it ends, so a status missing now will never come.
            try:
                return int(self.status_file.read_text())
            except (FileNotFoundError, ValueError):
                return -1
        return None

    def keys(self, *keys: str):
        self.tmux("send-keys", "-t", self.session, *keys)

    def type(self, text: str):
        self.tmux("send-keys", "-t", self.session, "-l", text)

    def wait_for(self, *texts: str, absent: tuple[str, ...] = (), what: str = "",
                 timeout: float = STEP_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if all(t in screen for t in texts) and not any(t in screen for t in absent):
                return screen
            status = self.exit_status()
            if status is not None or time.monotonic() > deadline:
                why = (f"menuconfig ended (status {status})" if status is not None
                       else f"no such screen after {timeout} s")
                pytest.fail(f"{what or 'waiting'}: {why}; wanted {list(texts)}"
                            f"{f' without {list(absent)}' if absent else ''}.\n"
                            f"Screen:\n{self.screen()}", pytrace=False)
            time.sleep(0.05)

    def wait_exit(self, timeout: float = EXIT_TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while (status := self.exit_status()) is None:
            if time.monotonic() > deadline:
                pytest.fail(f"menuconfig still running {timeout} s after quitting.\n"
                            f"Screen:\n{self.screen()}", pytrace=False)
            time.sleep(0.05)
        return status

    def close(self):
        self.tmux("kill-server", check=False)
        if self.socket_path.endswith(self.socket):  # tmux leaves its socket file behind
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass


@pytest.fixture
def terminal():
    term = Terminal()
    try:
        yield term
    finally:
        term.close()


def test_menuconfig_sets_port_and_extra_vars_follow(tmp_path, terminal):
    repo_config = ROOT / ".config"
    repo_config_before = repo_config.read_bytes() if repo_config.exists() else None
    config = tmp_path / ".config"
    run_mirror("config", "defconfig", "default", config=config, env=QUIET_PROBES)
    assert "CONFIG_DOCKER_MIRROR_PORT=5000\n" in config.read_text()

    # make from the repo root, as a person runs it; TERM set inside the pane
    # because tmux imposes its own.
    terminal.start(["env", "TERM=xterm-256color", "make", "--no-print-directory", "menuconfig"],
                   {"KCONFIG_CONFIG": str(config), **QUIET_PROBES}, tmp_path / "status")
    terminal.wait_for("Mirror options", "[/] Jump to symbol", what="main menu")

    # Jump straight to the symbol (an anchored regex, so no other symbol matches).
    terminal.type("/")
    terminal.wait_for("Jump to symbol/choice/menu/comment", what="jump dialog")
    terminal.type("^DOCKER_MIRROR_PORT$")
    terminal.wait_for('DOCKER_MIRROR_PORT(=5000) "Mirror port (Docker Hub)"', what="search result")
    terminal.keys("Enter")
    terminal.wait_for("(5000)  Mirror port (Docker Hub)", absent=("Jump to symbol/choice",),
                      what="Mirror options menu")

    # Edit the value: Ctrl-U clears the prefilled 5000.
    terminal.keys("Enter")
    terminal.wait_for("Mirror port (Docker Hub) (int)", "Range: 1-65535", what="port input dialog")
    terminal.keys("C-u")
    terminal.type("5123")
    terminal.keys("Enter")
    terminal.wait_for("(5123)  Mirror port (Docker Hub)", absent=("(int)",), what="edited value")

    # Save: S asks for the filename (prefilled with KCONFIG_CONFIG), then says so.
    terminal.type("S")
    terminal.wait_for("Filename to save configuration to", what="save dialog")
    terminal.keys("Enter")
    terminal.wait_for("Configuration saved to", what="save confirmation")
    terminal.keys("Enter")
    terminal.wait_for("(5123)  Mirror port (Docker Hub)", absent=("Configuration saved to",),
                      what="menu after saving")

    # Quit: nothing unsaved, so no "Save configuration?" question.
    terminal.type("Q")
    status = terminal.wait_exit()
    assert status == 0, f"make menuconfig exited {status}.\nScreen:\n{terminal.screen()}"

    text = config.read_text()
    assert "CONFIG_DOCKER_MIRROR_PORT=5123\n" in text, text

    out = tmp_path / "extra_vars.yaml"
    run_mirror("extra-vars", "--out", str(out), config=config)
    extra = yaml.safe_load(out.read_text())
    assert extra["docker_mirror_port"] == 5123, extra

    # KCONFIG_CONFIG was honoured all the way: the repo's own .config is as it was.
    assert (repo_config.read_bytes() if repo_config.exists() else None) == repo_config_before
