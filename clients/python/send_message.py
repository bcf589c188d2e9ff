#!/usr/bin/env python3
"""Send one message to a msgrelay proxy over mutual TLS and print its id.

Standard library only (Python >= 3.8). Same flags as `msgrelay send`; see --help.
The sender number and the message body are never printed or logged.
"""

from __future__ import annotations

import argparse
import email.utils
import json
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from typing import IO, Any, Callable, Dict, List, Mapping, Optional, Sequence

__version__ = "0.2.0"

EXIT_OK = 0
EXIT_REJECTED = 2  # the relay refused the message for good: fix the request, do not just re-run
EXIT_GAVE_UP = 3  # transient failures until the retries ran out: re-run later with the same key
EXIT_USAGE = 64  # bad local arguments or files (EX_USAGE)

MAX_IDEMPOTENCY_KEY = 128
MAX_BACKOFF_SECS = 30.0
MAX_RETRY_AFTER_SECS = 300.0  # a server may ask for longer pauses than our own backoff, within reason
TRANSIENT_STATUSES = {408, 429}  # plus every 5xx

ENV = {
    "url": "MSGRELAY_URL",
    "cert": "MSGRELAY_CERT",
    "key": "MSGRELAY_KEY",
    "ca": "MSGRELAY_CA",
    "sender": "MSGRELAY_SENDER",
    "body": "MSGRELAY_BODY",
    "idempotency_key": "MSGRELAY_IDEMPOTENCY_KEY",
    "client_id": "MSGRELAY_CLIENT_ID",
    "timeout": "MSGRELAY_TIMEOUT",
    "retries": "MSGRELAY_RETRIES",
}

HINTS = {
    401: "the proxy did not accept the client certificate: check --cert/--key belong together and are not expired or revoked",
    403: "check that the certificate belongs to an enabled client, that the URL's host name is one of that client's domains, "
    "and that --client-id (if given) matches the certificate",
    404: "check --url: it must be the proxy's base URL, e.g. https://relay.example.com:8443 (the script adds /api/v1/messages)",
    413: "the message is larger than the proxy accepts (proxy.max_body_bytes)",
    415: "the proxy expected JSON; this is a bug in the client, please report it",
}

EPILOG = """\
every flag can also come from an environment variable:
  MSGRELAY_URL MSGRELAY_CERT MSGRELAY_KEY MSGRELAY_CA MSGRELAY_SENDER MSGRELAY_BODY
  MSGRELAY_IDEMPOTENCY_KEY MSGRELAY_CLIENT_ID MSGRELAY_TIMEOUT MSGRELAY_RETRIES
  (a flag on the command line wins over the variable)

example (the files come from the client bundle `msgrelay certs issue-client` wrote):
  python3 send_message.py --url https://relay.example.com:8443 \\
      --cert client.crt --key client.key --ca ca.crt \\
      --sender +15551234567 --body "Hello"
  on Windows:  py send_message.py --url https://relay.example.com:8443 --cert C:\\certs\\client.crt ...

  --body - reads the body from standard input (UTF-8; one trailing newline is dropped), which
  keeps it out of the process list:  echo Hello | python3 send_message.py ... --body -

on success only the message id is printed (standard output). Exit codes:
  0   accepted (202): the message is durably queued
  2   refused for good (4xx, or the TLS handshake was rejected): fix what the error says
  3   gave up after the retries (network, timeouts, 5xx): re-run later with the SAME
      --idempotency-key printed in the error, so the message is not sent twice
  64  bad arguments or unreadable certificate/key/CA files
"""


class UsageError(Exception):
    """A local problem the user must fix before anything is sent (exit 64)."""


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message + " (see --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _ArgumentParser(
        prog="send_message.py",
        description="Send one message to a msgrelay proxy over mutual TLS; prints the message id.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--url", help="proxy base URL, e.g. https://relay.example.com:8443 [MSGRELAY_URL]")
    p.add_argument(
        "--cert",
        help="client certificate, PEM (client.crt); may also hold the private key [MSGRELAY_CERT]",
    )
    p.add_argument(
        "--key",
        help="client private key, PEM, unencrypted (client.key); omit it when --cert holds the key [MSGRELAY_KEY]",
    )
    p.add_argument("--ca", help="CA that signed the proxy's certificate (ca.crt) [MSGRELAY_CA]")
    p.add_argument("--sender", help="sender number, E.164 like +15551234567 [MSGRELAY_SENDER]")
    p.add_argument("--body", help="message text, or - to read it from standard input [MSGRELAY_BODY]")
    p.add_argument(
        "--idempotency-key",
        help="at most 128 characters; a re-send with the same key within 24 h returns the same id "
        "instead of a second message (default: a new random UUID) [MSGRELAY_IDEMPOTENCY_KEY]",
    )
    p.add_argument(
        "--client-id",
        help="also send metadata.client_id (must match the certificate) and metadata.timestamp [MSGRELAY_CLIENT_ID]",
    )
    p.add_argument("--timeout", help="seconds per attempt (default 30) [MSGRELAY_TIMEOUT]")
    p.add_argument("--retries", help="retries after the first attempt (default 5) [MSGRELAY_RETRIES]")
    p.add_argument("--version", action="version", version="%(prog)s " + __version__)
    return p


