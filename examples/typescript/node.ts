// Calls koophone-gateway from Node over gRPC with a Connect transport (@connectrpc/connect-node) and the
// koophone-gateway-client package: list phones, a synchronous command, an asynchronous command followed with
// WatchTask to its end, errors read with errorOf (KooPhone's ErrorInfo, a BadRequest, the gateway's own reason as a
// koophone.v1.ErrorReason), and OpenSession to the end.
//
//   cd examples/typescript && npm ci && npx tsc && node dist/node.js [grpc-address]
//
// With KOOPHONE_API_KEY the key is sent by apiKeyInterceptor, which refuses plain http except to loopback; for TLS
// give an https address (KOOPHONE_GRPC_URL=https://gateway.example:9090) and, for a private CA or mTLS, nodeOptions
// ({ca, cert, key}) on the transport.
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { apiKeyInterceptor, errorOf, follow, VERSION, withRequestId } from "koophone-gateway-client";
import type { DescEnum } from "@bufbuild/protobuf";
import {
  ErrorReason, InstanceService, JobStatusSchema, PrepareStatusSchema, ProgressStatusSchema,
} from "koophone-gateway-client/v1";

// name is an enum value's name in the contract, as the other languages print it (TypeScript drops the prefix).
const name = (e: DescEnum, n: number) => e.value[n]?.name ?? String(n);

const phoneIndex = 4; // each example opens its session on its own phone, so they can run against one gateway
const address = process.argv[2] ?? process.env.KOOPHONE_GRPC_ADDR ?? "127.0.0.1:9090";
const baseUrl = process.env.KOOPHONE_GRPC_URL ?? `http://${address}`;
const key = process.env.KOOPHONE_API_KEY;

const transport = createGrpcTransport({ baseUrl, interceptors: key ? [apiKeyInterceptor(key, baseUrl)] : [] });
const instances = createClient(InstanceService, transport);

// fails runs a call that must fail, and returns its error read as the error catalogue.
async function fails(what: string, call: () => Promise<unknown>) {
  try {
    await call();
  } catch (err) {
    const e = errorOf(err);
    if (e) return e;
    throw err;
  }
  throw new Error(`${what} succeeded`);
}

console.log(`package: koophone-gateway-client ${VERSION}`);
const page = await instances.listInstances({ pageNo: 1, pageSize: 5 });
const ids = page.result.map((p) => p.instanceId);
console.log(`list: ${page.totalCount} phones; this page: ${ids.join(", ")}`);

const sync = await instances.syncCommand({ command: "getprop ro.product.model", instanceIds: [ids[0]] });
for (const r of sync.cmdResults) console.log(`sync: ${r.instanceId} ${name(JobStatusSchema, r.status)} ${JSON.stringify(r.executeMsg)}`);

// A write gets a request id, so that repeating it (after a lost answer, say) cannot run the command twice.
const start = { command: "getprop ro.serialno", instanceIds: [ids[0]], requestId: "" };
const requestId = withRequestId(start);
const started = await instances.asyncCommand(start);
console.log(`async: task ${started.taskId}`);
await follow(instances.watchTask({ taskId: started.taskId }), (m) =>
  console.log(`watch: running=${m.runningCount} succeeded=${m.succeededCount} failed=${m.failedCount} terminal=${m.terminal}`));

const denied = await fails("SyncCommand on an unknown phone", () =>
  instances.syncCommand({ command: "ls", instanceIds: ["nosuch01"] }));
console.log(`error: ${denied.codeName} reason=${denied.reason} domain=${denied.domain} operation=${denied.metadata.operation}`);

const bad = await fails("a shell operator", () =>
  instances.syncCommand({ command: "reboot; rm -rf /", instanceIds: [ids[0]] }));
for (const v of bad.violations) console.log(`bad request: ${bad.codeName} ${v.field} (${v.reason}): ${v.description}`);

// The same request id with a different request: the gateway's own reason, a koophone.v1.ErrorReason.
const reused = await fails("a reused request id", () =>
  instances.asyncCommand({ command: "getprop ro.build.id", instanceIds: [ids[0]], requestId }));
console.log(`gateway error: ${reused.codeName} reason=${ErrorReason[reused.gatewayReason]} domain=${reused.domain} outcome_unknown=${reused.outcomeUnknown}`);

await follow(instances.openSession({ userId: "example-typescript", instanceId: ids[phoneIndex], assign: true }), (m) => {
  switch (m.step.case) {
    case "prepared":
      console.log(`session: prepared ${m.step.value.instanceId} ${name(PrepareStatusSchema, m.step.value.status)} assigned=${m.assigned}`);
      break;
    case "progress":
      console.log(`session: progress ${name(ProgressStatusSchema, m.step.value.status)} waiting=${m.step.value.waitingCount}`);
      break;
    case "session": {
      const ice = m.step.value.resource?.rtc?.iceSignaling;
      console.log(`session: ready signalling=${ice?.signalingUrl} ice_servers=${ice?.iceServers.length} device_token=(${m.step.value.deviceToken.length} characters, not shown)`);
      break;
    }
  }
});
console.log("session: end OK");
