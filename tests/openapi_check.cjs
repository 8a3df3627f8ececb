// openapi_check.cjs: run by tests/test_openapi.sh. Validates docs/openapi.yaml with
// @apidevtools/swagger-parser, then holds it against a running `facerec serve`:
//   - every documented operation is exercised; the answered status must be one the document
//     lists for it, the Content-Type one it lists for that status, a JSON body must match the
//     schema (ajv, JSON Schema 2020-12 as OpenAPI 3.1 uses);
//   - every documented path answers 405, with Allow naming exactly its documented methods, to
//     the methods it does not document; an undocumented path answers 404;
//   - every route in the route table of src/service/api.c is documented, and every documented
//     operation is in that table.
// An operation missing from api.c's route table that the server answers 404 (no such route) or
// 405 is reported "not implemented yet" and skipped: it is checked for real once the route exists.
// Environment: URL, API_KEY, PHOTO (a photo with a face), DOC, API_SRC.
// Prints "ok ..." / "FAIL ..." / "skip ..." lines, then "N checks, N failed"; exit 1 on a failure.
'use strict';
const fs = require('fs');
const path = require('path');
const modules = path.join(__dirname, 'emulators', 'node_modules');
const SwaggerParser = require(path.join(modules, '@apidevtools/swagger-parser'));
const Ajv2020 = require(path.join(modules, 'ajv/dist/2020')).default;

const url = process.env.URL, key = process.env.API_KEY, photo = fs.readFileSync(process.env.PHOTO);
const METHODS = ['get', 'post', 'put', 'delete', 'patch', 'options'];
let checks = 0, failed = 0;
function check(what, ok, detail) {
    checks++;
    if (ok) console.log(`ok   ${what}`);
    else { failed++; console.log(`FAIL ${what}${detail ? ': ' + detail : ''}`); }
    return ok;
}

// The route table of api.c: {"/prefix", exact, "METHOD", R_X[, "suffix"]}.
function routeTable(src) {
    const re = /\{\s*"(\/[^"]*)"\s*,\s*([01])\s*,\s*"([A-Z]+)"\s*,\s*R_\w+\s*(?:,\s*"([^"]*)"\s*)?\}/g;
    const out = [];
    for (let m; (m = re.exec(src));) out.push({prefix: m[1], exact: m[2] === '1', method: m[3].toLowerCase(), suffix: m[4] || ''});
    return out;
}
// Does the documented path template t (e.g. /people/{name}/photo) correspond to route r?
function templateMatches(t, r) {
    if (!t.includes('{')) return r.exact && r.prefix === t;
    if (r.exact) return false;
    const pre = t.slice(0, t.indexOf('{')), suf = t.slice(t.lastIndexOf('}') + 1);
    return pre === r.prefix && suf === r.suffix;
}

const mediaType = ct => (ct || '').split(';')[0].trim().toLowerCase();

async function request(method, p, {headers = {}, form} = {}) {
    const init = {method: method.toUpperCase(), headers, redirect: 'manual'};
    if (form) init.body = form;
    const r = await fetch(url + p, init);
    const body = Buffer.from(await r.arrayBuffer());
    return {status: r.status, type: r.headers.get('content-type'), allow: r.headers.get('allow'), body};
}

function formOf(field, bytes, name, type = 'image/jpeg') {
    const f = new FormData();
    f.append(field, new Blob([bytes], {type}), name);
    return f;
}

