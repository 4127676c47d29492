// Calls koophone-gateway from a browser page with @connectrpc/connect-web and the koophone-gateway-client package:
// the gateway serves the Connect protocol and gRPC-web on its REST port at /koophone.v1.<Service>/<Method>
// (--web-rpc, on by default), so a page uses the same typed client as Node: list phones, a synchronous command, an
// asynchronous command followed with WatchTask to its end (a server stream over fetch), and errors read with
// errorOf (KooPhone's ErrorInfo, a BadRequest's field violations).
//
// A page served from another origin than the gateway's needs that origin in --cors-origins (KOOPHONE_CORS_ORIGINS):
// without it the gateway sends no CORS headers and refuses cross-origin writes. With API keys, pass apiKey (sent as
// "Authorization: Bearer", which the CORS answer allows); under mTLS the browser's client certificate authenticates.
//
// page.ts runs this in a page (bundled with esbuild: npm run bundle); browser-run.ts runs the same code under Node,
// whose fetch and streams are the browser's: node dist/browser-run.js [http://host:port] [connect|grpc-web]
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { apiKeyInterceptor, errorOf, follow, withRequestId } from "koophone-gateway-client";
import type { DescEnum } from "@bufbuild/protobuf";
import { InstanceService, JobStatusSchema } from "koophone-gateway-client/v1";

// name is an enum value's name in the contract, as the other languages print it (TypeScript drops the prefix).
const name = (e: DescEnum, n: number) => e.value[n]?.name ?? String(n);

export type Protocol = "connect" | "grpc-web";

export interface Options {
  /** The Connect protocol (default: JSON for unary calls; binary with useBinaryFormat) or gRPC-web. */
  protocol?: Protocol;
  apiKey?: string;
}

export async function run(baseUrl: string, print: (line: string) => void, opts: Options = {}): Promise<void> {
  const protocol = opts.protocol ?? "connect";
  const interceptors = opts.apiKey ? [apiKeyInterceptor(opts.apiKey, baseUrl)] : [];
  const transport = protocol === "grpc-web"
    ? createGrpcWebTransport({ baseUrl, interceptors })
    : createConnectTransport({ baseUrl, interceptors });
  const instances = createClient(InstanceService, transport);
  print(`transport: ${protocol}`);

  const page = await instances.listInstances({ pageNo: 1, pageSize: 5 });
  const ids = page.result.map((p) => p.instanceId);
  print(`list: ${page.totalCount} phones; this page: ${ids.join(", ")}`);

  const sync = await instances.syncCommand({ command: "getprop ro.product.model", instanceIds: [ids[0]] });
  for (const r of sync.cmdResults) print(`sync: ${r.instanceId} ${name(JobStatusSchema, r.status)} ${JSON.stringify(r.executeMsg)}`);

  // A write gets a request id, so that repeating it (after a lost answer, say) cannot run the command twice.
  const start = { command: "getprop ro.serialno", instanceIds: [ids[0]], requestId: "" };
  withRequestId(start);
  const started = await instances.asyncCommand(start);
  print(`async: task ${started.taskId}`);
  await follow(instances.watchTask({ taskId: started.taskId }), (m) =>
    print(`watch: running=${m.runningCount} succeeded=${m.succeededCount} failed=${m.failedCount} terminal=${m.terminal}`));

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
  const denied = await fails("SyncCommand on an unknown phone", () =>
    instances.syncCommand({ command: "ls", instanceIds: ["nosuch01"] }));
  print(`error: ${denied.codeName} reason=${denied.reason} domain=${denied.domain} operation=${denied.metadata.operation}`);

  const bad = await fails("a shell operator", () =>
    instances.syncCommand({ command: "reboot; rm -rf /", instanceIds: [ids[0]] }));
  for (const v of bad.violations) print(`bad request: ${bad.codeName} ${v.field} (${v.reason}): ${v.description}`);
}
