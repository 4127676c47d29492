// Opens the gateway's /docs page in Debian's headless Chromium (driven by playwright-core), lists the services and
// operations Swagger UI shows, runs "Try it out" on ListInstances, saves a screenshot, and prints one JSON report.
// Used by internal/apidocs's browser test:  node tools/npm/docs-check.js http://127.0.0.1:8080 /tmp/koophone-docs.png
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

async function main() {
  const [base, screenshot] = process.argv.slice(2);
  const origin = new URL(base).origin;
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "koophone-docs-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 900 },
  });
  const report = { consoleErrors: [], outsideRequests: [], failedRequests: [] };
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on("console", (m) => m.type() === "error" && report.consoleErrors.push(m.text()));
    page.on("request", (r) => !r.url().startsWith(origin) && !r.url().startsWith("data:") && report.outsideRequests.push(r.url()));
    page.on("requestfailed", (r) => report.failedRequests.push(r.url()));
    page.on("response", (r) => r.status() >= 400 && report.failedRequests.push(`${r.status()} ${r.url()}`));

    await page.goto(`${base}/docs`, { waitUntil: "load" });
    await page.waitForSelector(".opblock-tag", { timeout: 30000 });
    report.title = await page.title();
    report.apiTitle = (await page.textContent(".info .title"))?.trim();
    report.services = await page.$$eval(".opblock-tag", (els) => els.map((e) => e.getAttribute("data-tag")));
    report.operations = await page.$$eval(".opblock", (els) => els.map((e) => e.id.replace(/^operations-/, "")));
    report.screenshotTop = screenshot.replace(/\.png$/, "-top.png"); // the first screen, as a reader sees it
    await page.screenshot({ path: report.screenshotTop });

    // Try it out: ListInstances, page 1 of 5.
    const op = page.locator("#operations-InstanceService-InstanceService_ListInstances");
    await op.locator(".opblock-summary").click();
    await op.locator(".try-out__btn").click();
    await op.locator('tr[data-param-name="page_no"] input').fill("1");
    await op.locator('tr[data-param-name="page_size"] input').fill("5");
    await op.locator(".execute").click();
    const live = op.locator(".live-responses-table .response .response-col_status").first();
    await live.waitFor({ timeout: 30000 });
    report.tryItStatus = (await live.textContent()).trim();
    const body = (await op.locator(".live-responses-table .response .response-col_description .microlight, .live-responses-table .response .response-col_description pre").first().textContent()).trim();
    report.tryItPhones = JSON.parse(body).result.map((p) => p.instance_id);
    await op.scrollIntoViewIfNeeded();
    await page.screenshot({ path: screenshot, fullPage: true });
    report.screenshot = screenshot;
    // And the ListInstances operation with its answer, readable at a glance.
    report.screenshotTryIt = screenshot.replace(/\.png$/, "-tryit.png");
    await op.screenshot({ path: report.screenshotTryIt });
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  console.log(JSON.stringify(report));
}

main().catch((err) => {
  console.error(`docs-check failed: ${err.stack || err}`);
  process.exit(1);
});
