// Drives a running phix FHIR server with the npm fhir-kit-client: create,
// read, search, update, history, a transaction, paging and the error
// answers. Every mismatch throws, so the process exits non-zero.
//
//   PHIX_FHIR_URL=http://127.0.0.1:18081/fhir/r4 PHIX_TOKEN=... node interop/fhirkit.mjs
import { Client } from 'fhir-kit-client';
import assert from 'node:assert/strict';

const baseUrl = process.env.PHIX_FHIR_URL;
const token = process.env.PHIX_TOKEN;
if (!baseUrl || !token) {
  console.error('set PHIX_FHIR_URL and PHIX_TOKEN');
  process.exit(2);
}
const client = new Client({ baseUrl, bearerToken: token });
const run = `${process.pid}-${Date.now()}`;
let steps = 0;
const step = (name) => { steps++; console.log(`ok ${steps} - ${name}`); };

// CapabilityStatement.
const cap = await client.capabilityStatement();
assert.equal(cap.resourceType, 'CapabilityStatement');
assert.equal(cap.fhirVersion, '4.0.1');
step('metadata');

// create
const created = await client.create({
  resourceType: 'Patient',
  body: {
    resourceType: 'Patient',
    identifier: [{ system: 'urn:interop:mrn', value: run }],
    name: [{ family: 'Interop', given: ['Kit'] }],
    gender: 'female',
    birthDate: '1975-05-06',
  },
});
assert.equal(created.resourceType, 'Patient');
assert.ok(created.id, 'created id');
assert.equal(created.meta.versionId, '1');
step('create');

// read and vread
const read = await client.read({ resourceType: 'Patient', id: created.id });
assert.equal(read.id, created.id);
assert.equal(read.name[0].family, 'Interop');
const v1 = await client.vread({ resourceType: 'Patient', id: created.id, version: '1' });
assert.equal(v1.meta.versionId, '1');
step('read, vread');

// search
const found = await client.search({ resourceType: 'Patient', searchParams: { identifier: `urn:interop:mrn|${run}` } });
assert.equal(found.resourceType, 'Bundle');
assert.equal(found.type, 'searchset');
assert.equal(found.total, 1);
assert.equal(found.entry[0].resource.id, created.id);
assert.equal(found.entry[0].search.mode, 'match');
step('search');

// update
const updated = await client.update({
  resourceType: 'Patient', id: created.id,
  body: { ...read, gender: 'other' },
});
assert.equal(updated.meta.versionId, '2');
assert.equal(updated.gender, 'other');
step('update');

// conditional update through searchParams
const condUpdated = await client.update({
  resourceType: 'Patient', searchParams: { identifier: `urn:interop:mrn|${run}` },
  body: { ...updated, birthDate: '1975-05-07' },
});
assert.equal(condUpdated.id, created.id);
assert.equal(condUpdated.meta.versionId, '3');
step('conditional update');

// history
const hist = await client.history({ resourceType: 'Patient', id: created.id });
assert.equal(hist.type, 'history');
assert.equal(hist.total, 3);
assert.deepEqual(hist.entry.map((e) => e.resource.meta.versionId), ['3', '2', '1']);
const typeHist = await client.typeHistory({ resourceType: 'Patient' });
assert.ok(typeHist.total >= 3);
step('history');

// transaction with urn:uuid references
const tx = await client.transaction({
  body: {
    resourceType: 'Bundle', type: 'transaction',
    entry: [
      {
        fullUrl: 'urn:uuid:7c8e1a52-4d7f-4c55-9f0e-2b1c3d4e5f60',
        resource: { resourceType: 'Patient', identifier: [{ system: 'urn:interop:mrn', value: `${run}-tx` }], name: [{ family: 'Transact' }] },
        request: { method: 'POST', url: 'Patient' },
      },
      {
        resource: {
          resourceType: 'Observation', status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
          subject: { reference: 'urn:uuid:7c8e1a52-4d7f-4c55-9f0e-2b1c3d4e5f60' },
          valueQuantity: { value: 72, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
        },
        request: { method: 'POST', url: 'Observation' },
      },
    ],
  },
});
assert.equal(tx.type, 'transaction-response');
assert.equal(tx.entry.length, 2);
for (const e of tx.entry) assert.match(e.response.status, /^201/);
const patRef = tx.entry[0].response.location.split('/_history/')[0];
const obsId = tx.entry[1].response.location.split('/')[1];
const obs = await client.read({ resourceType: 'Observation', id: obsId });
assert.equal(obs.subject.reference, patRef);
const byPatient = await client.search({ resourceType: 'Observation', searchParams: { subject: patRef, _include: 'Observation:subject' } });
assert.equal(byPatient.total, 1);
assert.ok(byPatient.entry.some((e) => e.search.mode === 'include' && `Patient/${e.resource.id}` === patRef));
step('transaction');

// paging with the client's helpers
for (let i = 0; i < 5; i++) {
  await client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', name: [{ family: `Pager${run}` }] } });
}
let page = await client.search({ resourceType: 'Patient', searchParams: { family: `Pager${run}`, _count: 2 } });
const seen = new Set();
for (let n = 0; page; n++) {
  assert.ok(n < 10, 'paging ends');
  for (const e of page.entry || []) seen.add(e.resource.id);
  page = await client.nextPage({ bundle: page });
}
assert.equal(seen.size, 5);
step('paging');

// delete, then read answers 410
await client.delete({ resourceType: 'Patient', id: created.id });
await assert.rejects(client.read({ resourceType: 'Patient', id: created.id }), (err) => {
  assert.equal(err.response.status, 410);
  const oo = typeof err.response.data === 'string' ? JSON.parse(err.response.data) : err.response.data;
  assert.equal(oo.resourceType, 'OperationOutcome');
  return true;
});
step('delete');

// without a token: 401 with an OperationOutcome
const anon = new Client({ baseUrl });
await assert.rejects(anon.read({ resourceType: 'Patient', id: created.id }), (err) => {
  assert.equal(err.response.status, 401);
  return true;
});
step('401 without a token');

console.log(`all ${steps} steps passed`);
