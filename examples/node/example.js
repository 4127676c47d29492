// Calls koophone-gateway from Node with @grpc/grpc-js: list phones, a synchronous command, an asynchronous command
// followed with WatchTask, an error's ErrorInfo and a BadRequest decoded, and OpenSession to the end.
//
//   make clients && (cd examples/node && npm ci) && node examples/node/example.js [grpc-address]
//
// The services are loaded from clients/koophone.binpb (the contract without its validation/HTTP options, plus
// google/rpc); the error details are decoded with protobufjs from the google/rpc protos shipped in clients/proto.
"use strict";
const path = require("path");
const fs = require("fs");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");

const clients = path.join(__dirname, "..", "..", "clients");
const address = process.argv[2] || process.env.KOOPHONE_GRPC_ADDR || "127.0.0.1:9090";
const phoneIndex = 1; // each example opens its session on its own phone, so they can run against one gateway

const definition = protoLoader.loadFileDescriptorSetFromBuffer(fs.readFileSync(path.join(clients, "koophone.binpb")), {
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
});
const koophone = grpc.loadPackageDefinition(definition).koophone.v1;
const instances = new koophone.InstanceService(address, grpc.credentials.createInsecure());

// google.rpc.Status and its details, for the grpc-status-details-bin trailer.
const rpc = new protobuf.Root().loadSync(
  ["google/rpc/status.proto", "google/rpc/error_details.proto"].map((f) => path.join(clients, "proto", f)), { keepCase: true });
const Status = rpc.lookupType("google.rpc.Status");

const codeName = (code) => Object.keys(grpc.status).find((k) => grpc.status[k] === code);
const call = (method, request) =>
  new Promise((resolve, reject) => instances[method](request, (err, res) => (err ? reject(err) : resolve(res))));

// stream runs a server-streaming RPC to its end, handing each message to onMessage; resolves with the final status.
const stream = (method, request, onMessage) =>
  new Promise((resolve, reject) => {
    const s = instances[method](request);
    s.on("data", onMessage);
    s.on("error", reject);
    s.on("end", () => resolve("OK"));
  });

// details decodes the google.rpc.Status a gRPC error carries in its trailer.
function details(err) {
  const [bin] = err.metadata.get("grpc-status-details-bin");
  if (!bin) return [];
  return Status.decode(bin).details.map((any) => {
    const type = rpc.lookupType(any.type_url.split("/").pop());
    return { type: type.fullName.slice(1), value: type.toObject(type.decode(any.value)) };
  });
}

async function main() {
  const list = await call("ListInstances", { page_no: 1, page_size: 5 });
  const ids = list.result.map((p) => p.instance_id);
  console.log(`list: ${list.total_count} phones; this page: ${ids.join(", ")}`);

  const sync = await call("SyncCommand", { command: "getprop ro.product.model", instance_ids: [ids[0]] });
  for (const r of sync.cmd_results) console.log(`sync: ${r.instance_id} ${r.status} ${JSON.stringify(r.execute_msg)}`);

  const started = await call("AsyncCommand", { command: "getprop ro.serialno", instance_ids: [ids[0]] });
  console.log(`async: task ${started.task_id}`);
  await stream("WatchTask", { task_id: started.task_id }, (m) =>
    console.log(`watch: running=${m.running_count} succeeded=${m.succeeded_count} failed=${m.failed_count} terminal=${m.terminal}`));

  try {
    await call("SyncCommand", { command: "ls", instance_ids: ["nosuch01"] });
    throw new Error("SyncCommand on an unknown phone succeeded");
  } catch (err) {
    const info = details(err).find((d) => d.type === "google.rpc.ErrorInfo").value;
    console.log(`error: ${codeName(err.code)} reason=${info.reason} domain=${info.domain} operation=${info.metadata.operation}`);
  }

  try {
    await call("SyncCommand", { command: "reboot; rm -rf /", instance_ids: [ids[0]] });
    throw new Error("a shell operator was accepted");
  } catch (err) {
    const bad = details(err).find((d) => d.type === "google.rpc.BadRequest").value;
    for (const v of bad.field_violations) console.log(`bad request: ${codeName(err.code)} ${v.field} (${v.reason}): ${v.description}`);
  }

  const end = await stream("OpenSession", { user_id: "example-node", instance_id: ids[phoneIndex], assign: true }, (m) => {
    if (m.step === "prepared") console.log(`session: prepared ${m.prepared.instance_id} ${m.prepared.status} assigned=${m.assigned}`);
    if (m.step === "progress") console.log(`session: progress ${m.progress.status} waiting=${m.progress.waiting_count}`);
    if (m.step === "session") {
      const ice = m.session.resource.rtc.ice_signaling;
      console.log(`session: ready signalling=${ice.signaling_url} ice_servers=${ice.ice_servers.length} device_token=(${m.session.device_token.length} characters, not shown)`);
    }
  });
  console.log(`session: end ${end}`);
  instances.close();
}

main().catch((err) => {
  console.error(`example failed: ${err.stack || err}`);
  process.exit(1);
});
