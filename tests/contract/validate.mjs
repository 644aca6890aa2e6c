// The contract check: every recorded response against docs/openapi.yaml, with ajv (JSON
// Schema 2020-12, the dialect of OpenAPI 3.1) doing all schema validation. Input: JSON lines
// written by tests/integration/test_contract.c, one exchange each:
//   {"method", "path" (the template, e.g. /api/v1/tokens/{id}), "url", "request" (the request
//    body, absent when none), "status", "headers" (lower-case name -> value), "body" (the raw
//    response body as a string)}
// Usage: node validate.mjs OPENAPI.yaml EXCHANGES.jsonl. Exit 0 when every response is
// documented (status, media type, documented headers present and shaped, body valid), every
// accepted (2xx) request fits the documented request body, and every operation of the
// description was exercised at least once; otherwise 1, one line per mismatch.
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

const [specPath, exchangesPath] = process.argv.slice(2);
if (!specPath || !exchangesPath) {
    console.error('usage: node validate.mjs OPENAPI.yaml EXCHANGES.jsonl');
    process.exit(2);
}
const spec = YAML.parse(readFileSync(specPath, 'utf8'));
const SPEC_ID = 'openapi.yaml';
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
// The whole description is one schema resource, so '#/components/schemas/X' resolves.
ajv.addSchema(spec, SPEC_ID);

const unescape = (p) => p.replace(/~1/g, '/').replace(/~0/g, '~');
const escape = (p) => String(p).replace(/~/g, '~0').replace(/\//g, '~1');
const at = (where) => where.slice(2).split('/').map(unescape).reduce((o, k) => (o == null ? o : o[k]), spec);
// Follows $ref chains; returns the node and its JSON pointer in the description.
function resolve(node, where) {
    for (let hops = 0; node && typeof node.$ref === 'string'; ++hops) {
        if (hops > 20 || !node.$ref.startsWith('#/')) throw new Error(`unsupported $ref ${node.$ref} at ${where}`);
        where = node.$ref;
        node = at(where);
    }
    return [node, where];
}
const validators = new Map();
function validatorAt(where) {
    if (!validators.has(where)) validators.set(where, ajv.compile({ $ref: SPEC_ID + where }));
    return validators.get(where);
}
const errorsText = (v) => ajv.errorsText(v.errors, { dataVar: 'body' });
// Failure lines quote bodies: never a credential (API tokens, JWTs) in a test log.
const redact = (text) =>
    text.replace(/tgk_[0-9A-Za-z]{38}/g, 'tgk_[redacted]').replace(/eyJ[\w-]*\.[\w-]+\.[\w-]+/g, '[redacted JWT]');

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];
const operations = new Map(); // "GET /path" -> {op, where}
for (const [path, item] of Object.entries(spec.paths ?? {}))
    for (const m of METHODS)
        if (item[m]) operations.set(`${m.toUpperCase()} ${path}`, { op: item[m], where: `#/paths/${escape(path)}/${m}` });

const failures = [];
const seen = new Set();
let checked = 0;

