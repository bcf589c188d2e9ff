"""Tests for send_message.py against a local stub server (standard library only).

Run from the repository root:  python3 -m unittest clients/python/test_send_message.py
Most tests use plain HTTP through main()'s `opener` parameter; one test class does real mutual
TLS with certificates made by the `openssl` command and is skipped where that is missing.
"""

import http.server
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import send_message  # noqa: E402  (imported after the path tweak above)

SENDER = "+15551234567"
BODY = "the secret body text"


class StubServer:
    """Answers POSTs from a script of (status, headers, body) and records what it received."""

    def __init__(self, script, tls_context=None):
        self.script = list(script)
        self.requests = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                stub.requests.append({"path": self.path, "headers": dict(self.headers), "body": self.rfile.read(length)})
                status, headers, body = stub.script.pop(0) if stub.script else (500, {}, b"")
                if isinstance(body, (dict, list)):
                    body = json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls_context is not None:
            self.httpd.socket = tls_context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def accepted(message_id="0b7c6d2e-8f3a-4c1d-9e5b-2a6f7d8c9e10"):
    return (202, {"Content-Type": "application/json"}, {"id": message_id, "status": "queued"})


def problem(status, title, detail, **extra):
    doc = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    doc.update(extra)
    return (status, {"Content-Type": "application/problem+json"}, doc)


def plain_opener():
    # No proxy from the environment: the stub is on loopback.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), send_message._NoRedirect)


def run(args, env=None, opener=None, stdin=""):
    """Runs main() and returns (exit code, stdout, stderr, list of sleeps)."""
    out, err, sleeps = io.StringIO(), io.StringIO(), []
    code = send_message.main(
        args,
        env=env or {},
        opener=opener,
        sleep=sleeps.append,
        stdin=io.StringIO(stdin),
        stdout=out,
        stderr=err,
    )
    return code, out.getvalue(), err.getvalue(), sleeps


