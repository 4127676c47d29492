#!/usr/bin/env python3
"""Calls koophone-gateway from Python with the koophone-gateway package (the wheel `make python-wheel` builds): list
phones, a synchronous command, an asynchronous command followed with WatchTask to its end, errors read with
koophone.error_of (KooPhone's ErrorInfo, a BadRequest, and the gateway's own reason as a koophone.v1.ErrorReason),
and OpenSession to the end. run.sh installs the wheel into a fresh virtual environment and runs this.

    examples/python/run.sh clients/python/dist/koophone_gateway-*.whl [grpc-address]

With an API key (KOOPHONE_API_KEY) the key travels as call credentials: over TLS (KOOPHONE_TLS=1, KOOPHONE_CA_FILE)
or, in plaintext, to loopback only.
"""
import os
import sys

import koophone
from koophone.v1 import common_pb2, errors_pb2, instance_service_pb2 as pb

PHONE_INDEX = 2  # each example opens its session on its own phone, so they can run against one gateway


def main():
    address = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("KOOPHONE_GRPC_ADDR", "127.0.0.1:9090")
    print(f"package: koophone-gateway {koophone.__version__}")
    with koophone.connect(address, api_key=os.environ.get("KOOPHONE_API_KEY"), tls=bool(os.environ.get("KOOPHONE_TLS")),
                          ca_file=os.environ.get("KOOPHONE_CA_FILE")) as c:
        page = c.instances.ListInstances(pb.ListInstancesRequest(page_no=1, page_size=5))
        ids = [p.instance_id for p in page.result]
        print(f"list: {page.total_count} phones; this page: {', '.join(ids)}")

        sync = c.instances.SyncCommand(pb.SyncCommandRequest(command="getprop ro.product.model", instance_ids=[ids[0]]))
        for r in sync.cmd_results:
            print(f'sync: {r.instance_id} {common_pb2.JobStatus.Name(r.status)} "{r.execute_msg}"')

        # A write gets a request_id, so that repeating it (after a lost answer, say) cannot run the command twice.
        start = pb.AsyncCommandRequest(command="getprop ro.serialno", instance_ids=[ids[0]])
        request_id = koophone.set_request_id(start)
        started = c.instances.AsyncCommand(start)
        print(f"async: task {started.task_id}")
        koophone.follow(c.instances.WatchTask(pb.WatchTaskRequest(task_id=started.task_id)), lambda m: print(
            f"watch: running={m.running_count} succeeded={m.succeeded_count} failed={m.failed_count} "
            f"terminal={str(m.terminal).lower()}"))

        try:
            c.instances.SyncCommand(pb.SyncCommandRequest(command="ls", instance_ids=["nosuch01"]))
            raise SystemExit("SyncCommand on an unknown phone succeeded")
        except Exception as exc:  # noqa: BLE001 (read as the error catalogue below)
            e = koophone.error_of(exc)
            if e is None:
                raise
            print(f"error: {e.code.name} reason={e.reason} domain={e.domain} operation={e.metadata['operation']}")

        try:
            c.instances.SyncCommand(pb.SyncCommandRequest(command="reboot; rm -rf /", instance_ids=[ids[0]]))
            raise SystemExit("a shell operator was accepted")
        except Exception as exc:  # noqa: BLE001
            e = koophone.error_of(exc)
            if e is None:
                raise
            for v in e.violations:
                print(f"bad request: {e.code.name} {v.field} ({v.reason}): {v.description}")

        # The same request_id with a different request: the gateway's own reason, a koophone.v1.ErrorReason.
        try:
            c.instances.AsyncCommand(pb.AsyncCommandRequest(command="getprop ro.build.id", instance_ids=[ids[0]],
                                                            request_id=request_id))
            raise SystemExit("a request_id was accepted for a different request")
        except Exception as exc:  # noqa: BLE001
            e = koophone.error_of(exc)
            if e is None:
                raise
            print(f"gateway error: {e.code.name} reason={errors_pb2.ErrorReason.Name(e.gateway_reason)} "
                  f"domain={e.domain} outcome_unknown={str(e.outcome_unknown).lower()}")

        def show(m):
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

        koophone.follow(c.instances.OpenSession(
            pb.OpenSessionRequest(user_id="example-python", instance_id=ids[PHONE_INDEX], assign=True)), show)
        print("session: end OK")


if __name__ == "__main__":
    main()
