"""Service settings (pydantic-settings): environment variables ``SCAN_SERVER_*`` and an
optional TOML or JSON file (``scan-server serve --config FILE``). Every field is
documented in docs/service.md; precedence: command line > environment > file > default."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any, Literal

import tomllib
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..errors import ParameterError
from ..policy import DEFAULT_MODEL

LOOPBACK_NAMES = ("localhost",)
#: the shortest token accepted, and tokens that were published (an example file's placeholder)
MIN_TOKEN_CHARS = 16
PUBLISHED_TOKENS = frozenset({"change-me-to-a-long-random-string"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServiceSettings(BaseSettings):
    """Settings of one server process."""

    model_config = SettingsConfigDict(env_prefix="SCAN_SERVER_", extra="forbid")

    host: str = Field("127.0.0.1", description="address of both endpoints; loopback unless a token is set")
    port: int = Field(8000, ge=0, le=65535, description="HTTP port (0: any free port)")
    zmq_port: int = Field(5555, ge=0, le=65535, description="ZeroMQ ROUTER port (0: any free port)")
    token: SecretStr | None = Field(None, description="bearer token required on every route but /health "
                                                      "and in every ZeroMQ header")
    models_dir: Path = Field(Path("models"), description="folder of installed models")
    model: str | None = Field(DEFAULT_MODEL, description="model folder name in models_dir, or a path; "
                                                         "empty: no model (baselines only)")
    device: str = Field("auto", description="auto, cpu or cuda[:N]")
    data_dir: Path = Field(Path("sessions"), description="session recordings and the SQLite index")
    max_sessions: int = Field(16, ge=1, description="open sessions at once")
    max_positions: int = Field(10000, ge=1, description="largest total_positions a session may ask for")
    max_object_px: int = Field(4096, ge=64, description="largest side of a session's reconstruction grid")
    max_session_bytes: int = Field(2**30, ge=2**20, description="largest session: its frames as float32 "
                                                               "(total_positions × detector_px² × 4 bytes); "
                                                               "on disk it takes about twice this until it "
                                                               "finishes, in memory about twice while open")
    max_message_bytes: int = Field(64 * 2**20, ge=1024, description="largest ZeroMQ batch message")
    max_request_bytes: int = Field(2**20, ge=1024, description="largest HTTP request body (a session spec is a "
                                                              "few kB); refused before it is read")
    idle_timeout_s: float = Field(900.0, gt=0, description="an idle open session is finished after this")
    finished_retention_s: float = Field(7 * 86400.0, ge=0, description="a finished or expired session stays "
                                                                      "queryable (and its replies replayable) "
                                                                      "across restarts for this long")
    decision_deadline_ms: float = Field(500.0, ge=0, description="reply with Halton points when a decision "
                                                               "takes longer (0: always wait)")
    rop_iterations: int = Field(5, ge=1, le=100, description="ROP iterations of a from-scratch reconstruction "
                                                             "(each step's in `scratch` mode, the first step's in "
                                                             "`warm` mode; paper: 5)")
    reconstruction: Literal["warm", "scratch"] = Field(
        "warm", description="each step's reconstruction for a strategy that looks at it: `warm` continues the "
                            "previous step's estimate (physics/incremental.py), `scratch` starts from zero over "
                            "everything acquired (the previous release)")
    warm_local_iterations: int = Field(2, ge=0, le=100, description="`warm`: passes over the new patterns alone")
    warm_global_iterations: int = Field(1, ge=0, le=100, description="`warm`: passes over everything acquired")
    batch_window_ms: float = Field(5.0, ge=0, le=1000, description="reconstructions due together run as one "
                                                                   "batched call; the first waits at most this "
                                                                   "long for the others (0: each alone)")
    compute_workers: int = Field(4, ge=1, description="decisions computed at once")
    max_viewers: int = Field(8, ge=0, le=256, description="live views (server-sent event streams) open at once")
    torch_threads: int = Field(0, ge=0, description="torch's CPU threads for every thread of the server that "
                                                    "computes (0: OMP_NUM_THREADS if set, else one per "
                                                    "core; device.configure_threads)")

    @field_validator("token")
    @classmethod
    def _token_is_a_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        secret = value.get_secret_value()
        if secret in PUBLISHED_TOKENS:
            raise ValueError("is the published example token: set your own (openssl rand -hex 16)")
        if len(secret) < MIN_TOKEN_CHARS:
            raise ValueError(f"is {len(secret)} characters; use at least {MIN_TOKEN_CHARS} (openssl rand -hex 16)")
        return value

    @field_validator("model")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    def model_folder(self) -> Path | None:
        if self.model is None:
            return None
        path = Path(self.model)
        return path if path.is_absolute() or path.parent != Path(".") else self.models_dir / self.model

    def token_value(self) -> str | None:
        return self.token.get_secret_value() if self.token is not None else None

    def check_exposure(self) -> None:
        """Refuse to listen on a non-loopback address without a token."""
        if not is_loopback(self.host) and not self.token_value():
            raise ParameterError(f"refusing to bind {self.host} without a token: set SCAN_SERVER_TOKEN "
                                 "(or token in the config file), or bind 127.0.0.1")


def read_config_file(path: Path) -> dict[str, Any]:
    """Settings from a TOML (``.toml``) or JSON file; unknown keys are an error later."""
    if not path.is_file():
        raise ParameterError(f"config file {path} does not exist")
    try:
        if path.suffix == ".toml":
            return tomllib.loads(path.read_text())
        return json.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ParameterError(f"config file {path}: cannot parse ({exc})") from exc


def load_settings(config: Path | None = None, **overrides: Any) -> ServiceSettings:
    """File values < environment < explicit overrides (``None`` overrides are ignored)."""
    from pydantic import ValidationError

    file_values = read_config_file(config) if config is not None else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        env_only = ServiceSettings()  # environment + defaults
        env_set = {k: getattr(env_only, k) for k in env_only.model_fields_set}
        return ServiceSettings(**{**file_values, **env_set, **given})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ParameterError(f"setting {where}: {first['msg']}") from exc
