// The page's script: runs browser.ts against the gateway named by the page's query (?gateway=http://host:port and
// ?protocol=connect|grpc-web, and ?key=… when the gateway wants an API key), shows each line, and leaves them in window.report for a test to read.
//   npm run bundle   (esbuild: dist/page.bundle.js, one ES module for a <script type="module">)
import { run, type Protocol } from "./browser.js";

const query = new URLSearchParams(location.search);
const lines: string[] = [];
const out = document.getElementById("out");
const print = (line: string) => {
  lines.push(line);
  if (out) out.textContent += line + "\n";
};
const report = (error?: string) => Object.assign(globalThis, { report: { lines, error } });

// A page would take its key from its user, not its address; the test passes one this way (?key=).
run(query.get("gateway") ?? location.origin, print, {
  protocol: (query.get("protocol") ?? "connect") as Protocol, apiKey: query.get("key") ?? undefined,
})
  .then(() => report(), (err: unknown) => report(String(err instanceof Error ? err.stack ?? err.message : err)));