def parse_args(argv: Sequence[str], env: Mapping[str, str], need_tls: bool = True) -> argparse.Namespace:
    """Parses flags with environment fallbacks; raises UsageError with what to do next."""
    ns = build_parser().parse_args(argv)
    for name, var in ENV.items():
        if getattr(ns, name) is None and env.get(var) not in (None, ""):
            setattr(ns, name, env[var])
    required = ["url", "sender", "body"] + (["cert", "ca"] if need_tls else [])
    missing = ["--" + n + " (or " + ENV[n] + ")" for n in required if getattr(ns, n) is None]
    if missing:
        raise UsageError("missing " + ", ".join(missing) + " (see --help for an example)")
    ns.timeout = _number(ns.timeout, "--timeout", float, 30.0, lambda v: v > 0)
    ns.retries = _number(ns.retries, "--retries", int, 5, lambda v: 0 <= v <= 100)
    if ns.idempotency_key is None:
        ns.idempotency_key = str(uuid.uuid4())
    if not 0 < len(ns.idempotency_key) <= MAX_IDEMPOTENCY_KEY or not ns.idempotency_key.isprintable():
        raise UsageError("--idempotency-key must be 1-%d printable characters" % MAX_IDEMPOTENCY_KEY)
    if not ns.idempotency_key.isascii():
        raise UsageError("--idempotency-key must be ASCII (it travels in an HTTP header)")
    ns.url = ns.url.rstrip("/")
    if need_tls and not ns.url.lower().startswith("https://"):
        raise UsageError("--url must start with https:// (the proxy only speaks mutual TLS)")
    return ns


def _number(raw: Optional[str], flag: str, kind: Callable[[str], Any], default: Any, ok: Callable[[Any], bool]) -> Any:
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise UsageError("%s: '%s' is not a valid value" % (flag, raw))
    return value


def read_body(body: str, stdin: IO[Any]) -> str:
    """`-` means standard input; a single trailing newline (as echo adds) is dropped."""
    if body != "-":
        return body
    data = stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read()
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UsageError("standard input is not UTF-8 text; save the body as UTF-8 or pass it with --body")
    if data.endswith("\r\n"):
        data = data[:-2]
    elif data.endswith("\n"):
        data = data[:-1]
    return data


def build_payload(
    sender: str, body: str, client_id: Optional[str] = None, now: Optional[datetime] = None
) -> Dict[str, Any]:
    """The JSON document of interface.md section 3; metadata only when a client id is given."""
    payload = {"sender_number": sender, "message_body": body}
    if client_id:
        now = now or datetime.now(timezone.utc)
        payload["metadata"] = {"client_id": client_id, "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return payload


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A proxy never redirects; following one would re-send (or drop) the body somewhere else."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def make_tls_opener(cert: str, key: Optional[str], ca: str) -> urllib.request.OpenerDirector:
    """An opener doing mutual TLS: the proxy is verified against `ca` (host name checked).

    `key` may be None when `cert` is one PEM file holding the certificate and its private key.
    """
    for flag, path in (("--cert", cert), ("--key", key), ("--ca", ca)):
        if path is not None and not os.path.isfile(path):
            raise UsageError(
                "%s file '%s' not found: pass the path to the file from the client bundle "
                "(client.crt, client.key, ca.crt)" % (flag, path)
            )
    try:
        ctx = ssl.create_default_context(cafile=ca)
    except (ssl.SSLError, OSError) as e:
        raise UsageError("--ca '%s' is not a readable PEM CA certificate (%s)" % (ca, _reason(e)))
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2

    def no_password() -> str:
        raise UsageError(
            "--key '%s' is encrypted; use the unencrypted client.key from the bundle" % (key or cert)
        )

    try:
        ctx.load_cert_chain(cert, key, password=no_password)
    except UsageError:
        raise
    except (ssl.SSLError, OSError) as e:
        if key is None:
            raise UsageError(
                "cannot load a certificate and private key from --cert '%s' (%s): pass --key with "
                "client.key, or a PEM file holding both" % (cert, _reason(e))
            )
        raise UsageError(
            "cannot load --cert '%s' with --key '%s' (%s): check both are PEM files of the same bundle"
            % (cert, key, _reason(e))
        )
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), _NoRedirect)


