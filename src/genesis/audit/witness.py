"""A witness of a remote Genesis trail: poll its signed tree head, prove it extends the last one trusted.

``genesis audit monitor`` runs :func:`observe` on a schedule (or once, from cron). Each round it
fetches the latest signed head (``GET /audit/checkpoint``), verifies its signature with the log
key it was given out of band, asks the server for a consistency proof from the head it trusted
last (``GET /audit/proofs/consistency``) and checks it (RFC 9162). Only then does it keep the new
head (an atomic write of the state file). What it refuses, it keeps as evidence next to the
state (both signed heads and the proof): two signed heads that are not one tree prove the log
misbehaved.

* a head smaller than the trusted one: ``rollback``;
* the same size with another root, or a proof that does not verify: ``split_view`` (a fork:
  someone is shown another history);
* a head whose signature does not verify, or another log's: ``bad_signature``;
* the server cannot be reached or answers nonsense: ``unavailable`` (nothing is concluded).

:class:`RemoteLog` is the small HTTP client (``urllib``, no dependency) the monitor and
``genesis audit verify --url`` use. It authenticates with a bearer token, or with a machine
client's credentials (OAuth2 client-credentials grant) that it renews when refused; secrets never
appear in its messages.

Standard library and ``cryptography`` only, like the rest of the offline verifier.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal

from genesis.audit.merkle import ProofError
from genesis.audit.note import NoteError, NoteVerifier, SignedCheckpoint, open_checkpoint, parse_vkey
from genesis.audit.verifier import check_consistency

STATE_FORMAT: Final = "genesis-audit-witness/1"
MAX_NOTE_BYTES: Final = 64 * 1024
MAX_JSON_BYTES: Final = 1 << 20

Kind = Literal["trusted", "unchanged", "advanced", "rollback", "split_view", "bad_signature", "unavailable"]
FAILURES: Final = ("rollback", "split_view", "bad_signature")


class RemoteError(Exception):
    """The server could not be reached, refused the request, or answered something unreadable."""


class RemoteLog:
    """The tree endpoints of a Genesis server (``docs/audit-format.md`` section 12)."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token = token
        self._client = (client_id, client_secret) if client_id and client_secret else None

    # --- requests ----------------------------------------------------------------------------
    def _login(self) -> None:
        assert self._client is not None
        body = urllib.parse.urlencode({"grant_type": "client_credentials"}).encode()
        basic = base64.b64encode(
            f"{urllib.parse.quote(self._client[0])}:{urllib.parse.quote(self._client[1] or '')}".encode()
        ).decode()
        request = urllib.request.Request(  # noqa: S310 - the scheme was checked in __init__
            f"{self.base_url}/token", data=body, method="POST",
            headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                token = json.loads(response.read(MAX_JSON_BYTES)).get("access_token")
        except urllib.error.HTTPError as exc:
            raise RemoteError(f"the server refused the client credentials (HTTP {exc.code})") from None
        except (urllib.error.URLError, OSError, ValueError, AttributeError) as exc:
            raise RemoteError(f"cannot log in at {self.base_url}: {type(exc).__name__}") from None
        if not isinstance(token, str):
            raise RemoteError("the token response holds no access_token")
        self._token = token

    def _open(self, path: str, params: dict[str, Any] | None = None) -> Any:
        url = f"{self.base_url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        if self._token is None and self._client is not None:
            self._login()
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
            request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked in __init__
            try:
                return urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 1 and self._client is not None:
                    exc.close()
                    self._login()  # the access token expired: renew it once
                    continue
                detail = _problem_detail(exc)
                exc.close()
                raise RemoteError(f"GET {path} answered HTTP {exc.code}{detail}") from None
            except (urllib.error.URLError, OSError) as exc:
                raise RemoteError(f"cannot reach {self.base_url}: {type(exc).__name__}") from None
        raise RemoteError(f"GET {path} was refused twice")  # pragma: no cover - the loop returns or raises

    def _get(self, path: str, params: dict[str, Any] | None = None, limit: int = MAX_JSON_BYTES) -> bytes:
        with self._open(path, params) as response:
            data: bytes = response.read(limit + 1)
        if len(data) > limit:
            raise RemoteError(f"GET {path} answered more than {limit} bytes")
        return data

    def _json(self, path: str, params: dict[str, Any]) -> Any:
        try:
            return json.loads(self._get(path, params))
        except ValueError:
            raise RemoteError(f"GET {path} did not answer JSON") from None

    # --- the log --------------------------------------------------------------------------------
    def checkpoint(self) -> str:
        """The latest signed tree head, as the server sends it (unverified)."""
        data = self._get("/audit/checkpoint", limit=MAX_NOTE_BYTES)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise RemoteError("the checkpoint is not UTF-8 text") from None

    def consistency(self, first: int, second: int) -> list[bytes]:
        """The consistency proof between two sizes, as the server sends it (unverified)."""
        body = self._json("/audit/proofs/consistency", {"first": first, "second": second})
        return _hashes(body.get("consistency") if isinstance(body, dict) else None, "consistency")

    def inclusion(self, seq: int, tree_size: int) -> tuple[dict[str, Any], list[bytes]]:
        """The event with ``seq`` and its inclusion proof in the tree of ``tree_size`` events (unverified)."""
        body = self._json("/audit/proofs/inclusion", {"seq": seq, "tree_size": tree_size})
        if not isinstance(body, dict):
            raise RemoteError("the inclusion proof is not a JSON object")
        return body, _hashes(body.get("audit_path"), "audit_path")

    def download_export(self, target: IO[bytes]) -> None:
        """Stream the whole NDJSON export into ``target``."""
        with self._open("/audit/export", {"format": "ndjson"}) as response:
            shutil.copyfileobj(response, target, 1 << 20)


def _problem_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read(MAX_JSON_BYTES))
    except (ValueError, OSError):
        return ""
    detail = body.get("detail") if isinstance(body, dict) else None
    return f": {str(detail)[:200]}" if detail else ""


