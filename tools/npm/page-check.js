// Opens a test page in Debian's headless Chromium (driven by playwright-core), waits until the page's own script
// sets window.report, and prints {report, consoleErrors} as one JSON line. The page does the checking; the Go test
// that served it reads the report. Used by internal/apidocs's SSE browser test:
//   node tools/npm/page-check.js http://127.0.0.1:1234/page.html
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

async function main() {
  const [url] = process.argv.slice(2);
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "koophone-page-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const out = { consoleErrors: [] };
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on("console", (m) => m.type() === "error" && out.consoleErrors.push(m.text()));
    page.on("pageerror", (e) => out.consoleErrors.push(String(e)));
    await page.goto(url, { waitUntil: "load" });
    await page.waitForFunction(() => window.report !== undefined, null, { timeout: 90000 });
    out.report = await page.evaluate(() => window.report);
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  console.log(JSON.stringify(out));
}

main().catch((err) => {
  console.error(`page-check failed: ${err.stack || err}`);
  process.exit(1);
});
