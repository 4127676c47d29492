#!/usr/bin/python3
"""Calls koophone-gateway from Python with grpcio and the stubs `make clients` generates: list phones, a synchronous
command, an asynchronous command followed with WatchTask, an error's ErrorInfo and a BadRequest decoded, and
OpenSession to the end.

    make clients && /usr/bin/python3 examples/python/example.py [grpc-address]

Needs grpcio and protobuf >= 3.20 (Debian: python3-grpcio python3-protobuf).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))

import grpc  # noqa: E402
from google.rpc import error_details_pb2, status_pb2  # noqa: E402
from koophone.v1 import common_pb2, instance_service_pb2 as pb, instance_service_pb2_grpc  # noqa: E402

PHONE_INDEX = 2  # each example opens its session on its own phone, so they can run against one gateway


def details(err):
    """Decodes the google.rpc.Status a gRPC error carries in its trailer into its detail messages."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            out = []
            for any_ in status.details:
                for cls in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest, error_details_pb2.RetryInfo):
                    if any_.Is(cls.DESCRIPTOR):
                        msg = cls()
                        any_.Unpack(msg)
                        out.append(msg)
            return out
    return []


def main():
    address = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("KOOPHONE_GRPC_ADDR", "127.0.0.1:9090")
    with grpc.insecure_channel(address) as channel:
        instances = instance_service_pb2_grpc.InstanceServiceStub(channel)

        page = instances.ListInstances(pb.ListInstancesRequest(page_no=1, page_size=5))
        ids = [p.instance_id for p in page.result]
        print(f"list: {page.total_count} phones; this page: {', '.join(ids)}")

        sync = instances.SyncCommand(pb.SyncCommandRequest(command="getprop ro.product.model", instance_ids=[ids[0]]))
        for r in sync.cmd_results:
            print(f'sync: {r.instance_id} {common_pb2.JobStatus.Name(r.status)} "{r.execute_msg}"')

        started = instances.AsyncCommand(pb.AsyncCommandRequest(command="getprop ro.serialno", instance_ids=[ids[0]]))
        print(f"async: task {started.task_id}")
        for m in instances.WatchTask(pb.WatchTaskRequest(task_id=started.task_id)):
            print(f"watch: running={m.running_count} succeeded={m.succeeded_count} failed={m.failed_count} "
                  f"terminal={str(m.terminal).lower()}")

        try:
            instances.SyncCommand(pb.SyncCommandRequest(command="ls", instance_ids=["nosuch01"]))
            raise SystemExit("SyncCommand on an unknown phone succeeded")
        except grpc.RpcError as err:
            info = next(d for d in details(err) if isinstance(d, error_details_pb2.ErrorInfo))
            print(f"error: {err.code().name} reason={info.reason} domain={info.domain} "
                  f"operation={info.metadata['operation']}")

        try:
            instances.SyncCommand(pb.SyncCommandRequest(command="reboot; rm -rf /", instance_ids=[ids[0]]))
            raise SystemExit("a shell operator was accepted")
        except grpc.RpcError as err:
            bad = next(d for d in details(err) if isinstance(d, error_details_pb2.BadRequest))
            for v in bad.field_violations:
                print(f"bad request: {err.code().name} {v.field} ({v.reason}): {v.description}")

        session = instances.OpenSession(pb.OpenSessionRequest(user_id="example-python", instance_id=ids[PHONE_INDEX], assign=True))
        for m in session:
            step = m.WhichOneof("step")
            if step == "prepared":
                print(f"session: prepared {m.prepared.instance_id} {common_pb2.PrepareStatus.Name(m.prepared.status)} "
                      f"assigned={str(m.assigned).lower()}")
            elif step == "progress":
                print(f"session: progress {common_pb2.ProgressStatus.Name(m.progress.status)} "
                      f"waiting={m.progress.waiting_count}")
            elif step == "session":
                ice = m.session.resource.rtc.ice_signaling
                print(f"session: ready signalling={ice.signaling_url} ice_servers={len(ice.ice_servers)} "
                      f"device_token=({len(m.session.device_token)} characters, not shown)")
        print(f"session: end {session.code().name}")


if __name__ == "__main__":
    main()
