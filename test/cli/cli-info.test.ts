// `diffsim info`: its usage line names --json, and anything else on its command line is refused
// before the GPU is opened (it used to be ignored, so a mistyped option went unnoticed).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli } from '../support/helpers.js';

test('the usage names info --json', () => {
  const r = runCli(['--help']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ {2}info \[--json\] /m);
});

test('info refuses an unknown option or an argument with exit code 2, naming it', () => {
  for (const [args, named] of [[['info', '--jsn'], '--jsn'], [['info', 'extra'], 'extra']] as const) {
    const r = runCli(args);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.is(r.stdout, '');
    assert.match(r.stderr, named);
  }
});

test.run();
