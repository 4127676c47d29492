// Runs browser.ts's code under Node (whose fetch and streams are the browser's), against the REST mirror.
//   node dist/browser-run.js [http://host:port]
import { run } from "./browser.js";

await run(process.argv[2] ?? process.env.KOOPHONE_HTTP_URL ?? "http://127.0.0.1:8080", (line) => console.log(line));
console.log("browser: end OK");
