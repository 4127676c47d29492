"""Dialling the gateway: TLS, mTLS, an API key and the contract's retry policy."""

import ipaddress
import json
from importlib import resources
from typing import Optional, Sequence, Tuple

import grpc

from koophone.v1 import app_service_pb2_grpc, fleet_service_pb2_grpc, instance_service_pb2_grpc, order_service_pb2_grpc


def service_config() -> str:
    """The gRPC service config (JSON) that dial() applies unless retry=False: up to 3 attempts on UNAVAILABLE or
    RESOURCE_EXHAUSTED for the RPCs the contract marks free of side effects or idempotent, never for writes (a
    repeat could order, bill or wipe twice: use a request_id and check the state instead). The same policy as the
    Go client's, copied from the gateway's docs/service-config.json when the package is generated."""
    return resources.files("koophone").joinpath("service-config.json").read_text(encoding="utf-8")


def is_loopback(target: str) -> bool:
    """Whether a grpc target names this machine only: localhost, 127.0.0.0/8, ::1, or a unix socket."""
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    for scheme in ("dns:///", "ipv4:", "ipv6:", "dns:"):
        if target.startswith(scheme):
            target = target[len(scheme):]
            break
    host = target
    if host.startswith("["):  # [::1]:9090
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:  # host:port (more than one colon: a bare IPv6 address)
        host = host.rsplit(":", 1)[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _BearerHeader(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <key>` to calls on a plaintext channel to a host that is not loopback, which
    grpc's call credentials refuse to do: only when the caller said allow_insecure_api_key."""

    def __init__(self, key: str):
        self._header = ("authorization", "Bearer " + key)

    def _add(self, details):
        metadata = list(details.metadata or ()) + [self._header]
        return details._replace(metadata=metadata) if hasattr(details, "_replace") else _Details(details, metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._add(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._add(details), request)


class _Details(grpc.ClientCallDetails):
    def __init__(self, d, metadata):
        self.method, self.timeout, self.metadata = d.method, d.timeout, metadata
        self.credentials, self.wait_for_ready = d.credentials, getattr(d, "wait_for_ready", None)
        self.compression = getattr(d, "compression", None)


def _read(path: Optional[str], what: str) -> Optional[bytes]:
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ValueError(f"koophone: {what}: {e}") from e


def dial(target: str, *, tls: bool = False, ca_file: Optional[str] = None, cert_file: Optional[str] = None,
         key_file: Optional[str] = None, server_name: Optional[str] = None, api_key: Optional[str] = None,
         allow_insecure_api_key: bool = False, retry: bool = True,
         options: Sequence[Tuple[str, object]] = ()) -> grpc.Channel:
    """Opens a channel to the gateway at target ("host:port", or any grpc target).

    tls turns on TLS, verified against grpc's default roots unless ca_file (a PEM file of the CAs that may sign the
    gateway's certificate) says otherwise; ca_file, cert_file or key_file imply it. cert_file and key_file are the
    client's certificate and key, for a gateway that authenticates callers by mTLS. server_name overrides the name
    checked in the gateway's certificate. api_key is sent on every call as `authorization: Bearer <key>`; it is
    never sent in plaintext, except to a loopback address or when allow_insecure_api_key says so (a test network, a
    sidecar). retry=False leaves out the built-in retry policy (service_config()). options are more grpc channel
    options. Raises ValueError for a configuration that cannot work or would leak the key."""
    use_tls = tls or bool(ca_file or cert_file or key_file)
    opts = list(options)
    if retry:
        opts += [("grpc.enable_retries", 1), ("grpc.service_config", service_config())]
    if use_tls and server_name:
        opts.append(("grpc.ssl_target_name_override", server_name))
    if bool(cert_file) != bool(key_file):
        raise ValueError("koophone: a client certificate needs both cert_file and key_file")

    if use_tls:
        creds = grpc.ssl_channel_credentials(
            root_certificates=_read(ca_file, "CA file"),
            private_key=_read(key_file, "client key"),
            certificate_chain=_read(cert_file, "client certificate"),
        )
        if api_key:
            creds = grpc.composite_channel_credentials(creds, grpc.access_token_call_credentials(api_key))
        return grpc.secure_channel(target, creds, opts)

    if not api_key:
        return grpc.insecure_channel(target, opts)
    if is_loopback(target):
        # Local credentials: plaintext that grpc itself lets call credentials ride on only because the peer is
        # this machine (it checks the connection's address), so the key cannot leave it.
        kind = grpc.LocalConnectionType.UDS if target.startswith("unix") else grpc.LocalConnectionType.LOCAL_TCP
        creds = grpc.composite_channel_credentials(grpc.local_channel_credentials(kind),
                                                   grpc.access_token_call_credentials(api_key))
        return grpc.secure_channel(target, creds, opts)
    if not allow_insecure_api_key:
        raise ValueError(f"koophone: refusing to send the API key in plaintext to {target!r}: "
                         "use tls=True, or set allow_insecure_api_key")
    return grpc.intercept_channel(grpc.insecure_channel(target, opts), _BearerHeader(api_key))


class Client:
    """A channel and a stub for each service of the contract. Close it when done (or use it in a with block)."""

    def __init__(self, channel: grpc.Channel):
        self.channel = channel
        self.instances = instance_service_pb2_grpc.InstanceServiceStub(channel)
        self.orders = order_service_pb2_grpc.OrderServiceStub(channel)
        self.apps = app_service_pb2_grpc.AppServiceStub(channel)
        self.fleet = fleet_service_pb2_grpc.FleetServiceStub(channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(target: str, **kwargs) -> Client:
    """dial() and the four stubs on the one channel: client.instances, .orders, .apps, .fleet."""
    return Client(dial(target, **kwargs))
