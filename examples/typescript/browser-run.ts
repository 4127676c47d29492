// Runs browser.ts's code under Node (whose fetch and streams are the browser's), against the REST port's Connect
// and gRPC-web endpoints: node dist/browser-run.js [http://host:port] [connect|grpc-web]
import { run, type Protocol } from "./browser.js";

const protocol = (process.argv[3] ?? "connect") as Protocol;
await run(process.argv[2] ?? process.env.KOOPHONE_HTTP_URL ?? "http://127.0.0.1:8080", (line) => console.log(line),
  { protocol, apiKey: process.env.KOOPHONE_API_KEY });
console.log("browser: end OK");