def _reason(e: BaseException) -> Any:
    return getattr(e, "reason", None) or getattr(e, "strerror", None) or e.__class__.__name__


class Outcome:
    """What happened: an exit code, the id on success, and lines for stderr."""

    def __init__(self, code: int, message_id: Optional[str] = None, errors: Sequence[str] = ()) -> None:
        self.code = code
        self.message_id = message_id
        self.errors = list(errors)


def send_message(
    opener: urllib.request.OpenerDirector,
    url: str,
    payload: Dict[str, Any],
    idempotency_key: str,
    timeout: float = 30.0,
    retries: int = 5,
    sleep: Callable[[float], None] = time.sleep,
    warn: Optional[Callable[[str], None]] = None,
) -> Outcome:
    """POSTs `payload` to `<url>/api/v1/messages`, retrying transient failures with the same key.

    `opener` is a urllib opener (TLS or, in tests, plain HTTP). Returns an Outcome; never raises for
    network or HTTP errors. `warn` receives one line per failed attempt that will be retried.
    """
    warn = warn or (lambda line: None)
    data = json.dumps(payload).encode("utf-8")
    secrets = [payload.get("sender_number", ""), payload.get("message_body", "")]
    endpoint = url.rstrip("/") + "/api/v1/messages"
    attempts = retries + 1
    last = "no attempt made"
    for attempt in range(1, attempts + 1):
        req = urllib.request.Request(endpoint, data=data, method="POST")
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json, application/problem+json")
        req.add_header("Idempotency-Key", idempotency_key)
        req.add_header("User-Agent", "msgrelay-python/" + __version__)
        retry_after: Optional[float] = None
        try:
            with opener.open(req, timeout=timeout) as resp:
                return _accepted(resp.status, resp.read(), idempotency_key)
        except urllib.error.HTTPError as e:
            body = _read_quietly(e)
            if e.code < 500 and e.code not in TRANSIENT_STATUSES:
                return Outcome(EXIT_REJECTED, errors=_problem_lines(e.code, e.reason, body, secrets))
            last = _redact("%d %s" % (e.code, _problem_title(e.reason, body)), secrets)
            if str(_problem(body).get("type", "")).endswith("/saturated"):
                last += " (the relay is saturated: its queue is full)"
            retry_after = _retry_after(e.headers.get("Retry-After") if e.headers else None)
        except Exception as e:  # noqa: BLE001 - every network failure is classified below
            fatal = _tls_rejection(e)
            if fatal:
                return Outcome(EXIT_REJECTED, errors=[fatal])
            last = _describe(e)
        if attempt == attempts:
            break
        delay = retry_after if retry_after is not None else min(2.0 ** (attempt - 1), MAX_BACKOFF_SECS)
        warn("warning: attempt %d of %d failed (%s); retrying in %g s" % (attempt, attempts, last, delay))
        sleep(delay)
    return Outcome(
        EXIT_GAVE_UP,
        errors=[
            "error: gave up after %d attempt(s); last error: %s" % (attempts, last),
            "check that %s is reachable from here (DNS, firewall, proxy running; its ops endpoint "
            "/ready on the relay host says whether it can queue), then re-run with "
            "--idempotency-key %s so that a message that did arrive is not sent twice" % (url, idempotency_key),
        ],
    )


def _accepted(status: int, raw: bytes, idempotency_key: str) -> Outcome:
    try:
        message_id = json.loads(raw.decode("utf-8"))["id"]
        if not isinstance(message_id, str) or not message_id:
            raise ValueError("empty id")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return Outcome(
            EXIT_GAVE_UP,
            errors=[
                "error: the proxy answered %d without a readable message id; re-run with "
                "--idempotency-key %s to get the id without sending a second message" % (status, idempotency_key)
            ],
        )
    return Outcome(EXIT_OK, message_id=message_id)


def _read_quietly(e: urllib.error.HTTPError) -> bytes:
    try:
        return e.read()
    except Exception:  # noqa: BLE001 - a broken error body must not hide the status
        return b""


def _problem(body: bytes) -> Dict[str, Any]:
    try:
        doc = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, AttributeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _problem_title(reason: Any, body: bytes) -> str:
    return str(_problem(body).get("title") or reason or "").strip()