class PlainHttpTests(unittest.TestCase):
    def send(self, server, *extra, env=None, stdin=""):
        args = ["--url", "http://127.0.0.1:%d" % server.port, "--sender", SENDER, "--body", BODY] + list(extra)
        return run(args, env=env, opener=plain_opener(), stdin=stdin)

    def assertNoSecrets(self, *texts):
        for text in texts:
            self.assertNotIn(SENDER, text)
            self.assertNotIn(BODY, text)

    def test_202_prints_only_the_id(self):
        with StubServer([accepted("abc-123")]) as srv:
            code, out, err, sleeps = self.send(srv)
        self.assertEqual(code, 0)
        self.assertEqual(out, "abc-123\n")
        self.assertEqual(err, "")
        self.assertEqual(sleeps, [])
        req = srv.requests[0]
        self.assertEqual(req["path"], "/api/v1/messages")
        self.assertEqual(req["headers"]["Content-Type"], "application/json")
        self.assertEqual(json.loads(req["body"]), {"sender_number": SENDER, "message_body": BODY})
        # A generated key is a UUID4.
        self.assertEqual(uuid.UUID(req["headers"]["Idempotency-Key"]).version, 4)

    def test_503_then_202_retries_with_the_same_key(self):
        script = [(503, {"Retry-After": "7"}, b""), problem(503, "Service Unavailable", "queue down"), accepted("id-1")]
        with StubServer(script) as srv:
            code, out, err, sleeps = self.send(srv)
        self.assertEqual(code, 0)
        self.assertEqual(out, "id-1\n")
        self.assertEqual(len(srv.requests), 3)
        keys = {r["headers"]["Idempotency-Key"] for r in srv.requests}
        self.assertEqual(len(keys), 1, "every retry must carry the same Idempotency-Key")
        self.assertEqual({r["body"] for r in srv.requests}.__len__(), 1, "every retry sends the same bytes")
        self.assertEqual(sleeps, [7.0, 2.0], "Retry-After wins, else exponential backoff")
        self.assertIn("retrying", err)
        self.assertNoSecrets(out, err)

    def test_saturated_relay_is_retried_after_its_retry_after(self):
        status, headers, doc = problem(503, "Service Unavailable", "the relay is saturated", type="https://msgrelay.dev/problems/saturated")
        script = [(status, dict(headers, **{"Retry-After": "5"}), doc)] * 2 + [accepted("id-2")]
        with StubServer(script) as srv:
            code, out, err, sleeps = self.send(srv)
        self.assertEqual(code, 0)
        self.assertEqual(out, "id-2\n")
        self.assertEqual(sleeps, [5.0, 5.0], "a saturated relay says when to come back")
        self.assertEqual(len({r["headers"]["Idempotency-Key"] for r in srv.requests}), 1)
        self.assertIn("saturated", err)

    def test_given_idempotency_key_is_sent(self):
        with StubServer([(502, {}, b""), accepted()]) as srv:
            code, _, _, _ = self.send(srv, "--idempotency-key", "order-42")
        self.assertEqual(code, 0)
        self.assertEqual([r["headers"]["Idempotency-Key"] for r in srv.requests], ["order-42", "order-42"])

    def test_422_exits_2_and_names_the_field(self):
        script = [problem(422, "Validation failed", "sender_number is not E.164", field="sender_number")]
        with StubServer(script) as srv:
            code, out, err, sleeps = self.send(srv)
        self.assertEqual(code, 2)
        self.assertEqual(out, "")
        self.assertIn("error: 422 Validation failed: sender_number is not E.164", err)
        self.assertIn("field: sender_number", err)
        self.assertEqual(len(srv.requests), 1, "a 4xx is not retried")
        self.assertEqual(sleeps, [])

    def test_422_errors_member_and_redaction(self):
        detail = "bad value " + SENDER  # a careless server must not make us print the number
        script = [problem(422, "Invalid", detail, errors=[{"field": "message_body", "detail": "too long"}])]
        with StubServer(script) as srv:
            code, out, err, _ = self.send(srv)
        self.assertEqual(code, 2)
        self.assertIn("field: message_body: too long", err)
        self.assertNoSecrets(out, err)

    def test_403_has_a_hint(self):
        with StubServer([problem(403, "Forbidden", "client disabled")]) as srv:
            code, _, err, _ = self.send(srv)
        self.assertEqual(code, 2)
        self.assertIn("error: 403 Forbidden: client disabled", err)
        self.assertIn("hint:", err)

    def test_exhausted_retries_exit_3(self):
        with StubServer([(503, {}, b"")] * 3) as srv:
            code, out, err, sleeps = self.send(srv, "--retries", "2", "--idempotency-key", "k-1")
        self.assertEqual(code, 3)
        self.assertEqual(out, "")
        self.assertEqual(len(srv.requests), 3)
        self.assertEqual(sleeps, [1.0, 2.0])
        self.assertIn("gave up after 3 attempt(s)", err)
        self.assertIn("--idempotency-key k-1", err)

    def test_backoff_is_capped_at_30_seconds(self):
        with StubServer([(500, {}, b"")] * 8) as srv:
            code, _, _, sleeps = self.send(srv, "--retries", "7")
        self.assertEqual(code, 3)
        self.assertEqual(sleeps, [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0])

    def test_connection_refused_is_retried(self):
        with socket.socket() as s:  # a port that nothing listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        args = ["--url", "http://127.0.0.1:%d" % port, "--sender", SENDER, "--body", BODY, "--retries", "1"]
        code, out, err, sleeps = run(args, opener=plain_opener())
        self.assertEqual(code, 3)
        self.assertEqual(sleeps, [1.0])
        self.assertIn("connection refused", err)

    def test_client_id_adds_metadata(self):
        with StubServer([accepted()]) as srv:
            code, _, _, _ = self.send(srv, "--client-id", "demo")
        self.assertEqual(code, 0)
        meta = json.loads(srv.requests[0]["body"])["metadata"]
        self.assertEqual(meta["client_id"], "demo")
        self.assertRegex(meta["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")

    def test_environment_variables(self):
        with StubServer([accepted("from-env")]) as srv:
            env = {
                "MSGRELAY_URL": "http://127.0.0.1:%d" % srv.port,
                "MSGRELAY_SENDER": SENDER,
                "MSGRELAY_BODY": BODY,
                "MSGRELAY_IDEMPOTENCY_KEY": "env-key",
            }
            code, out, _, _ = run([], env=env, opener=plain_opener())
        self.assertEqual((code, out), (0, "from-env\n"))
        self.assertEqual(srv.requests[0]["headers"]["Idempotency-Key"], "env-key")

    def test_body_from_stdin(self):
        with StubServer([accepted()]) as srv:
            args = ["--url", "http://127.0.0.1:%d" % srv.port, "--sender", SENDER, "--body", "-"]
            code, _, _, _ = run(args, opener=plain_opener(), stdin="line one\nline two\n")
        self.assertEqual(code, 0)
        self.assertEqual(json.loads(srv.requests[0]["body"])["message_body"], "line one\nline two")


class UsageTests(unittest.TestCase):
    def test_missing_arguments_exit_64(self):
        code, out, err, _ = run(["--url", "https://relay.example:8443"])
        self.assertEqual(code, 64)
        self.assertIn("--sender", err)
        self.assertIn("MSGRELAY_CERT", err)

    def test_missing_file_exit_64(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        args = ["--url", "https://relay.example:8443", "--sender", SENDER, "--body", BODY]
        args += ["--cert", os.path.join(d, "client.crt"), "--key", os.path.join(d, "k"), "--ca", os.path.join(d, "c")]
        code, _, err, _ = run(args)
        self.assertEqual(code, 64)
        self.assertIn("--cert file", err)
        self.assertIn("client bundle", err)
        self.assertNotIn(BODY, err)

    def test_bad_numbers_exit_64(self):
        code, _, err, _ = run(["--url", "http://x", "--sender", SENDER, "--body", BODY, "--retries", "many"],
                              opener=plain_opener())
        self.assertEqual(code, 64)
        self.assertIn("--retries", err)

    def test_plain_http_url_refused_without_test_opener(self):
        args = ["--url", "http://relay", "--sender", SENDER, "--body", BODY, "--cert", "a", "--key", "b", "--ca", "c"]
        code, _, err, _ = run(args)
        self.assertEqual(code, 64)
        self.assertIn("https://", err)

    def test_too_long_idempotency_key(self):
        code, _, err, _ = run(["--url", "http://x", "--sender", SENDER, "--body", BODY, "--idempotency-key", "k" * 129],
                              opener=plain_opener())
        self.assertEqual(code, 64)
        self.assertIn("128", err)


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki(d):
    """CA + server cert (DNS:localhost only) + client cert, all signed by the same CA."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test-ca",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, ext in (
        ("server", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(ext + "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\nbasicConstraints=CA:FALSE\n")
        _openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name, cwd=d)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext", cwd=d)


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command to make test certificates")
class MutualTlsTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        make_pki(cls.dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def server_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.path("server.crt"), self.path("server.key"))
        ctx.load_verify_locations(self.path("ca.crt"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def args(self, port, host="localhost", ca="ca.crt"):
        return ["--url", "https://%s:%d" % (host, port), "--cert", self.path("client.crt"),
                "--key", self.path("client.key"), "--ca", self.path(ca), "--sender", SENDER, "--body", BODY,
                "--retries", "0", "--timeout", "5"]

    def test_mutual_tls_round_trip(self):
        with StubServer([accepted("tls-id")], tls_context=self.server_context()) as srv:
            code, out, err, _ = run(self.args(srv.port))
        self.assertEqual((code, out), (0, "tls-id\n"), err)

    def test_combined_pem_needs_no_key_flag(self):
        combined = self.path("client-combined.pem")
        with open(combined, "w") as out:
            for part in ("client.crt", "client.key"):
                with open(self.path(part)) as f:
                    out.write(f.read())
        args = self.args(0)
        i = args.index("--key")
        del args[i : i + 2]
        args[args.index("--cert") + 1] = combined
        with StubServer([accepted("combined-id")], tls_context=self.server_context()) as srv:
            args[1] = "https://localhost:%d" % srv.port
            code, out, err, _ = run(args)
        self.assertEqual((code, out), (0, "combined-id\n"), err)

    def test_cert_without_key_and_no_key_flag_exit_64(self):
        args = self.args(1)
        i = args.index("--key")
        del args[i : i + 2]
        code, _, err, _ = run(args)
        self.assertEqual(code, 64)
        self.assertIn("pass --key", err)

    def test_untrusted_server_is_refused_without_retry(self):
        with StubServer([accepted()], tls_context=self.server_context()) as srv:
            # The client's own certificate is not a CA for the server: verification must fail.
            code, out, err, sleeps = run(self.args(srv.port, ca="client.crt"))
        self.assertEqual(code, 2)
        self.assertIn("cannot verify the proxy's certificate", err)
        self.assertEqual(sleeps, [])
        self.assertEqual(srv.requests, [])

    def test_host_name_is_checked(self):
        with StubServer([accepted()], tls_context=self.server_context()) as srv:
            # Same server, but 127.0.0.1 is not among the certificate's names (only localhost is).
            code, _, err, _ = run(self.args(srv.port, host="127.0.0.1"))
        self.assertEqual(code, 2)
        self.assertIn("host name", err)
        self.assertEqual(srv.requests, [])


class PackagingTests(unittest.TestCase):
    """`pip install ./clients/python` works offline and installs the `msgrelay-send` command."""

    def test_pip_install_offline_gives_the_console_command(self):
        here = os.path.dirname(os.path.abspath(__file__))
        with tempfile.TemporaryDirectory() as target:
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "--no-index", "--disable-pip-version-check",
                 "--no-cache-dir", "--quiet", "--target", target, here],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            env = dict(os.environ, PYTHONPATH=target)
            script = os.path.join(target, "bin", "msgrelay-send")
            done = subprocess.run([sys.executable, script, "--version"], env=env, capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertIn(send_message.__version__, done.stdout)
            done = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True)
            self.assertEqual(done.returncode, send_message.EXIT_USAGE)
            self.assertIn("missing --url", done.stderr)


if __name__ == "__main__":
    unittest.main()
