// deploy_check.cjs: checks deploy/k8s.yaml and deploy/keda.yaml (run by tests/test_deploy.sh).
// Usage: node deploy_check.cjs DEPLOY_DIR ENV_NAMES_FILE. Prints "ok   ..." / "FAIL ..." lines;
// exit 1 when a check failed.
'use strict';
const fs = require('fs');
const path = require('path');
const YAML = require(path.join(__dirname, 'emulators/node_modules/yaml'));
const [dir, namesFile] = process.argv.slice(2);
const known = new Set(fs.readFileSync(namesFile, 'utf8').split('\n').filter(Boolean));
let failed = 0;
const check = (what, ok) => { console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`); if (!ok) failed++; };

function load(name) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(path.join(dir, name), 'utf8'));
    const errors = docs.flatMap(d => d.errors.map(e => e.message));
    check(`${name} parses as YAML (${docs.length} documents)${errors.length ? ': ' + errors[0] : ''}`,
        errors.length === 0 && docs.length > 0);
    return docs.map(d => d.toJS());
}
const k8s = load('k8s.yaml');
const keda = load('keda.yaml');
const find = (docs, kind, name) => docs.find(d => d && d.kind === kind && (!name || d.metadata.name === name));

for (const kind of ['Namespace', 'Secret', 'ConfigMap', 'Service'])
    check(`k8s.yaml has a ${kind}`, !!find(k8s, kind));
const api = find(k8s, 'Deployment', 'facerec-api');
const worker = find(k8s, 'Deployment', 'facerec-worker');
const cm = find(k8s, 'ConfigMap');
check('k8s.yaml has the api and worker Deployments', !!api && !!worker);
if (!api || !worker || !cm) process.exit(1);

// every env name set (ConfigMap data, Secret stringData, container env) is a facerec setting
const names = new Set(Object.keys(cm.data));
for (const d of k8s.filter(d => d && d.kind === 'Secret')) Object.keys(d.stringData || {}).forEach(n => names.add(n));
for (const dep of [api, worker])
    for (const c of dep.spec.template.spec.containers) (c.env || []).forEach(e => names.add(e.name));
const unknown = [...names].filter(n => !known.has(n));
check(`all ${names.size} env names are facerec settings${unknown.length ? ' (unknown: ' + unknown.join(', ') + ')' : ''}`,
    unknown.length === 0 && names.size > 5);

const ac = api.spec.template.spec.containers[0];
check('api readiness and liveness probes: GET /health',
    ac.readinessProbe?.httpGet?.path === '/health' && ac.livenessProbe?.httpGet?.path === '/health');
const ws = worker.spec.template.spec, wc = ws.containers[0];
const wenv = Object.fromEntries((wc.env || []).map(e => [e.name, e.value]));
check('worker runs "facerec worker"', JSON.stringify(wc.args) === '["worker"]');
check('worker serves METRICS_PORT with a /metrics liveness probe',
    Number(wenv.METRICS_PORT) > 0 && wc.livenessProbe?.httpGet?.path === '/metrics' &&
    wc.ports.some(p => p.name === wc.livenessProbe.httpGet.port && p.containerPort === Number(wenv.METRICS_PORT)));
const grace = Number(cm.data.JOB_TIMEOUT_SECONDS) + Number(cm.data.SQS_WAIT_TIME_SECONDS) + 5;
check(`worker terminationGracePeriodSeconds ${ws.terminationGracePeriodSeconds} >= JOB_TIMEOUT_SECONDS + SQS_WAIT_TIME_SECONDS + 5 = ${grace}`,
    ws.terminationGracePeriodSeconds >= grace);
check('each worker one core (request and limit), WORKER_THREADS 1',
    String(wc.resources.requests.cpu) === '1' && String(wc.resources.limits.cpu) === '1' && cm.data.WORKER_THREADS === '1');
check('pods run as non-root', [api, worker].every(d => d.spec.template.spec.securityContext?.runAsNonRoot === true));

const so = find(keda, 'ScaledObject');
check('keda.yaml has a ScaledObject on the worker Deployment', !!so && so.spec.scaleTargetRef.name === worker.metadata.name);
if (so) {
    const t = so.spec.triggers[0], m = t.metadata;
    check('aws-sqs-queue trigger: queueLength 1, activationQueueLength 0, scaleOnInFlight true',
        t.type === 'aws-sqs-queue' && m.queueLength === '1' && m.activationQueueLength === '0' && m.scaleOnInFlight === 'true');
    check('trigger queue is the ConfigMap\'s SQS_REQ_QUEUE_NAME', m.queueURL.endsWith('/' + cm.data.SQS_REQ_QUEUE_NAME));
    check('replicas 0..15, pollingInterval and cooldownPeriod set',
        so.spec.minReplicaCount === 0 && so.spec.maxReplicaCount === 15 && so.spec.pollingInterval > 0 && so.spec.cooldownPeriod > 0);
}
process.exit(failed ? 1 : 0);