def _problem_lines(status: int, reason: Any, body: bytes, secrets: List[str]) -> List[str]:
    """`error: <status> <title>: <detail>` plus the offending field(s) and a hint."""
    doc = _problem(body)
    title = str(doc.get("title") or reason or "error")
    detail = doc.get("detail")
    line = "error: %d %s" % (status, title)
    if detail:
        line += ": %s" % detail
    lines = [line]
    if doc.get("field"):
        lines.append("  field: %s" % doc["field"])
    errors = doc.get("errors")
    if isinstance(errors, dict):
        errors = [{"field": k, "detail": v} for k, v in errors.items()]
    for item in errors if isinstance(errors, list) else []:
        if isinstance(item, dict):
            name = item.get("field") or item.get("pointer") or item.get("name") or "?"
            why = item.get("detail") or item.get("message") or item.get("reason") or ""
            lines.append("  field: %s%s" % (name, (": %s" % why) if why else ""))
        else:
            lines.append("  %s" % item)
    if status in HINTS:
        lines.append("hint: " + HINTS[status])
    elif 300 <= status < 400:
        lines.append("hint: the proxy never redirects; check --url (scheme, host and port of the proxy itself)")
    return [_redact(ln, secrets) for ln in lines]


def _redact(text: str, secrets: List[str]) -> str:
    """Belt and braces: never echo the number or body even if a server puts them in an error."""
    for s in secrets:
        if isinstance(s, str) and len(s) >= 3:
            text = text.replace(s, "***")
    return text


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), bounded; None if absent."""
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        secs = (when - datetime.now(timezone.utc)).total_seconds()
    return max(0.0, min(secs, MAX_RETRY_AFTER_SECS))


def _unwrap(e: BaseException) -> BaseException:
    return e.reason if isinstance(e, urllib.error.URLError) and isinstance(e.reason, BaseException) else e


def _tls_rejection(e: BaseException) -> Optional[str]:
    """A message for TLS failures that retrying cannot fix (wrong CA, wrong host, refused cert)."""
    inner = _unwrap(e)
    if isinstance(inner, ssl.SSLCertVerificationError):
        return (
            "error: cannot verify the proxy's certificate (%s): check that --ca is the ca.crt from "
            "this relay's client bundle and that the URL's host name is one of the proxy's domains"
            % (inner.verify_message or inner.reason)
        )
    if isinstance(inner, ssl.SSLError) and "ALERT" in str(inner.reason or "").upper():
        return (
            "error: the proxy refused the TLS handshake (%s): the client certificate is unknown, "
            "expired or revoked, or --cert/--key are not from this relay; ask the relay admin "
            "(`msgrelay certs list`) or renew the certificate" % inner.reason
        )
    return None


def _describe(e: BaseException) -> str:
    inner = _unwrap(e)
    if isinstance(inner, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(inner, ConnectionRefusedError):
        return "connection refused"
    if isinstance(inner, socket.gaierror):
        return "host name not found"
    if isinstance(inner, ssl.SSLEOFError):
        return "the proxy closed the TLS connection (if this persists, it does not accept the client certificate)"
    if isinstance(inner, ssl.SSLError):
        return "TLS error: %s" % (inner.reason or inner.__class__.__name__)
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror
    return str(inner) or inner.__class__.__name__


def _writer(stream: IO[str]) -> Callable[[str], None]:
    def write(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    return write


def main(
    argv: Optional[Sequence[str]] = None,
    env: Optional[Mapping[str, str]] = None,
    opener: Optional[urllib.request.OpenerDirector] = None,
    sleep: Callable[[float], None] = time.sleep,
    stdin: Optional[IO[Any]] = None,
    stdout: Optional[IO[str]] = None,
    stderr: Optional[IO[str]] = None,
) -> int:
    """Command-line entry; returns the exit code.

    `opener` replaces the mutual-TLS opener (tests use plain HTTP); the cert/key/ca flags are then
    optional and no https:// URL is required.
    """
    argv = sys.argv[1:] if argv is None else argv
    env = os.environ if env is None else env
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    err = _writer(stderr)
    try:
        args = parse_args(argv, env, need_tls=opener is None)
        body = read_body(args.body, stdin)
        if opener is None:
            opener = make_tls_opener(args.cert, args.key, args.ca)
    except UsageError as e:
        err("error: %s" % e)
        return EXIT_USAGE
    payload = build_payload(args.sender, body, args.client_id)
    outcome = send_message(opener, args.url, payload, args.idempotency_key, args.timeout, args.retries, sleep, err)
    for line in outcome.errors:
        err(line)
    if outcome.code == EXIT_OK:
        stdout.write(outcome.message_id + "\n")
        stdout.flush()
    return outcome.code


def console_main() -> None:
    """The `msgrelay-send` command (pip install) and `python3 send_message.py`."""
    # Server-supplied error text may hold characters the Windows console code page lacks.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    console_main()
