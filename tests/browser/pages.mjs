// Drives the system Chromium, headless, over the pages tinygpt writes, and checks them as a
// user would see them. Called by tests/pages.rs:
//
//   node pages.mjs attention PAGE.html EXPECTED.json SCREENSHOT.png
//   node pages.mjs report PAGE.html SCREENSHOT.png
//   node pages.mjs hostile PAGE.html TEXT
//   node pages.mjs watch PAGE.html SECONDS
//   node pages.mjs chat http://127.0.0.1:PORT/ MESSAGE EXPECTED_REPLY HOSTILE_TEXT
//
// EXPECTED.json is `tinygpt attention --format json` for the same prompt. Exits non-zero with
// a message on the first failed check; prints a JSON summary otherwise.

import puppeteer from "puppeteer-core";
import { pathToFileURL } from "node:url";
import { writeFileSync, readFileSync } from "node:fs";

const [mode, pagePath, ...rest] = process.argv.slice(2);
// A page file, or a page a server serves (`tinygpt serve`'s chat page).
const url = pagePath.startsWith("http") ? pagePath : pathToFileURL(pagePath).href;

function check(ok, message) {
  if (!ok) throw new Error(message);
}

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

// Everything a page does that it must not: console errors, uncaught exceptions, requests
// beyond its own file, dialogs (an executed alert() would open one).
const trouble = { errors: [], requests: [], dialogs: [] };

async function open(target) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 900 });
  page.on("console", (m) => { if (m.type() === "error") trouble.errors.push(m.text()); });
  page.on("pageerror", (e) => trouble.errors.push(String(e)));
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(target.split("#")[0]) && !u.startsWith("data:")) trouble.requests.push(u);
  });
  page.on("dialog", async (d) => { trouble.dialogs.push(d.message()); await d.dismiss(); });
  await page.goto(target, { waitUntil: "load" });
  return page;
}

function checkClean() {
  check(trouble.errors.length === 0, "console errors: " + JSON.stringify(trouble.errors));
  check(trouble.requests.length === 0, "network requests: " + JSON.stringify(trouble.requests));
  check(trouble.dialogs.length === 0, "dialogs opened: " + JSON.stringify(trouble.dialogs));
}

// Values travel out of the page as the text the page wrote (JSON has no −∞).
const chipValues = async (page) =>
  (await page.$$eval(".token", (chips) => chips.map((c) => ({ value: c.dataset.value, masked: c.classList.contains("masked") }))))
    .map((c) => ({ value: Number(c.value), masked: c.masked }));

async function select(page, layer, head) {
  await page.click(`canvas.thumb[data-layer="${layer}"][data-head="${head}"]`);
  const shown = await page.$eval("#selected-head", (e) => e.textContent);
  check(shown === `layer ${layer} head ${head}`, `selected head shows "${shown}"`);
}

// The screenshot is saved, then decoded in the page: it must not be blank.
async function screenshot(page, path, minInk = 0.02) {
  const png = await page.screenshot({ path, fullPage: true, ...(path.endsWith(".jpg") ? { quality: 70 } : {}) });
  const mime = path.endsWith(".jpg") ? "image/jpeg" : "image/png";
  const stats = await page.evaluate(async (b64, mime) => {
    const img = new Image();
    img.src = "data:" + mime + ";base64," + b64;
    await img.decode();
    const c = document.createElement("canvas");
    c.width = img.width;
    c.height = img.height;
    const ctx = c.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const px = ctx.getImageData(0, 0, c.width, c.height).data;
    const colours = new Set();
    let inked = 0;
    for (let i = 0; i < px.length; i += 4 * 7) {
      colours.add((px[i] << 16) | (px[i + 1] << 8) | px[i + 2]);
      if (px[i] + px[i + 1] + px[i + 2] < 600) inked++;
    }
    return { width: c.width, height: c.height, colours: colours.size, inked: inked / (px.length / 28) };
  }, Buffer.from(png).toString("base64"), mime);
  check(stats.colours > 50 && stats.inked > minInk, "blank screenshot: " + JSON.stringify(stats));
  return stats;
}

