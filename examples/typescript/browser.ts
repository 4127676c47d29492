// Calls koophone-gateway from a browser page: the REST mirror with fetch, and the package's generated types to read
// and write its JSON (fromJson/toJson) and restErrorOf to read its errors. Why not gRPC-web: the gateway serves gRPC
// (HTTP/2 with trailers, which browsers cannot read) and the REST mirror, not gRPC-web or the Connect protocol, so
// @connectrpc/connect-web would need a translating proxy (Envoy's grpc_web filter, say) in front of it. The REST
// mirror needs none, and carries the same errors ({"error": google.rpc.Status} with its details).
//
// A page served from another origin than the gateway's needs that origin in --cors-origins (KOOPHONE_CORS_ORIGINS):
// without it the gateway sends no CORS headers and refuses cross-origin writes. Bundle this module with the page (any bundler resolves the package's ESM `exports`); it uses only
// fetch and streams, so browser-run.ts runs the same code under Node to check it: node dist/browser-run.js URL
import { create, fromJson, toJson, type DescEnum, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { codeName, restErrorOf, withRequestId } from "koophone-gateway-client";
import {
  AsyncCommandRequestSchema, AsyncCommandResponseSchema, JobStatusSchema, ListInstancesResponseSchema,
  SyncCommandRequestSchema, SyncCommandResponseSchema, WatchTaskResponseSchema,
} from "koophone-gateway-client/v1";

const name = (e: DescEnum, n: number) => e.value[n]?.name ?? String(n);

export async function run(base: string, print: (line: string) => void): Promise<void> {
  // call sends a request (or none: GET) and reads the answer as schema, or throws the error catalogue's reading.
  async function call<S extends DescMessage>(schema: S, path: string, body?: JsonValue): Promise<MessageShape<S>> {
    const res = await fetch(base + path, body === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const json = (await res.json()) as JsonValue;
    if (!res.ok) throw Object.assign(new Error(`HTTP ${res.status}`), { gateway: restErrorOf(json), http: res.status });
    return fromJson(schema, json, { ignoreUnknownFields: true });
  }

  const page = await call(ListInstancesResponseSchema, "/v1/instances/batch-query?page_no=1&page_size=5");
  const ids = page.result.map((p) => p.instanceId);
  print(`list: ${page.totalCount} phones; this page: ${ids.join(", ")}`);

  const sync = await call(SyncCommandResponseSchema, "/v1/instances/sync-command",
    toJson(SyncCommandRequestSchema, create(SyncCommandRequestSchema, { command: "getprop ro.product.model", instanceIds: [ids[0]] })));
  for (const r of sync.cmdResults) print(`sync: ${r.instanceId} ${name(JobStatusSchema, r.status)} ${JSON.stringify(r.executeMsg)}`);

  const start = create(AsyncCommandRequestSchema, { command: "getprop ro.serialno", instanceIds: [ids[0]] });
  withRequestId(start);
  const started = await call(AsyncCommandResponseSchema, "/v1/instances/async-command", toJson(AsyncCommandRequestSchema, start));
  print(`async: task ${started.taskId}`);

  // A stream is newline-delimited JSON: {"result": …} per message, and {"error": google.rpc.Status} if it fails.
  const res = await fetch(`${base}/v1/instances/tasks/${started.taskId}/watch`);
  if (!res.ok || !res.body) throw new Error(`watch: HTTP ${res.status}`);
  let buffered = "";
  const decoder = new TextDecoder();
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    buffered += decoder.decode(value, { stream: !done });
    const lines = buffered.split("\n");
    buffered = done ? "" : lines.pop()!;
    for (const line of lines.filter((l) => l.trim() !== "")) {
      const msg = JSON.parse(line) as { result?: JsonValue; error?: JsonValue };
      if (msg.error !== undefined) throw Object.assign(new Error("watch failed"), { gateway: restErrorOf(msg) });
      const m = fromJson(WatchTaskResponseSchema, msg.result ?? null, { ignoreUnknownFields: true });
      print(`watch: running=${m.runningCount} succeeded=${m.succeededCount} failed=${m.failedCount} terminal=${m.terminal}`);
    }
    if (done) break;
  }

  try {
    await call(SyncCommandResponseSchema, "/v1/instances/sync-command", { command: "ls", instanceIds: ["nosuch01"] });
    throw new Error("SyncCommand on an unknown phone succeeded");
  } catch (err) {
    const { gateway: e, http } = err as { gateway?: ReturnType<typeof restErrorOf>; http?: number };
    if (!e) throw err;
    print(`error: HTTP ${http} reason=${e.reason} domain=${e.domain} operation=${e.metadata.operation} (${codeName(e.code)})`);
  }
}