def _hashes(value: Any, name: str) -> list[bytes]:
    if not isinstance(value, list) or len(value) > 128:
        raise RemoteError(f"{name} is not a list of hashes")
    out = []
    for item in value:
        try:
            raw = base64.b64decode(item, validate=True) if isinstance(item, str) else b""
        except binascii.Error:
            raw = b""
        if len(raw) != 32 or base64.b64encode(raw).decode() != item:
            raise RemoteError(f"{name} holds something that is not a base64 SHA-256 hash")
        out.append(raw)
    return out


# --- the monitor ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observation:
    """The outcome of one round: what was seen and whether it is trusted now."""

    kind: Kind
    detail: str
    trusted: SignedCheckpoint | None
    """The head trusted after this round (the previous one when the new one was refused)."""
    seen: str | None = None
    """The head the server sent (its note), when there was one."""
    evidence: Path | None = None

    @property
    def failed(self) -> bool:
        return self.kind in FAILURES


@dataclass(frozen=True, slots=True)
class State:
    """What a witness keeps between rounds: the log key and the last head it trusted."""

    vkey: str
    checkpoint: str | None


def load_state(path: Path) -> State | None:
    """The state file's content (None when there is none yet).

    Raises:
        ValueError: the file is not a witness state.
    """
    try:
        raw = Path(path).read_text("utf-8")
    except FileNotFoundError:
        return None
    try:
        obj = json.loads(raw)
    except ValueError:
        raise ValueError(f"{path} is not a witness state file") from None
    if not isinstance(obj, dict) or obj.get("format") != STATE_FORMAT or not isinstance(obj.get("vkey"), str):
        raise ValueError(f"{path} is not a witness state file ({STATE_FORMAT})")
    note = obj.get("checkpoint")
    return State(obj["vkey"], note if isinstance(note, str) else None)