async function attention([expectedPath, shot]) {
  const expected = JSON.parse(readFileSync(expectedPath, "utf8"));
  const page = await open(url);
  const t = expected.tokens.length;
  const texts = await page.$$eval(".token", (chips) => chips.map((c) => c.firstChild.textContent));
  check(texts.length === t, `${texts.length} tokens on the page, ${t} in the prompt`);
  check(JSON.stringify(texts) === JSON.stringify(expected.tokens), "token texts differ: " + JSON.stringify(texts));

  let compared = 0, maxError = 0;
  const queries = [...new Set([0, 1, Math.floor(t / 2), t - 1])].filter((q) => q < t);
  const seen = {};
  for (const p of expected.patterns) {
    await select(page, p.layer, p.head);
    for (const q of queries) {
      await page.hover(`.token[data-index="${q}"]`);
      const chips = await chipValues(page);
      for (let k = 0; k < t; k++) {
        const want = p.weights[q][k];
        check(chips[k].masked === k > q, `layer ${p.layer} head ${p.head} query ${q} key ${k}: masked is ${chips[k].masked}`);
        if (k > q) check(chips[k].value === 0, `masked key ${k} of query ${q} shows ${chips[k].value}`);
        const error = Math.abs(chips[k].value - want);
        maxError = Math.max(maxError, error);
        check(error <= 1e-4, `layer ${p.layer} head ${p.head} [${q},${k}]: page ${chips[k].value}, model ${want}`);
        compared++;
      }
      seen[`${p.layer}/${p.head}/${q}`] = chips.map((c) => c.value);
    }
  }
  // Switching heads changes what a query shows (heads of a trained model differ).
  const last = t - 1;
  const rows = expected.patterns.map((p) => JSON.stringify(seen[`${p.layer}/${p.head}/${last}`]));
  check(new Set(rows).size === rows.length, "two heads show the same values for the last query");

  // The score view: query·key/√d for visible keys, −∞ for the future; the mask view: 0 / −∞.
  const p = expected.patterns[expected.patterns.length - 1];
  await select(page, p.layer, p.head);
  await page.click('button[data-view="scores"]');
  const q = Math.floor(t / 2);
  await page.hover(`.token[data-index="${q}"]`);
  let chips = await chipValues(page);
  for (let k = 0; k < t; k++) {
    if (k > q) check(chips[k].value === -Infinity, `scores: future key ${k} shows ${chips[k].value}`);
    else check(Math.abs(chips[k].value - p.scores[q][k]) <= 1e-4 * Math.max(1, Math.abs(p.scores[q][k])),
      `scores [${q},${k}]: page ${chips[k].value}, model ${p.scores[q][k]}`);
  }
  const smallText = await page.$eval(`.token[data-index="${t - 1}"] small`, (e) => e.textContent);
  check(q === t - 1 || smallText === "−∞", `a masked score reads "${smallText}"`);
  await page.click('button[data-view="mask"]');
  await page.hover(`.token[data-index="${q}"]`);
  chips = await chipValues(page);
  check(chips.every((c, k) => c.value === (k > q ? -Infinity : 0)), "mask view: " + JSON.stringify(chips));
  await page.click('button[data-view="pattern"]');
  await page.hover(`.token[data-index="${q}"]`);
  chips = await chipValues(page);
  check(Math.abs(chips[0].value - p.weights[q][0]) <= 1e-4, "back to the pattern view");

  // The table of most attended tokens lists every query.
  const topRows = await page.$$eval("#top tr", (r) => r.length);
  check(topRows === t + 1, `most-attended table has ${topRows} rows`);
  checkClean();
  await page.mouse.move(0, 0);
  const stats = await screenshot(page, shot);
  return { tokens: t, heads: expected.patterns.length, compared, maxError, screenshot: stats };
}

async function report([shot]) {
  const page = await open(url);
  const data = await page.$eval("#tinygpt-data", (e) => JSON.parse(e.textContent));
  const r = data.report;
  const name = await page.$eval("#run-name", (e) => e.textContent);
  check(name === r.run + " · " + r.state, "title: " + name);
  const summary = await page.$$eval("#summary tr", (rows) => rows.map((row) => row.textContent));
  check(summary.length === r.summary.length && summary.some((s) => s.startsWith("bits per byte")), "summary: " + summary);
  check((await page.$eval("#config", (e) => e.textContent)) === r.config, "config text");
  check((await page.$eval("#params", (e) => e.textContent)).includes("everything"), "parameter table");
  const sample = await page.$eval("#sample", (e) => e.textContent);
  check(r.sample && sample === r.sample.prompt + r.sample.continuation, "sample: " + sample);

  // The curves: hovering shows the values of a step; unticking val hides its line and dots.
  const box = await page.$eval("#loss-chart", (e) => { const b = e.getBoundingClientRect(); return [b.x, b.y, b.width, b.height]; });
  // The last step sits at the plot's right edge: 12 px margin inside a 1 px border.
  await page.mouse.move(box[0] + box[2] - 13, box[1] + box[3] / 2);
  const readout = await page.$eval("#curve-readout", (e) => e.textContent);
  const lastStep = r.curves.step[r.curves.step.length - 1];
  check(readout.startsWith(`step ${lastStep} ·`), "readout at the right edge: " + readout);
  const lastVal = r.curves.val_loss[r.curves.val_loss.length - 1];
  if (lastVal !== null) check(readout.includes("val " + lastVal.toFixed(4)), "readout: " + readout);
  const shown = () => page.$$eval(".series-val", (els) => els.map((e) => getComputedStyle(e).display));
  check((await shown()).every((d) => d !== "none"), "val line hidden at first");
  await page.click("#show-val");
  check((await shown()).every((d) => d === "none"), "val line still shown after unticking");
  await page.click("#show-val");
  check((await page.$$("#loss-chart path")).length >= 2, "loss chart has no lines");

  // The explorer for the sample: its tokens are the sample's first ones.
  const tokens = await page.$$eval(".token", (chips) => chips.map((c) => c.firstChild.textContent));
  check(tokens.length === data.explorer.tokens.length && tokens.length > 1, "explorer tokens: " + tokens.length);
  checkClean();
  const stats = await screenshot(page, shot);
  return { steps: r.curves.step.length, tokens: tokens.length, screenshot: stats };
}

