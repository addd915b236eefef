// The command's stderr filter (src/cli/stderr-filter.ts): Dawn's two adapter notices are dropped
// whole, whatever the chunking; every other line, other warnings included, passes unchanged, and
// text without a newline (a progress line redrawn with \r) is not held back.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DawnLineFilter } from '../../src/cli/stderr-filter.js';

const UNIFORM = 'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n';
const STORAGE = 'Warning: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n';

function run(chunks: readonly string[]): { out: string; writes: string[] } {
  const writes: string[] = [];
  const f = new DawnLineFilter((t) => writes.push(t));
  for (const c of chunks) f.push(c);
  f.end();
  return { out: writes.join(''), writes };
}

test('the two notices are dropped, other lines kept, at every split of the stream', () => {
  const text = `${UNIFORM}${STORAGE}Warning: something the user must see\nloading unet 40%\rloading unet 80%\rdone\n${UNIFORM}`;
  const want = 'Warning: something the user must see\nloading unet 40%\rloading unet 80%\rdone\n';
  assert.is(run([text]).out, want);
  for (let i = 0; i <= text.length; i++) assert.is(run([text.slice(0, i), text.slice(i)]).out, want, `split at ${i}`);
  assert.is(run([...text]).out, want, 'one character at a time');
  assert.is(run([`loading 5%\r${UNIFORM}loading 9%\r`]).out, 'loading 5%\rloading 9%\r', 'after a redrawn line');
  assert.is(run([UNIFORM.replace('\n', '\r\n'), 'x\r\n']).out, 'x\r\n', 'Windows line ends');
});

test('a line that only starts like a notice is kept, and so is a notice for another limit', () => {
  const other = 'Warning: maxDynamicUniformBuffersPerPipelineLayout is fine\n';
  const limit = 'Warning: maxBufferSize artificially reduced from 1 to 0 to fit dynamic offset allocation limit.\n';
  assert.is(run([other, limit]).out, other + limit);
  assert.is(run(['Warning: maxDyn']).out, 'Warning: maxDyn', 'held text is passed on at the end');
});

test('a progress line is written as it arrives, not when its line ends', () => {
  const writes: string[] = [];
  const f = new DawnLineFilter((t) => writes.push(t));
  f.push('loading 10%\r');
  assert.equal(writes, ['loading 10%\r']);
  f.push('W');
  assert.equal(writes, ['loading 10%\r'], 'the start of a possible notice waits');
  f.push('x');
  assert.equal(writes, ['loading 10%\r', 'Wx']);
});

test.run();
