"""The Python client of the KooPhone gateway.

The stubs are in koophone.v1 (generated from the contract without its server-side options); this package adds what
every caller needs, as the Go client (package koophone) and the TypeScript package do:

* connect() / dial(): a channel with TLS, mTLS and an API key (call credentials; never sent in plaintext except to
  loopback), and the contract's retry policy for the RPCs that only read;
* new_request_id() / set_request_id(): request ids for writes, so a repeated write is answered, not done twice;
* error_of(): a failed call read as the error catalogue (docs/errors.md), decoded from the grpc-status-details-bin
  trailer with google.protobuf alone (no grpcio-status): reason, domain, metadata, RetryInfo, BadRequest, the
  reason as a koophone.v1.ErrorReason, and whether the outcome of a write is unknown;
* follow() / last(): a server stream followed to its end.

    import koophone
    from koophone.v1 import instance_service_pb2 as pb

    with koophone.connect("gateway.example:9090", tls=True, api_key=os.environ["KOOPHONE_API_KEY"]) as c:
        page = c.instances.ListInstances(pb.ListInstancesRequest(page_no=1, page_size=100))
"""

from koophone._dial import Client, connect, dial, is_loopback, service_config
from koophone._errors import DOMAIN_GATEWAY, DOMAIN_KOOPHONE, Error, Violation, error_of, is_outcome_unknown
from koophone._requestid import new_request_id, set_request_id
from koophone._stream import follow, last

# The version of this package and of the contract it was generated from (the repository's VERSION).
__version__ = "0.1.0"

__all__ = [
    "Client", "connect", "dial", "is_loopback", "service_config",
    "DOMAIN_GATEWAY", "DOMAIN_KOOPHONE", "Error", "Violation", "error_of", "is_outcome_unknown",
    "new_request_id", "set_request_id",
    "follow", "last",
    "__version__",
]
