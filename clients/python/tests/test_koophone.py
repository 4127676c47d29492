"""Tests of the koophone package against gRPC servers started here on loopback (grpcio's own server): plaintext
with local credentials, TLS and mTLS with certificates made by openssl, the API key as call credentials, errors
decoded from the grpc-status-details-bin trailer, and streams followed to their end. Run on the installed wheel by
`make test-client-python`."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from concurrent import futures

import grpc
from google.protobuf import any_pb2, duration_pb2

import koophone
from koophone.google_rpc import error_details_pb2, status_pb2
from koophone.v1 import errors_pb2, instance_service_pb2 as pb, instance_service_pb2_grpc as pbgrpc

WAIT = 10  # seconds: every call here has its own short deadline


class Fake(pbgrpc.InstanceServiceServicer):
    """Answers ListInstances with the authorization header it saw (in the first instance id) and the peer's client
    certificate subject, AsyncCommand with a rich error, and WatchTask with three messages, then OK or an error."""

    def ListInstances(self, request, context):
        md = dict(context.invocation_metadata())
        auth = context.auth_context()
        subject = auth.get("x509_common_name", [b""])[0].decode()
        return pb.ListInstancesResponse(total_count=1, result=[pb.Instance(instance_id=md.get("authorization", ""),
                                                                           instance_name=subject)])

    def AsyncCommand(self, request, context):
        status = status_pb2.Status(code=grpc.StatusCode.UNKNOWN.value[0], message="lost")
        for detail in (
            error_details_pb2.ErrorInfo(reason=request.command, domain=koophone.DOMAIN_GATEWAY,
                                        metadata={"request_id": request.request_id}),
            error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1, nanos=500_000_000)),
            error_details_pb2.BadRequest(field_violations=[error_details_pb2.BadRequest.FieldViolation(
                field="instance_ids[0]", reason="string.pattern", description="bad id")]),
        ):
            a = any_pb2.Any()
            a.Pack(detail)
            status.details.append(a)
        context.set_trailing_metadata([("grpc-status-details-bin", status.SerializeToString())])
        context.abort(grpc.StatusCode.UNKNOWN, "lost")

    def WatchTask(self, request, context):
        for i in range(3):
            yield pb.WatchTaskResponse(task_id=request.task_id, running_count=i)
        if request.task_id == "fails":
            context.abort(grpc.StatusCode.NOT_FOUND, "no such task")


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


class KoophoneTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        d = cls.dir
        # A CA, a server certificate for "gateway.test" and a client certificate for "caller-1", all signed by it.
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
                 "-subj", "/CN=test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
        for name, cn in (("server", "gateway.test"), ("client", "caller-1")):
            _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={cn}",
                     "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
            with open(os.path.join(d, f"{name}.ext"), "w") as f:
                f.write(f"subjectAltName=DNS:{cn}\n")
            _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                     "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)

        def read(name):
            with open(os.path.join(d, name), "rb") as f:
                return f.read()

        cls.servers = []
        cls.plain = cls._serve(lambda s: s.add_insecure_port("127.0.0.1:0"))
        tls = grpc.ssl_server_credentials([(read("server.key"), read("server.pem"))])
        cls.tls = cls._serve(lambda s: s.add_secure_port("127.0.0.1:0", tls))
        mtls = grpc.ssl_server_credentials([(read("server.key"), read("server.pem"))], root_certificates=read("ca.pem"),
                                           require_client_auth=True)
        cls.mtls = cls._serve(lambda s: s.add_secure_port("127.0.0.1:0", mtls))

    @classmethod
    def _serve(cls, add_port):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pbgrpc.add_InstanceServiceServicer_to_server(Fake(), server)
        port = add_port(server)
        server.start()
        cls.servers.append(server)
        return f"127.0.0.1:{port}"

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers:
            s.stop(None)
        shutil.rmtree(cls.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def list_once(self, client):
        return client.instances.ListInstances(pb.ListInstancesRequest(page_no=1, page_size=1), timeout=WAIT).result[0]

    def test_plaintext_without_key(self):
        with koophone.connect(self.plain) as c:
            self.assertEqual(self.list_once(c).instance_id, "")

    def test_key_in_plaintext_only_to_loopback(self):
        with koophone.connect(self.plain, api_key="k-1") as c:
            self.assertEqual(self.list_once(c).instance_id, "Bearer k-1")
        with self.assertRaisesRegex(ValueError, "refusing to send the API key in plaintext"):
            koophone.dial("gateway.example:9090", api_key="k-1")
        koophone.dial("gateway.example:9090", api_key="k-1", allow_insecure_api_key=True).close()

    def test_tls_with_key(self):
        with koophone.connect(self.tls, ca_file=self.path("ca.pem"), server_name="gateway.test", api_key="k-2") as c:
            self.assertEqual(self.list_once(c).instance_id, "Bearer k-2")

    def test_tls_refuses_an_unknown_ca(self):
        with koophone.connect(self.tls, ca_file=self.path("client.pem"), server_name="gateway.test") as c:
            with self.assertRaises(grpc.RpcError) as cm:
                self.list_once(c)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)

    def test_mtls(self):
        with koophone.connect(self.mtls, ca_file=self.path("ca.pem"), cert_file=self.path("client.pem"),
                              key_file=self.path("client.key"), server_name="gateway.test") as c:
            self.assertEqual(self.list_once(c).instance_name, "caller-1")
        with self.assertRaisesRegex(ValueError, "both cert_file and key_file"):
            koophone.dial(self.mtls, cert_file=self.path("client.pem"))
        with self.assertRaisesRegex(ValueError, "CA file"):
            koophone.dial(self.mtls, ca_file=self.path("nosuch.pem"))

    def test_error_details(self):
        with koophone.connect(self.plain) as c:
            req = pb.AsyncCommandRequest(command="OUTCOME_UNKNOWN", instance_ids=["p1"])
            rid = koophone.set_request_id(req)
            with self.assertRaises(grpc.RpcError) as cm:
                c.instances.AsyncCommand(req, timeout=WAIT)
        e = koophone.error_of(cm.exception)
        self.assertEqual(e.code, grpc.StatusCode.UNKNOWN)
        self.assertEqual((e.reason, e.domain, e.metadata), ("OUTCOME_UNKNOWN", "koophone-gateway", {"request_id": rid}))
        self.assertEqual(e.gateway_reason, errors_pb2.OUTCOME_UNKNOWN)
        self.assertTrue(e.outcome_unknown)
        self.assertTrue(koophone.is_outcome_unknown(cm.exception))
        self.assertEqual(e.retry_delay, 1.5)
        self.assertEqual(e.violations, [koophone.Violation("instance_ids[0]", "string.pattern", "bad id")])
        self.assertIsNone(koophone.error_of(ValueError("local")))
        # Decoded from grpc-status-details-bin by the package itself: grpcio-status was never imported.
        self.assertNotIn("grpc_status", sys.modules)

    def test_gateway_reason(self):
        for reason, domain, want in (
            ("IDEMPOTENT_OUTCOME_UNKNOWN", koophone.DOMAIN_GATEWAY, errors_pb2.IDEMPOTENT_OUTCOME_UNKNOWN),
            ("RATE_LIMITED", koophone.DOMAIN_GATEWAY, errors_pb2.RATE_LIMITED),
            ("A_REASON_FROM_A_NEWER_GATEWAY", koophone.DOMAIN_GATEWAY, errors_pb2.ERROR_REASON_UNSPECIFIED),
            ("OUTCOME_UNKNOWN", koophone.DOMAIN_KOOPHONE, errors_pb2.ERROR_REASON_UNSPECIFIED),
        ):
            e = koophone.Error(grpc.StatusCode.UNKNOWN, "x")
            e.reason, e.domain = reason, domain
            self.assertEqual(e.gateway_reason, want, reason)
        self.assertFalse(koophone.Error(grpc.StatusCode.UNKNOWN, "x").outcome_unknown)

    def test_follow(self):
        with koophone.connect(self.plain) as c:
            seen = []
            koophone.follow(c.instances.WatchTask(pb.WatchTaskRequest(task_id="t1"), timeout=WAIT),
                            lambda m: seen.append(m.running_count))
            self.assertEqual(seen, [0, 1, 2])
            self.assertEqual(koophone.last(c.instances.WatchTask(pb.WatchTaskRequest(task_id="t1"), timeout=WAIT))
                             .running_count, 2)
            with self.assertRaises(koophone.Error) as cm:
                koophone.follow(c.instances.WatchTask(pb.WatchTaskRequest(task_id="fails"), timeout=WAIT))
            self.assertEqual(cm.exception.code, grpc.StatusCode.NOT_FOUND)

            def stop(m):
                raise RuntimeError("enough")
            with self.assertRaisesRegex(RuntimeError, "enough"):
                koophone.follow(c.instances.WatchTask(pb.WatchTaskRequest(task_id="t1"), timeout=WAIT), stop)

    def test_request_id(self):
        req = pb.AsyncCommandRequest(command="ls")
        rid = koophone.set_request_id(req)
        self.assertEqual(len(rid), 36)
        self.assertEqual(koophone.set_request_id(req), rid)  # kept
        self.assertEqual(koophone.set_request_id(pb.ListInstancesRequest()), "")  # a read has none

    def test_is_loopback(self):
        for target, want in (("127.0.0.1:9090", True), ("localhost:9090", True), ("[::1]:9090", True),
                             ("::1", True), ("dns:///localhost:9090", True), ("ipv4:127.0.0.2:1", True),
                             ("unix:/run/gw.sock", True), ("gateway.example:9090", False), ("10.0.0.1:9090", False),
                             ("127.example.com:1", False)):
            self.assertEqual(koophone.is_loopback(target), want, target)

    def test_service_config(self):
        import json
        names = {(n["service"], n["method"]) for n in json.loads(koophone.service_config())["methodConfig"][0]["name"]}
        self.assertIn(("koophone.v1.InstanceService", "ListInstances"), names)
        self.assertNotIn(("koophone.v1.InstanceService", "AsyncCommand"), names)


if __name__ == "__main__":
    unittest.main()
