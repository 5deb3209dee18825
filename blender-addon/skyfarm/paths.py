"""Where the daemon keeps its state, and how to read its address and token.

Must resolve exactly like the daemon: SKYFARM_HOME, else $XDG_STATE_HOME/skyfarm, else
~/.local/state/skyfarm. No bpy here so plain Python tests can use it.
"""

import json
import os
from dataclasses import dataclass
from typing import Mapping, Optional

try:  # imported here, on the main thread: the network thread imports nothing (connection.py)
    import sqlite3
except ImportError:  # a Python built without it: daemon.json alone decides, as before
    sqlite3 = None


class DaemonNotRunning(Exception):
    """daemon.json is absent or unreadable: nothing to connect to."""


class DaemonInfoInvalid(Exception):
    """daemon.json or the token file exists but does not hold what the daemon writes."""


@dataclass(frozen=True)
class DaemonEndpoint:
    state_dir: str
    port: int
    token: str
    pid: Optional[int]
    version: str


def state_dir(environ: Optional[Mapping[str, str]] = None) -> str:
    """Mirrors stateDirFromEnv in daemon/src/config/state-dir.ts, value for value."""
    env = os.environ if environ is None else environ
    if env.get("SKYFARM_HOME"):
        return env["SKYFARM_HOME"]
    xdg = env.get("XDG_STATE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "state")
    return os.path.join(xdg, "skyfarm")


def daemon_lock_held(directory: str) -> Optional[bool]:
    """Whether a live daemon holds daemon.lock, the SQLite lock it keeps for its whole life (see
    daemon/src/config/daemon-lock.ts): True, False (the daemon that wrote daemon.json has exited, e.g.
    killed), or None when that cannot be told (no lock file, another kind of file, no sqlite3)."""
    lock_path = os.path.join(directory, "daemon.lock")
    if sqlite3 is None or not os.path.isfile(lock_path):
        return None
    try:
        connection = sqlite3.connect(lock_path, timeout=0, isolation_level=None, check_same_thread=False)
    except sqlite3.Error:
        return None
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return False
    except sqlite3.OperationalError as error:
        # SQLITE_BUSY ("database is locked"): the daemon's exclusive lock.
        return True if "locked" in str(error) or "busy" in str(error) else None
    except sqlite3.Error:
        return None
    finally:
        connection.close()


def read_endpoint(directory: Optional[str] = None) -> DaemonEndpoint:
    """Reads daemon.json and token. Raises DaemonNotRunning or DaemonInfoInvalid."""
    directory = directory or state_dir()
    info_path = os.path.join(directory, "daemon.json")
    token_path = os.path.join(directory, "token")
    try:
        with open(info_path, "r", encoding="utf-8") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DaemonNotRunning(f"the skyfarm daemon is not running (no {info_path})") from None
    except OSError as error:
        raise DaemonNotRunning(f"cannot read {info_path}: {error.strerror}") from None
    try:
        info = json.loads(raw)
    except ValueError:
        # The daemon may be in the middle of writing it; the caller retries.
        raise DaemonInfoInvalid(f"{info_path} is not valid JSON") from None
    if not isinstance(info, dict):
        raise DaemonInfoInvalid(f"{info_path} is not a JSON object")
    port = info.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise DaemonInfoInvalid(f"{info_path} has no valid port")
    pid = info.get("pid")
    version = info.get("version")
    if daemon_lock_held(directory) is False:
        # Its port may belong to another program by now: never send it the token.
        raise DaemonNotRunning(f"the skyfarm daemon is not running (the one that wrote {info_path} has exited)")
    try:
        with open(token_path, "r", encoding="utf-8") as handle:
            token = handle.read().strip()
    except FileNotFoundError:
        raise DaemonInfoInvalid(f"the daemon token file {token_path} is missing") from None
    except OSError as error:
        raise DaemonInfoInvalid(f"cannot read the daemon token {token_path}: {error.strerror}") from None
    if not token or any(ch.isspace() for ch in token):
        raise DaemonInfoInvalid(f"the daemon token file {token_path} is empty or malformed")
    return DaemonEndpoint(
        state_dir=directory,
        port=port,
        token=token,
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        version=version if isinstance(version, str) else "",
    )
