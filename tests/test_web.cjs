// The page in a real browser (Debian's chromium, driven by playwright-core), against a running
// `facerec serve` started by tests/test_web.sh, which passes:
//   FACEREC_URL   the service (API_KEY set to FACEREC_KEY, MAX_WAIT_SECONDS=0: every upload
//                 answers 202 and the page must poll /status/{id})
//   FACES         ../shared/datasets/faces
//   ARTIFACTS     where web.png, web-people.png (and web-fail.png on a failure) go
//   CHROMIUM      the browser binary
// Prints one line per check and "N checks, M failed"; exits 1 when a check failed.
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const url = process.env.FACEREC_URL;
const key = process.env.FACEREC_KEY;
const faces = process.env.FACES;
const artifacts = process.env.ARTIFACTS;
const LONG = 180000; // recognition and enrolment on a loaded 2-core machine: be patient

const people = {
  obama: [`${faces}/face_recognition/obama/obama.jpg`, `${faces}/face_recognition/obama/obama1.jpg`],
  biden: [`${faces}/face_recognition/biden/biden.jpg`, `${faces}/face_recognition/biden/biden2.jpg`],
  odd: [`${faces}/face_recognition/kit_harington/john1.jpeg`],
};
const ODD = `<b>Kit & "Jon" O'Snów`; // must show as text, never as markup ('/' is not allowed)
const single = `${faces}/face_recognition/obama/obama2.jpg`;
const group = `${faces}/face_recognition/groups/obama_and_biden.jpg`;

let checks = 0;
let failed = 0;
function check(what, ok, detail) {
  checks++;
  if (ok) console.log(`ok   ${what}`);
  else {
    failed++;
    console.log(`FAIL ${what}${detail ? ': ' + detail : ''}`);
  }
}

// Runs step; a thrown error (a timeout waiting for a condition) is a failed check. Steps build
// on each other: after a failure the rest are not run (each would only wait out its timeout).
async function step(what, fn) {
  if (failed) {
    console.log(`skip ${what}`);
    return;
  }
  try {
    const detail = await fn();
    check(what, detail === undefined || detail === true, typeof detail === 'string' ? detail : undefined);
  } catch (e) {
    check(what, false, String(e.message || e).split('\n')[0]);
  }
}

async function enrol(page, name, files) {
  await page.fill('#enrol-name', name);
  await page.setInputFiles('#enrol-photos', files);
  await page.$eval('#enrol-status', (e) => (e.textContent = '')); // no earlier answer counts
  await page.click('#enrol-button');
  await page.waitForFunction(
    () => /Enrolled|Not enrolled/.test(document.getElementById('enrol-status').textContent),
    null,
    { timeout: LONG },
  );
  return page.textContent('#enrol-status');
}