// Corpus text with markup in it is shown as text and never runs.
async function hostile([text]) {
  const page = await open(url);
  await new Promise((r) => setTimeout(r, 300));
  const images = await page.$$eval("img", (els) => els.length);
  check(images === 0, `${images} <img> elements made from the text`);
  const shownTokens = await page.$$eval(".token", (chips) => chips.map((c) => c.firstChild.textContent).join(""));
  const visible = text.replaceAll(" ", "␣");
  check(shownTokens.includes(visible), "tokens show " + JSON.stringify(shownTokens));
  const sample = await page.$("#sample .prompt");
  if (sample) {
    const prompt = await page.$eval("#sample .prompt", (e) => e.textContent);
    check(prompt.includes(text), "sample prompt shows " + JSON.stringify(prompt));
    check((await page.$eval("#config", (e) => e.textContent)).includes(text), "config lost the text");
  }
  checkClean();
  return { shown: shownTokens.length };
}

// A page written by `report --watch` reloads itself and shows later steps.
async function watch([seconds]) {
  const page = await open(url);
  const step = () => page.$eval("#tinygpt-data", (e) => JSON.parse(e.textContent).report.curves.step.at(-1) ?? 0);
  const first = await step();
  const deadline = Date.now() + Number(seconds) * 1000;
  const steps = [first];
  while (Date.now() < deadline && steps.length < 3) {
    await page.waitForNavigation({ waitUntil: "load", timeout: Math.max(1, deadline - Date.now()) }).catch(() => {});
    const now = await step().catch(() => null);
    if (now !== null && now > steps[steps.length - 1]) steps.push(now);
  }
  check(steps.length >= 3, "the page did not reload with later steps: " + JSON.stringify(steps));
  checkClean();
  return { steps };
}

// `tinygpt serve`'s page: a message streams its reply (or completion, for a model without role
// tokens) into the page, as the API answers it;
// an error (a message the vocabulary cannot spell) is shown as text, never run.
async function chat([message, expected, hostileText]) {
  const page = await open(url);
  await page.waitForFunction(() => document.getElementById("subtitle").textContent.includes("context"));
  const send = async (text) => {
    const before = await page.$$eval(".turn", (t) => t.length);
    await page.$eval("#temperature", (e) => { e.value = "0"; });
    await page.type("#input", text);
    await page.click("#send");
    await page.waitForFunction((n) => document.querySelectorAll(".turn").length > n && !document.getElementById("send").disabled, {}, before);
  };
  await send(message);
  // A chat model's reply, or a completion (the prompt and its continuation).
  const reply = await page.$$eval(".assistant, .completion", (t) => t.at(-1).textContent);
  check(reply === expected, "the page shows " + JSON.stringify(reply) + ", the API gives " + JSON.stringify(expected));
  await send(hostileText);
  const images = await page.$$eval("img", (els) => els.length);
  check(images === 0, `${images} <img> elements made from a message`);
  const shown = await page.$$eval(".turn", (t) => t.map((x) => x.textContent).join("\n"));
  check(shown.includes(hostileText), "the message is not shown as text: " + JSON.stringify(shown));
  const error = await page.$$eval(".error", (t) => t.map((x) => x.textContent));
  check(error.length === 1 && error[0].includes("does not know"), "the API's error is not shown: " + JSON.stringify(error));
  // The browser logs the one 400 it was meant to get; anything else is trouble.
  const seen400 = trouble.errors.filter((e) => e.includes("status of 400"));
  check(seen400.length === 1, "the 400 was not seen once: " + JSON.stringify(trouble.errors));
  trouble.errors = trouble.errors.filter((e) => !e.includes("status of 400"));
  checkClean();
  // A chat is mostly white space: a few lines of text are what it shows.
  const stats = await screenshot(page, rest[3], 0.005);
  return { reply, screenshot: stats };
}

try {
  const modes = { attention, report, hostile, watch, chat };
  check(mode in modes, "unknown mode " + mode);
  const result = await modes[mode](rest);
  console.log(JSON.stringify(result));
  await browser.close();
} catch (e) {
  console.error("page check failed: " + e.message);
  await browser.close();
  process.exit(1);
}
