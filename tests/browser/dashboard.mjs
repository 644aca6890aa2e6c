#!/usr/bin/env node
// The token dashboard in a real browser: playwright-core drives Debian's /usr/bin/chromium
// (TG_CHROMIUM overrides it) against a real tollgated + PostgreSQL that
// tests/integration/test_dashboard.c started. It signs in (after a wrong password), creates
// a token and reads its plaintext, uses it, reads its usage, rotates it, revokes it and
// signs out, checking each step against the API from node, and fails on any console
// error, page error, CSP violation or request to another origin. The token's name and the
// usage row's user agent carry HTML: it must show as text and never run; a plaintext on
// screen at sign-out must be gone.
//
// Usage: node dashboard.mjs BASE_URL EMAIL PASSWORD
// With TG_DASHBOARD_SECRETS_FILE set, the credentials it saw (JWT, API tokens) are appended
// there as "kind<TAB>value" lines, for the fixture's secrets audit; with TG_DASHBOARD_SHOTS
// set to a folder, screenshots of the main views land there (for a person to look at), and
// TG_DASHBOARD_SCREENSHOT names the file for a screenshot on failure. Exit 0: passed.
import {appendFileSync} from 'node:fs';
import {chromium} from 'playwright-core';

const [baseUrl, email, password] = process.argv.slice(2);
if (!baseUrl || !email || !password) {
    console.error('usage: node dashboard.mjs BASE_URL EMAIL PASSWORD');
    process.exit(2);
}
const CHROMIUM = process.env.TG_CHROMIUM || '/usr/bin/chromium';
const STEP_TIMEOUT_MS = 10000; // one UI step; the usage row may take the collector ~1 s
const TOTAL_TIMEOUT_MS = 60000; // the whole run, a backstop for a hung browser
// HTML that would run if the page wrote it as markup (CSP aside): each payload sets
// window.__pwned. The user agent is stored up to 64 bytes, so it carries one payload.
const IMG_PAYLOAD = '<img src=x onerror="window.__pwned=1">';
const SCRIPT_PAYLOAD = '<script>window.__pwned=2</script>';
const USER_AGENT = `tgdt/1 ${IMG_PAYLOAD}`;

const started = Date.now();
let currentStep = 'start';
const problems = []; // console errors, page errors, CSP violations, foreign requests
// A failed fetch makes Chromium log "Failed to load resource: ... status of N": allowed
// only for the statuses a step provokes on purpose (the wrong password's 401).
let allowedFailures = new Set();

function log(message) {
    console.log(`[dashboard] +${Date.now() - started} ms ${message}`);
}

function step(name) {
    currentStep = name;
    log(name);
}

function check(condition, message) {
    if (!condition) throw new Error(message);
}

async function shot(page, name) {
    const dir = process.env.TG_DASHBOARD_SHOTS;
    if (dir) await page.screenshot({path: `${dir}/${name}.png`, fullPage: true});
}

function recordSecret(kind, value) {
    const file = process.env.TG_DASHBOARD_SECRETS_FILE;
    if (file && value) appendFileSync(file, `${kind}\t${value}\n`, {mode: 0o600});
}

function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

// Polls fn() until it returns a truthy value or the deadline passes.
async function waitFor(what, fn, timeoutMs = STEP_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
        last = await fn();
        if (last) return last;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await sleep(100);
    }
}

// GET /api/v1/me from node with a credential: the API itself, not the page.
async function me(credential) {
    const res = await fetch(`${baseUrl}/api/v1/me`, {
        headers: {Authorization: `Bearer ${credential}`, 'User-Agent': USER_AGENT},
    });
    const body = await res.text();
    return {status: res.status, json: res.status === 200 ? JSON.parse(body) : null};
}

// The HTML payloads stayed text: nothing set window.__pwned and no element of theirs exists.
async function checkInert(page, where) {
    const found = await page.evaluate(() => ({
        pwned: typeof window.__pwned,
        img: document.querySelectorAll('img').length,
        script: document.querySelectorAll('body script').length,
    }));
    check(found.pwned === 'undefined', `${where}: window.__pwned is set: the page ran HTML from the data`);
    check(found.img === 0 && found.script === 0, `${where}: ${found.img} img and ${found.script} script elements in the page`);
}

async function text(page, selector) {
    return (await page.locator(selector).first().textContent()) ?? '';
}

