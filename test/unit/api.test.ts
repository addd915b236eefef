// The public API: the Node and browser entries share one list (a name means the same thing in
// both), and the engine's internals are not part of it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as node from '../../src/index.js';
import * as web from '../../src/browser.js';
import * as shared from '../../src/api.js';

test('every name of the shared API is the same object in the Node and browser entries', () => {
  const names = Object.keys(shared);
  assert.ok(names.length > 100, `only ${names.length} shared names`);
  for (const k of names) {
    assert.ok(k in node && k in web, `${k} missing from an entry`);
    assert.is((node as Record<string, unknown>)[k], (shared as Record<string, unknown>)[k], `${k} (Node)`);
    assert.is((web as Record<string, unknown>)[k], (shared as Record<string, unknown>)[k], `${k} (browser)`);
  }
  // A name both entries export beyond the shared list would be two things under one name.
  const both = Object.keys(node).filter((k) => k in web && !(k in shared));
  assert.equal(both, [], 'names in both entries but not in the shared list');
  for (const k of ['DiffSim', 'agreementMap', 'loadSd15', 'MemoryModelFiles']) assert.ok(k in shared, k);
});

test('internals are not exported', () => {
  for (const k of ['Storage', 'Params', 'sizeClass', 'writeFileAtomic', 'buildMetrics', 'FilesModelSource', 'decodeImageInput', 'unetFromSource', 'runParity']) {
    assert.not.ok(k in node, `${k} in the Node entry`);
    assert.not.ok(k in web, `${k} in the browser entry`);
  }
});

test.run();