const mediaType = (v) => {
    const [type, ...params] = v.split(';').map((s) => s.trim().toLowerCase());
    return { type, params: params.filter((p) => p !== '') };
};
const templateRegex = (t) => new RegExp('^' + t.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+') + '/?$');

function checkExchange(x, line) {
    const label = `line ${line}: ${x.method} ${x.url} -> ${x.status}`;
    const fail = (msg) => failures.push(`${label}: ${msg}`);
    const key = `${x.method} ${x.path}`;
    const found = operations.get(key) ?? (x.method === 'HEAD' ? operations.get(`GET ${x.path}`) : undefined);
    if (!found) return fail(`no operation ${key} in the description`);
    seen.add(operations.get(key) ? key : `GET ${x.path}`);
    if (!templateRegex(x.path).test(x.url.split('?')[0])) fail(`the URL does not match the path ${x.path}`);
    const responses = found.op.responses ?? {};
    const code = String(x.status);
    const statusKey = [code, `${code[0]}XX`, 'default'].find((k) => k in responses);
    if (statusKey === undefined) return fail(`status ${x.status} is not documented for ${key} (documented: ${Object.keys(responses).join(', ')})`);
    const [resp, respWhere] = resolve(responses[statusKey], `${found.where}/responses/${escape(statusKey)}`);
    checked++;

    // A request the server accepted (2xx) must be one the description allows: a body where
    // one is required, and a body that fits the documented request schema.
    if (x.status >= 200 && x.status < 300 && found.op.requestBody) {
        const [rb, rbWhere] = resolve(found.op.requestBody, `${found.where}/requestBody`);
        if (x.request == null) {
            if (rb.required) fail('accepted without a request body, but the description requires one');
        } else {
            const mt = Object.keys(rb.content ?? {}).find((k) => mediaType(k).type === 'application/json');
            if (mt === undefined) fail('accepted a JSON request body the description does not list');
            else if (rb.content[mt].schema) {
                const v = validatorAt(`${rbWhere}/content/${escape(mt)}/schema`);
                let data;
                try {
                    data = JSON.parse(x.request);
                } catch (e) {
                    data = x.request;
                }
                if (!v(data)) fail(`accepted a request the description refuses: ${ajv.errorsText(v.errors, { dataVar: 'request' })}`);
            }
        }
    }

    // Headers: every documented one that is required must be there; every one that is there must fit its schema.
    for (const [name, h] of Object.entries(resp.headers ?? {})) {
        if (name.toLowerCase() === 'content-type') continue;
        const [header, headerWhere] = resolve(h, `${respWhere}/headers/${escape(name)}`);
        const value = x.headers[name.toLowerCase()];
        if (value === undefined) {
            if (header.required) fail(`required header ${name} is missing`);
            continue;
        }
        if (!header.schema) continue;
        const [schema] = resolve(header.schema, `${headerWhere}/schema`);
        const numeric = schema && (schema.type === 'integer' || schema.type === 'number');
        const data = numeric && /^-?[0-9]+(\.[0-9]+)?$/.test(value) ? Number(value) : value;
        const v = validatorAt(`${headerWhere}/schema`);
        if (!v(data)) fail(`header ${name}: ${JSON.stringify(value)} ${ajv.errorsText(v.errors, { dataVar: name })}`);
    }

    // Body: none where the description has no content; else a documented media type and a body valid against its schema.
    const content = resp.content;
    if (!content || Object.keys(content).length === 0) {
        if (x.body !== '' && x.method !== 'HEAD') fail(`a body where the description has none: ${x.body.slice(0, 120)}`);
        return;
    }
    const got = mediaType(x.headers['content-type'] ?? '');
    const mtKey = Object.keys(content).find((k) => {
        const want = mediaType(k);
        return want.type === got.type && want.params.every((p) => got.params.includes(p));
    });
    if (mtKey === undefined) return fail(`Content-Type ${JSON.stringify(x.headers['content-type'])} is not one of: ${Object.keys(content).join(', ')}`);
    const media = content[mtKey];
    if (!media.schema || x.method === 'HEAD') return;
    const schemaWhere = `${respWhere}/content/${escape(mtKey)}/schema`;
    let data = x.body;
    if (got.type === 'application/json' || got.type.endsWith('+json')) {
        try {
            data = JSON.parse(x.body);
        } catch (e) {
            return fail(`the body is not JSON (${e.message}): ${x.body.slice(0, 120)}`);
        }
    }
    const v = validatorAt(schemaWhere);
    if (!v(data)) fail(`${errorsText(v)}; body ${JSON.stringify(data).slice(0, 300)}`);
}

const lines = readFileSync(exchangesPath, 'utf8').split('\n');
lines.forEach((text, i) => {
    if (text.trim() === '') return;
    let x;
    try {
        x = JSON.parse(text);
    } catch (e) {
        failures.push(`line ${i + 1}: not JSON: ${e.message}`);
        return;
    }
    if (typeof x.body !== 'string') x.body = '';
    x.headers = Object.fromEntries(Object.entries(x.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    try {
        checkExchange(x, i + 1);
    } catch (e) {
        failures.push(`line ${i + 1}: ${e.message}`);
    }
});
for (const key of operations.keys())
    if (!seen.has(key)) failures.push(`operation ${key} (${operations.get(key).op.operationId}) was never exercised`);

for (const f of failures) console.log(`FAIL ${redact(f)}`);
console.log(`contract: ${checked} responses checked against ${operations.size} operations (${seen.size} exercised), ${failures.length} mismatches`);
process.exit(failures.length === 0 ? 0 : 1);
