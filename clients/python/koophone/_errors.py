"""The gateway's error catalogue (docs/errors.md), read from a failed call's grpc-status-details-bin trailer (a
google.rpc.Status) with google.protobuf and the google.rpc messages generated into this package: no grpcio-status."""

from dataclasses import dataclass
from typing import Dict, List, Optional

import grpc

from koophone.google_rpc import error_details_pb2, status_pb2
from koophone.v1 import errors_pb2

# The domain of the gateway's own errors: the reason is a koophone.v1.ErrorReason name.
DOMAIN_GATEWAY = "koophone-gateway"
# The domain of KooPhone's errors: the reason is its code verbatim, e.g. "KOOPHONE.API.4001".
DOMAIN_KOOPHONE = "koophone.myhuaweicloud.com"

_DETAILS_KEY = "grpc-status-details-bin"
_OUTCOME_UNKNOWN = (errors_pb2.OUTCOME_UNKNOWN, errors_pb2.IDEMPOTENT_OUTCOME_UNKNOWN)


@dataclass(frozen=True)
class Violation:
    """One broken rule of the contract: the field (a path such as "instance_ids[0]" or "query.page_size"), the
    rule's id (e.g. "string.pattern") and a description."""
    field: str
    reason: str
    description: str


class Error(Exception):
    """A failed call read as the gateway's error catalogue describes it."""

    def __init__(self, code: grpc.StatusCode, message: str, status: Optional[status_pb2.Status] = None):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        # The whole google.rpc.Status (None when the call carried no details), for anything else.
        self.status = status
        # From the status's google.rpc.ErrorInfo ("" and {} when there is none). metadata holds "operation",
        # "upstream_code", "upstream_message", "http_status", "request_id"… (absent when unknown).
        self.reason = ""
        self.domain = ""
        self.metadata: Dict[str, str] = {}
        # google.rpc.RetryInfo's delay in seconds: wait this long before trying again (None: no RetryInfo).
        self.retry_delay: Optional[float] = None
        # google.rpc.BadRequest's field violations: the request broke a rule of the contract.
        self.violations: List[Violation] = []
        for detail in status.details if status is not None else ():
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                self.reason, self.domain, self.metadata = info.reason, info.domain, dict(info.metadata)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                self.retry_delay = retry.retry_delay.ToTimedelta().total_seconds()
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                self.violations.extend(Violation(v.field, v.reason, v.description) for v in bad.field_violations)

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> "Error":
        """Reads a grpc.RpcError (what a stub raises; it is also a grpc.Call) as the error catalogue."""
        code = err.code() if callable(getattr(err, "code", None)) else grpc.StatusCode.UNKNOWN
        message = err.details() if callable(getattr(err, "details", None)) else str(err)
        trailers = err.trailing_metadata() if callable(getattr(err, "trailing_metadata", None)) else None
        status = None
        for key, value in trailers or ():
            if key == _DETAILS_KEY:
                status = status_pb2.Status.FromString(value)
                break
        return cls(code or grpc.StatusCode.UNKNOWN, message or "", status)

    @property
    def gateway_reason(self) -> int:
        """The reason as a koophone.v1.ErrorReason value when the gateway itself refused or failed the call;
        ERROR_REASON_UNSPECIFIED (0) for KooPhone's errors, for none, and for a reason this package does not know
        yet (a newer gateway: go by the code). errors_pb2.ErrorReason.Name() gives its name."""
        if self.domain != DOMAIN_GATEWAY:
            return errors_pb2.ERROR_REASON_UNSPECIFIED
        try:
            return errors_pb2.ErrorReason.Value(self.reason)
        except ValueError:
            return errors_pb2.ERROR_REASON_UNSPECIFIED

    @property
    def outcome_unknown(self) -> bool:
        """Whether a write may or may not have happened (OUTCOME_UNKNOWN, IDEMPOTENT_OUTCOME_UNKNOWN): check the
        state (ListInstances, GetTask) before repeating it."""
        return self.gateway_reason in _OUTCOME_UNKNOWN


def error_of(err: BaseException) -> Optional[Error]:
    """Reads an exception as the error catalogue: a koophone.Error as it is, a grpc.RpcError decoded; None for
    anything else (a local error, say)."""
    if isinstance(err, Error):
        return err
    if isinstance(err, grpc.RpcError):
        return Error.from_rpc_error(err)
    return None


def is_outcome_unknown(err: BaseException) -> bool:
    """Whether err says a write may or may not have happened."""
    e = error_of(err)
    return e is not None and e.outcome_unknown
