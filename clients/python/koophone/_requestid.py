"""Request ids for writes."""

import uuid


def new_request_id() -> str:
    """A new request id (a random UUID). Make one per write you intend, and send the same one again when you repeat
    that write: the gateway then answers the first outcome instead of doing it twice (for 24 hours)."""
    return str(uuid.uuid4())


def set_request_id(request) -> str:
    """Gives a write request a new request_id unless it has one, and returns the request's id. Requests without a
    request_id field (reads) are left alone and "" is returned."""
    field = request.DESCRIPTOR.fields_by_name.get("request_id")
    if field is None or field.type != field.TYPE_STRING or field.label == field.LABEL_REPEATED:
        return ""
    if not request.request_id:
        request.request_id = new_request_id()
    return request.request_id