def save_state(path: Path, state: State) -> None:
    """Write the state atomically (temporary file, fsync, rename): a crash never leaves half a state."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    data = json.dumps({"format": STATE_FORMAT, "vkey": state.vkey, "checkpoint": state.checkpoint,
                       "saved_at": int(time.time())}, indent=1) + "\n"  # fmt: skip
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _evidence(state_path: Path, kind: str, trusted: str | None, seen: str, proof: Sequence[bytes] | None) -> Path:
    """Keep what proves the misbehaviour next to the state: both signed heads and the proof offered."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = Path(state_path).with_name(f"{Path(state_path).name}.evidence-{kind}-{stamp}-{secrets.token_hex(2)}.txt")
    parts = [f"# {kind}\n", "# trusted head:\n", trusted or "(none)\n", "# head served:\n", seen]
    if proof is not None:
        parts += ["# consistency proof served (base64):\n", *(base64.b64encode(h).decode() + "\n" for h in proof)]
    path.write_text("".join(parts), "utf-8")
    return path


def observe(remote: RemoteLog, state_path: Path, *, vkey: str | None = None, origin: str | None = None) -> Observation:
    """One round of the witness: fetch, verify, prove consistency with the trusted head, keep the new one.

    Args:
        remote: the server.
        state_path: where the trusted head is kept between rounds (created on the first round).
        vkey: the log key (required the first time; afterwards it must equal the one in the state).
        origin: the log's origin (default: the key's name).

    Raises:
        ValueError: no key, a key that differs from the state's, or a state file that is not one.
    """
    state = load_state(state_path)
    if state is not None and vkey is not None and vkey.strip() != state.vkey:
        raise ValueError("the key given is not the one this state file trusts (use a new state file for another log)")
    key_text = vkey.strip() if vkey is not None else (state.vkey if state is not None else None)
    if key_text is None:
        raise ValueError("the first round needs the log key (--key VKEY, from `genesis audit public-key --vkey`)")
    try:
        key: NoteVerifier = parse_vkey(key_text)
    except NoteError as exc:
        raise ValueError(f"the log key is not a valid vkey: {exc}") from None
    trusted = open_checkpoint(state.checkpoint, key, origin=origin) if state and state.checkpoint else None
    try:
        note = remote.checkpoint()
    except RemoteError as exc:
        return Observation("unavailable", str(exc), trusted)
    try:
        seen = open_checkpoint(note, key, origin=origin)
    except NoteError as exc:
        evidence = _evidence(state_path, "bad_signature", trusted.note if trusted else None, note, None)
        return Observation("bad_signature", f"the head served does not verify: {exc}", trusted, note, evidence)
    if trusted is None:
        save_state(state_path, State(key_text, seen.note))
        return Observation("trusted", f"first head trusted: size {seen.size}", seen, note)
    if seen.size < trusted.size:
        evidence = _evidence(state_path, "rollback", trusted.note, note, None)
        return Observation("rollback", f"the server's head has size {seen.size}, smaller than the trusted "
                                       f"{trusted.size}", trusted, note, evidence)  # fmt: skip
    if seen.size == trusted.size:
        if seen.root != trusted.root:
            evidence = _evidence(state_path, "split_view", trusted.note, note, None)
            return Observation("split_view", f"two signed roots for size {seen.size}", trusted, note, evidence)
        return Observation("unchanged", f"size {seen.size}", trusted, note)
    try:
        proof = remote.consistency(trusted.size, seen.size)
    except RemoteError as exc:
        return Observation("unavailable", str(exc), trusted, note)
    try:
        check_consistency(trusted, seen, proof)
    except ProofError as exc:
        evidence = _evidence(state_path, "split_view", trusted.note, note, proof)
        return Observation("split_view", f"the head of size {seen.size} does not extend the trusted one of size "
                                         f"{trusted.size}: {exc}", trusted, note, evidence)  # fmt: skip
    save_state(state_path, State(key_text, seen.note))
    return Observation("advanced", f"size {trusted.size} -> {seen.size}", seen, note)