function watch(page, context) {
    page.on('console', (msg) => {
        if (msg.type() !== 'error' && msg.type() !== 'warning') return;
        const m = /^Failed to load resource: the server responded with a status of (\d+)/.exec(msg.text());
        if (m && allowedFailures.has(Number(m[1]))) return;
        problems.push(`console ${msg.type()} during "${currentStep}": ${msg.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`page error during "${currentStep}": ${err.message}`));
    context.on('request', (req) => {
        if (!req.url().startsWith(`${baseUrl}/`)) problems.push(`request to another origin: ${req.url()}`);
    });
    page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText}`));
    page.on('response', (res) => {
        if (res.status() >= 400 && !allowedFailures.has(res.status()))
            problems.push(`HTTP ${res.status()} for ${res.request().method()} ${res.url()} during "${currentStep}"`);
    });
}

async function run(page, context) {
    let jwt = null;
    page.on('response', async (res) => {
        if (res.url() === `${baseUrl}/api/v1/auth/login` && res.status() === 200) {
            jwt = (await res.json()).token;
            recordSecret('jwt', jwt);
        }
    });
    // Every document the page loads reports CSP violations into a list we read back.
    await page.addInitScript(() => {
        window.__tgViolations = [];
        document.addEventListener('securitypolicyviolation', (e) => {
            window.__tgViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'}`);
        });
    });

    step('open /dashboard (308 to /dashboard/)');
    const nav = await page.goto(`${baseUrl}/dashboard`, {waitUntil: 'load'});
    check(nav && nav.status() === 200, `GET /dashboard/ answered ${nav && nav.status()}`);
    check(page.url() === `${baseUrl}/dashboard/`, `ended at ${page.url()}, not /dashboard/`);
    await page.locator('#signin-email').waitFor({state: 'visible'});
    check(await page.locator('#tokens-view').isHidden(), 'the token view shows before sign-in');

    step('wrong password');
    allowedFailures = new Set([401]);
    await page.fill('#signin-email', email);
    await page.fill('#signin-password', `${password}-wrong`);
    await page.click('#signin-submit');
    await waitFor('the sign-in error', async () => /wrong/.test(await text(page, '#signin-error')));
    check(await page.locator('#tokens-view').isHidden(), 'a wrong password showed the token view');
    allowedFailures = new Set();

    step('sign in');
    await page.fill('#signin-password', password);
    await page.click('#signin-submit');
    await waitFor('the signed-in email', async () => (await text(page, '#whoami')) === email);
    check(await page.locator('#signin-view').isHidden(), 'the sign-in form still shows');
    check(jwt !== null, 'no JWT seen in the login answer');
    const stored = await page.evaluate(() => ({
        local: localStorage.length,
        session: sessionStorage.length,
        cookie: document.cookie,
    }));
    check(stored.local === 0 && stored.session === 0 && stored.cookie === '', `the page stored something: ${JSON.stringify(stored)}`);

    step('create a token');
    const name = `browser-${Date.now()} ${IMG_PAYLOAD}${SCRIPT_PAYLOAD}`;
    await page.fill('#create-name', name);
    await page.click('#create-submit');
    await page.locator('#secret-panel').waitFor({state: 'visible'});
    const plaintext = await page.inputValue('#secret-value');
    recordSecret('api_token', plaintext);
    check(/^tgk_[0-9A-Za-z]{38}$/.test(plaintext), 'the plaintext shown is not an API token');
    check(/shown once/i.test(await text(page, '#secret-panel')), 'no "shown once" warning');
    await shot(page, '1-created');

    step('copy button');
    await page.click('#secret-copy');
    await waitFor('the copy status', async () => /Copied|Ctrl\+C/.test(await text(page, '#secret-copy-status')));
    if (/Copied/.test(await text(page, '#secret-copy-status'))) {
        const copied = await page.evaluate(() => navigator.clipboard.readText());
        check(copied === plaintext, 'the clipboard does not hold the token');
        log('copied to the clipboard');
    } else {
        log('the browser refused the clipboard: the page selected the token instead');
    }

    step('the token works against the API');
    const first = await me(plaintext);
    check(first.status === 200, `GET /api/v1/me with the new token: ${first.status}`);
    check(first.json.auth.method === 'api_token' && first.json.user.email === email, 'GET /api/v1/me: wrong identity');
    const tokenId = first.json.auth.tokenId;
    check((await me(plaintext)).status === 200, 'second GET /api/v1/me failed');

    step('the token is listed');
    const row = page.locator(`#tokens-body tr[data-token-id="${tokenId}"]`);
    await row.waitFor({state: 'visible'});
    const rowText = await row.textContent();
    check(rowText.includes(name) && rowText.includes(plaintext.slice(0, 12)), `row: ${rowText}`);
    check(!rowText.includes(plaintext), 'the list shows the plaintext');
    check((await row.locator('td', {hasText: IMG_PAYLOAD}).first().isVisible()), 'the name\'s HTML is not visible as text');
    await checkInert(page, 'the token list');
    check((await row.locator('.status').textContent()) === 'active', 'the new token is not active');

    step('usage shows the requests');
    await row.locator('button[data-action="usage"]').click();
    await page.locator('#usage-panel').waitFor({state: 'visible'});
    await waitFor('a usage row for GET /api/v1/me', async () => {
        const rows = await page.locator('#usage-body tr').allTextContents();
        if (rows.some((r) => r.includes('/api/v1/me') && r.includes(USER_AGENT))) return true;
        await page.click('#usage-refresh');
        await sleep(200);
        return false;
    });
    check(
        (await page.locator('#usage-body td', {hasText: USER_AGENT}).first().isVisible()),
        'the user agent\'s HTML is not visible as text',
    );
    await checkInert(page, 'the usage rows');
    // The page and the summary are two queries: the refresh that first shows the rows may
    // have read the summary just before the collector's commit, so refresh until it counts.
    await waitFor('the summary total', async () => {
        if (Number(await text(page, '#summary-body td')) >= 1) return true;
        await page.click('#usage-refresh');
        await sleep(200);
        return false;
    });
    check((await page.locator('#summary-chart .bar').count()) > 0, 'no bars in the summary chart');
    check(/Page 1 of 1/.test(await text(page, '#usage-pageinfo')), `page info: ${await text(page, '#usage-pageinfo')}`);
    await shot(page, '2-usage');

    step('rotate with a 300 s overlap');
    await page.click('#secret-done');
    check(await page.locator('#secret-panel').isHidden(), 'the plaintext box did not close');
    check((await page.inputValue('#secret-value')) === '', 'the closed box still holds the plaintext');
    await row.locator('button[data-action="rotate"]').click();
    await page.locator('#confirm-dialog[open]').waitFor({state: 'visible'});
    await page.fill('#rotate-overlap', '300');
    await page.click('#confirm-ok');
    await page.locator('#secret-panel').waitFor({state: 'visible'});
    const rotated = await page.inputValue('#secret-value');
    recordSecret('api_token', rotated);
    check(/^tgk_[0-9A-Za-z]{38}$/.test(rotated) && rotated !== plaintext, 'rotation showed no new token');
    const second = await me(rotated);
    check(second.status === 200 && second.json.auth.tokenId !== tokenId, `the rotated token: ${second.status}`);
    await waitFor('the old token marked rotated', async () => (await row.locator('.status').textContent()) === 'rotated');
    check((await me(plaintext)).status === 200, 'the old token stopped working inside its overlap');
    await page.click('#secret-done');

    step('revoke the old token');
    await row.locator('button[data-action="revoke"]').click();
    await page.locator('#confirm-dialog[open]').waitFor({state: 'visible'});
    await shot(page, '3-confirm-revoke');
    await page.click('#confirm-ok');
    await waitFor('the token marked revoked', async () => (await row.locator('.status').textContent()) === 'revoked');
    check(await row.locator('button[data-action="revoke"]').isDisabled(), 'Revoke still enabled on a revoked token');
    check((await me(plaintext)).status === 401, 'the revoked token still works');
    check((await me(rotated)).status === 200, 'the rotated token stopped working');

    step('sign out with a plaintext on screen');
    await page.fill('#create-name', `browser-last-${Date.now()}`);
    await page.click('#create-submit');
    await page.locator('#secret-panel').waitFor({state: 'visible'});
    const last = await page.inputValue('#secret-value');
    recordSecret('api_token', last);
    check(/^tgk_[0-9A-Za-z]{38}$/.test(last), 'the last token\'s plaintext is not shown');
    await page.click('#signout');
    await page.locator('#signin-view').waitFor({state: 'visible'});
    check(await page.locator('#tokens-view').isHidden(), 'the token view still shows');
    check((await text(page, '#whoami')) === '', 'the email still shows');
    check(await page.locator('#secret-panel').isHidden(), 'the plaintext box still shows after sign-out');
    check((await page.inputValue('#secret-value')) === '', 'the plaintext box still holds the token after sign-out');
    check(!(await page.content()).includes(last), 'the plaintext is still in the page after sign-out');
    await checkInert(page, 'after sign-out');
    check((await me(jwt)).status === 401, 'the session JWT still works after sign-out');
    await shot(page, '4-signed-out');

    step('no CSP violation');
    const violations = await page.evaluate(() => window.__tgViolations);
    for (const v of violations) problems.push(`CSP violation: ${v}`);
}

async function main() {
    const timer = setTimeout(() => {
        console.error(`[dashboard] FAILED: no end after ${TOTAL_TIMEOUT_MS} ms (step "${currentStep}")`);
        process.exit(1);
    }, TOTAL_TIMEOUT_MS);
    let browser = null;
    let failure = null;
    try {
        browser = await chromium.launch({executablePath: CHROMIUM, headless: true, timeout: STEP_TIMEOUT_MS * 2});
        const context = await browser.newContext({userAgent: 'tollgate-dashboard-browser-test'});
        await context.grantPermissions(['clipboard-read', 'clipboard-write'], {origin: baseUrl});
        context.setDefaultTimeout(STEP_TIMEOUT_MS);
        const page = await context.newPage();
        watch(page, context);
        try {
            await run(page, context);
        } catch (err) {
            failure = err;
            const failureShot = process.env.TG_DASHBOARD_SCREENSHOT;
            if (failureShot) await page.screenshot({path: failureShot, fullPage: true}).catch(() => {});
        }
    } catch (err) {
        failure = failure || err;
    } finally {
        if (browser) await browser.close().catch(() => {});
        clearTimeout(timer);
    }
    if (failure) console.error(`[dashboard] FAILED at step "${currentStep}": ${failure.stack || failure}`);
    for (const p of problems) console.error(`[dashboard] problem: ${p}`);
    if (failure || problems.length > 0) process.exit(1);
    log('passed');
}

main();
