"""Following a server stream to its end."""

import grpc

from koophone._errors import Error


def follow(stream, fn=None) -> None:
    """Receives every message of a server stream (what a stub's streaming method returns) until it ends, calling
    fn with each. Returns when the stream ended with OK; raises koophone.Error with the stream's final status
    otherwise. An exception from fn stops following and cancels the call, so the server ends the stream too."""
    try:
        for message in stream:
            if fn is not None:
                try:
                    fn(message)
                except BaseException:
                    stream.cancel()
                    raise
    except grpc.RpcError as err:
        raise Error.from_rpc_error(err) from err


def last(stream):
    """Follows a stream to its end and returns its last message (None when it sent none); raises koophone.Error as
    follow() does."""
    end = None

    def keep(message):
        nonlocal end
        end = message

    follow(stream, keep)
    return end