const person = (page, name) => page.locator('li.person', { has: page.locator('.name', { hasText: name }) });

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'], // root in a container
    timeout: LONG,
  });
  const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
  page.setDefaultTimeout(60000);
  const consoleErrors = [];
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  const polled = [];
  page.on('request', (r) => r.url().includes('/status/') && polled.push(r.url()));
  page.on('dialog', (d) => d.accept()); // the delete confirmation

  try {
    // ---- the API key ----
    await step('the page loads with its script and style', async () => {
      const r = await page.goto(url + '/#people');
      if (!r.ok()) return `GET / answered ${r.status()}`;
      const bg = await page.evaluate(() => getComputedStyle(document.querySelector('header')).borderBottomStyle);
      return bg === 'solid' || `app.css not applied (${bg})`;
    });
    await step('without a key the people view asks for it', async () => {
      await page.waitForSelector('#key-form:not([hidden])');
      const msg = await page.textContent('#key-msg');
      return /needs an API key/.test(msg) || msg;
    });
    await step('a wrong key is refused clearly', async () => {
      await page.fill('#key', 'not-the-key');
      await page.click('#key-form button');
      await page.waitForFunction(() => /refused/.test(document.getElementById('key-msg').textContent));
    });
    await step('the right key opens the list (kept in sessionStorage)', async () => {
      await page.fill('#key', key);
      await page.click('#key-form button');
      await page.waitForSelector('#key-form', { state: 'hidden' });
      await page.waitForFunction(() => /No one is enrolled/.test(document.getElementById('people-status').textContent));
      const kept = await page.evaluate(() => sessionStorage.getItem('facerec.apiKey'));
      return kept === key || `sessionStorage holds ${kept}`;
    });

    // ---- enrolment and the list ----
    await step('enrol Barack Obama from two photos', async () => {
      const t = await enrol(page, 'Barack Obama', people.obama);
      return /Enrolled 2 photos of Barack Obama/.test(t) || t;
    });
    await step('enrol Joe Biden from two photos', async () => {
      const t = await enrol(page, 'Joe Biden', people.biden);
      return /Enrolled 2 photos of Joe Biden/.test(t) || t;
    });
    await step('enrol a name with markup and quotes in it', async () => {
      const t = await enrol(page, ODD, people.odd);
      return t.includes(`Enrolled 1 photo of ${ODD}`) || t;
    });
    await step('the list shows each person with their example count', async () => {
      await page.waitForFunction(() => document.querySelectorAll('li.person').length === 3);
      const count = await person(page, 'Barack Obama').locator('.count').textContent();
      return count === '2 examples' || count;
    });
    await step('... and a thumbnail fetched with the key', async () => {
      const img = person(page, 'Barack Obama').locator('.thumb img');
      await img.waitFor();
      await page.waitForFunction((i) => i.complete && i.naturalWidth > 0, await img.elementHandle());
      const [w, src] = await img.evaluate((i) => [i.naturalWidth, i.src]);
      return (w === 160 && src.startsWith('blob:')) || `${w} px from ${src}`;
    });
    await step('the odd name is text, not markup', async () => {
      const li = person(page, '<b>Kit');
      const [text, tags] = await li.evaluate((e) => [e.querySelector('.name').textContent, e.querySelectorAll('b').length]);
      return (text === ODD && tags === 0) || `${text} with ${tags} <b>`;
    });
    await step('its thumbnail loads through its encoded name', async () => {
      await person(page, '<b>Kit').locator('.thumb img').waitFor();
    });

    // ---- recognition ----
    await page.goto(url + '/#recognise');
    await step('a photo dropped on the zone is recognised: the name next to a box', async () => {
      const b64 = fs.readFileSync(single).toString('base64');
      await page.evaluate((data) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'obama2.jpg', { type: 'image/jpeg' }));
        const drop = new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true });
        document.getElementById('drop').dispatchEvent(drop);
      }, b64);
      await page.waitForSelector('.box.known .name:text-is("Barack Obama")', { timeout: LONG });
      const sim = await page.textContent('.box.known .sim');
      return /^0\.\d\d$/.test(sim) || `similarity ${sim}`;
    });
    await step('... after polling the pending job', async () => polled.length > 0 || 'no GET /status/ seen');
    await step('a group photo chosen with the picker: every face boxed and named', async () => {
      await page.setInputFiles('#photo', group);
      await page.waitForSelector('.box.known .name:text-is("Joe Biden")', { timeout: LONG });
      const names = await page.$$eval('.box .name', (n) => n.map((e) => e.textContent).sort());
      return (names.includes('Barack Obama') && names.includes('Joe Biden')) || names.join(', ');
    });
    await step('... strangers are labelled Unknown in another colour', async () => {
      const unknown = page.locator('.box.unknown').first();
      await unknown.waitFor();
      const label = await unknown.locator('.name').textContent();
      const known = await page.locator('.box.known').first().evaluate((e) => getComputedStyle(e).borderTopColor);
      const other = await unknown.evaluate((e) => getComputedStyle(e).borderTopColor);
      return (label === 'Unknown' && known !== other) || `${label}: ${known} vs ${other}`;
    });
    await step('... boxes lie on the faces (inside the photo, where detect puts them)', async () => {
      const img = await page.locator('#shown').boundingBox();
      const o = await page.locator('.box', { has: page.locator('.name:text-is("Barack Obama")') }).boundingBox();
      const b = await page.locator('.box', { has: page.locator('.name:text-is("Joe Biden")') }).boundingBox();
      const inside = (r) => r.x >= img.x - 1 && r.y >= img.y - 1 && r.x + r.width <= img.x + img.width + 1 &&
        r.y + r.height <= img.y + img.height + 1;
      // obama_and_biden.jpg: Obama at x 1142..1330, Biden at 755..931 of 2000 (facerec detect)
      const ox = (o.x - img.x) / img.width;
      const bx = (b.x - img.x) / img.width;
      return (inside(o) && inside(b) && Math.abs(ox - 0.571) < 0.02 && Math.abs(bx - 0.377) < 0.02) ||
        `Obama at ${ox.toFixed(3)}, Biden at ${bx.toFixed(3)} of the width`;
    });
    await step('... the status line and the JSON answer are shown', async () => {
      const status = await page.textContent('#status');
      const json = JSON.parse(await page.textContent('#json'));
      return (/faces found/.test(status) && json.status === 'done' && json.faces.length >= 3) || status;
    });
    fs.mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: path.join(artifacts, 'web.png'), fullPage: true });

    // ---- deletion ----
    await page.goto(url + '/#people');
    await person(page, 'Joe Biden').locator('.thumb img').waitFor();
    await page.screenshot({ path: path.join(artifacts, 'web-people.png') });
    await step('delete removes the person from the list', async () => {
      const li = person(page, '<b>Kit');
      await li.locator('button.delete').click();
      await li.waitFor({ state: 'detached' });
      await page.waitForFunction(() => /Deleted/.test(document.getElementById('people-status').textContent));
      const left = await page.$$eval('li.person .name', (n) => n.map((e) => e.textContent).sort());
      return left.join(',') === 'Barack Obama,Joe Biden' || left.join(', ');
    });
    await step('... and its thumbnail from the store (404 after)', async () => {
      const r = await page.request.get(`${url}/people/${encodeURIComponent(ODD)}/photo`, { headers: { 'X-Api-Key': key } });
      return r.status() === 404 || `answered ${r.status()}`;
    });
    await step('no script errors in the console', async () =>
      consoleErrors.filter((e) => !/status of 40[14]/.test(e)).length === 0 || consoleErrors.join(' | '));
  } catch (e) {
    check('the browser session', false, String(e.message || e));
  }
  if (failed) {
    fs.mkdirSync(artifacts, { recursive: true });
    await page.screenshot({ path: path.join(artifacts, 'web-fail.png'), fullPage: true }).catch(() => {});
    console.log('status lines:', JSON.stringify(await page.evaluate(() =>
      [...document.querySelectorAll('.status')].map((s) => s.textContent)).catch(() => [])));
  }
  await browser.close();
  console.log(`${checks} checks, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})().catch((e) => {
  console.log(`FAIL the browser could not be driven: ${e.message || e}`);
  process.exit(1);
});