async function main() {
    const doc = await SwaggerParser.validate(process.env.DOC); // dereferenced
    check('docs/openapi.yaml is a valid OpenAPI document (swagger-parser)', true);
    const ajv = new Ajv2020({strict: false, allErrors: true, validateFormats: false});
    const routes = routeTable(fs.readFileSync(process.env.API_SRC, 'utf8'));
    check('the route table of api.c was found', routes.length >= 6, `${routes.length} routes parsed`);

    // documented operations, and whether api.c routes them
    const ops = [];
    for (const [t, item] of Object.entries(doc.paths))
        for (const m of METHODS)
            if (item[m]) ops.push({template: t, method: m, op: item[m], routed: routes.some(r => r.method === m && templateMatches(t, r)), seen: false, missing: false});
    for (const r of routes)
        check(`api.c route ${r.method.toUpperCase()} ${r.prefix}${r.exact ? '' : '…'}${r.suffix} is documented`,
              ops.some(o => o.method === r.method && templateMatches(o.template, r)));
    const opOf = (m, t) => ops.find(o => o.method === m && o.template === t);

    // Sends one request for the documented operation (method, template) and checks the answer.
    async function exercise(method, template, concrete, what, opts = {}) {
        const o = opOf(method, template);
        if (!o) throw new Error(`test bug: ${method} ${template} is not documented`);
        const r = await request(method, concrete, opts);
        const label = `${method.toUpperCase()} ${template} (${what}): ${r.status}`;
        const routeMissing = (r.status === 404 && /no such route/.test(r.body.toString())) || r.status === 405;
        if (!o.routed && routeMissing) {
            o.missing = true;
            console.log(`skip ${method.toUpperCase()} ${template}: not implemented yet (answered ${r.status}, no route in api.c)`);
            return r;
        }
        o.seen = true;
        const resp = o.op.responses[String(r.status)] || o.op.responses.default;
        if (!check(`${label} is a documented status`, !!resp, `documented: ${Object.keys(o.op.responses).join(', ')}; body ${r.body.toString().slice(0, 200)}`))
            return r;
        if (!resp.content) return check(`${label} has no body, as documented`, r.body.length === 0), r;
        const mt = mediaType(r.type), media = resp.content[mt];
        if (!check(`${label} Content-Type ${mt} is documented`, !!media, `documented: ${Object.keys(resp.content).join(', ')}`)) return r;
        if (mt === 'application/json') {
            let v;
            try { v = JSON.parse(r.body.toString()); } catch (e) { return check(`${label} body is JSON`, false, e.message), r; }
            const validate = ajv.compile(media.schema);
            check(`${label} body matches the schema`, validate(v), JSON.stringify(validate.errors) + ' in ' + r.body.toString().slice(0, 300));
            r.json = v;
        } else if (mt === 'text/html') {
            check(`${label} is an HTML page`, /<html/i.test(r.body.toString()));
        }
        return r;
    }

    const auth = {'X-Api-Key': key};
    // operations
    await exercise('get', '/health', '/health', 'healthy');
    const mx = await exercise('get', '/metrics', '/metrics', 'metrics');
    if (mx.status === 200) check('GET /metrics says text format version 0.0.4', /version=0\.0\.4/.test(mx.type || ''), mx.type);
    const page = await exercise('get', '/', '/', 'the page');
    if (page.status === 200) {
        const assets = [...new Set([...page.body.toString().matchAll(/(?:src|href)="(\/static\/[^"?#]+)"/g)].map(m => m[1]))];
        check('the page refers to its files under /static/', assets.length > 0);
        for (const a of assets) await exercise('get', '/static/{file}', a, a);
    }
    await exercise('get', '/static/{file}', '/static/no-such-file.js', 'unknown file');

    await exercise('get', '/people', '/people', 'no key', {});
    await exercise('post', '/people/{name}', '/people/Ada%20Lovelace', 'no key', {form: formOf('photo', photo, 'ada.jpg')});
    await exercise('post', '/people/{name}', '/people/Ada%20Lovelace', 'no photo', {headers: auth, form: (() => { const f = new FormData(); f.append('x', 'y'); return f; })()});
    await exercise('post', '/people/{name}', '/people/Ada%20Lovelace', 'not an image', {headers: auth, form: formOf('photo', Buffer.from('text, not a photo'), 'a.jpg')});
    await exercise('post', '/people/{name}', '/people/..', 'invalid name', {headers: auth, form: formOf('photo', photo, 'ada.jpg')});
    await exercise('post', '/people/{name}', '/people/Ada%20Lovelace', 'enrol', {headers: auth, form: formOf('photo', photo, 'ada.jpg')});
    await exercise('get', '/people', '/people', 'list', {headers: auth});
    await exercise('get', '/people/{name}/photo', '/people/Ada%20Lovelace/photo', 'enrolled', {headers: auth});
    await exercise('get', '/people/{name}/photo', '/people/Ada%20Lovelace/photo', 'no key', {});
    await exercise('get', '/people/{name}/photo', '/people/Nobody/photo', 'unknown person', {headers: auth});

    await exercise('post', '/', '/', 'no inputFile', {form: formOf('other', photo, 'a.jpg')});
    await exercise('post', '/', '/', 'not an image', {form: formOf('inputFile', Buffer.from('text, not a photo'), 'a.jpg')});
    const up = await exercise('post', '/', '/', 'a photo', {form: formOf('inputFile', photo, 'photo.jpg')});
    let job = up.json && up.json.job_id;
    if (check('POST / answered a job id', !!job)) {
        let st;
        for (let i = 0; i < 200; i++) { // pending until the worker is done (at most 20 s)
            st = await exercise('get', '/status/{job_id}', `/status/${job}`, i ? 'poll' : 'just queued');
            if (st.status !== 202) break;
            await new Promise(res => setTimeout(res, 100));
        }
        check('the job finished with the enrolled person named', st.json && st.json.status === 'done' && st.json.result === 'Ada Lovelace',
              st.body.toString().slice(0, 300));
    }
    await exercise('get', '/status/{job_id}', '/status/not-a-uuid', 'malformed id');
    await exercise('get', '/status/{job_id}', '/status/00000000-0000-4000-8000-000000000000', 'unknown id');

    await exercise('delete', '/people/{name}', '/people/Ada%20Lovelace', 'no key', {});
    await exercise('delete', '/people/{name}', '/people/Ada%20Lovelace', 'delete', {headers: auth});
    await exercise('delete', '/people/{name}', '/people/Ada%20Lovelace', 'again', {headers: auth});

    for (const o of ops)
        check(`${o.method.toUpperCase()} ${o.template} was exercised (or is not implemented yet)`, o.seen || o.missing);
    for (const o of ops)
        if (o.missing && o.routed) check(`${o.method.toUpperCase()} ${o.template} is routed in api.c but was not answered`, false);

    // undocumented methods on documented paths: 405 with Allow naming the documented methods
    const sample = {job_id: '00000000-0000-4000-8000-000000000000', name: 'Ada', file: 'app.js'};
    for (const [t, item] of Object.entries(doc.paths)) {
        const concrete = t.replace(/\{(\w+)\}/g, (_, n) => sample[n]);
        const have = METHODS.filter(m => item[m] && !opOf(m, t).missing).map(m => m.toUpperCase());
        for (const m of METHODS.filter(m => !item[m])) {
            const r = await request(m, concrete, m === 'post' ? {headers: auth, form: formOf('inputFile', Buffer.from('x'), 'x.jpg')} : {headers: auth});
            const allow = (r.allow || '').split(',').map(s => s.trim()).filter(Boolean).sort();
            if (!have.length) { // every method of this path is not implemented yet
                check(`${m.toUpperCase()} ${concrete} (no method implemented yet): 404`, r.status === 404, String(r.status));
                continue;
            }
            check(`${m.toUpperCase()} ${concrete} (undocumented): 405, Allow: ${have.join(', ')}`,
                  r.status === 405 && JSON.stringify(allow) === JSON.stringify([...have].sort()),
                  `${r.status}, Allow: ${r.allow}`);
        }
    }
    // undocumented paths
    for (const p of ['/nowhere', '/people/Ada/nothing', '/status', '/healthz', '/static']) {
        const r = await request('get', p, {headers: auth});
        check(`GET ${p} (undocumented path): 404`, r.status === 404, String(r.status));
    }
    const h = await request('head', '/health');
    check('HEAD /health answers as GET does, without a body', h.status === 200 && h.body.length === 0, String(h.status));
}

main().then(() => {
    console.log(`${checks} checks, ${failed} failed`);
    process.exit(failed ? 1 : 0);
}, e => {
    console.log(`FAIL ${e.stack || e}`);
    console.log(`${checks} checks, ${failed + 1} failed`);
    process.exit(1);
});
