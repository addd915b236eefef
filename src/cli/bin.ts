#!/usr/bin/env node
// The `diffsim` command as package.json declares it. In Node the command (main.ts) runs in a child
// process whose stderr passes through DawnLineFilter: Dawn writes its adapter notices from native
// code straight to file descriptor 2, where no Node stream sees them (see stderr-filter.ts).
// stdin and stdout are the child's own; exit codes and signals are passed back; a terminal on
// stderr stays a terminal to the child's progress display (isTTY and the width are handed over).

import { spawn } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import { DawnLineFilter } from './stderr-filter.js';

/** The child's first argument (taken off before the command reads its arguments): its stderr is
 *  the parent's filter, which writes to a terminal (`tty:COLUMNS`) or not (`pipe`). */
const CHILD = '--stderr-through-parent=';

async function child(mode: string): Promise<void> {
  if (mode.startsWith('tty')) {
    const stderr = process.stderr as unknown as { isTTY?: boolean; columns?: number };
    stderr.isTTY = true;
    const columns = Number(mode.slice('tty:'.length));
    if (columns > 0) stderr.columns = columns;
  }
  // The parent gone (killed outright), the command has no one to report to: stop.
  process.channel?.unref();
  process.on('disconnect', () => process.exit(1));
  await import('./main.js');
}

function parent(): void {
  const stderr = process.stderr;
  const mode = stderr.isTTY ? `tty:${stderr.columns ?? ''}` : 'pipe';
  const main = fileURLToPath(new URL('./bin.js', import.meta.url));
  const sub = spawn(process.execPath, [...process.execArgv, main, `${CHILD}${mode}`, ...process.argv.slice(2)], {
    stdio: ['inherit', 'inherit', 'pipe', 'ipc'],
  });
  const filter = new DawnLineFilter((text) => stderr.write(text));
  const decoder = new StringDecoder('utf8');
  sub.stderr!.on('data', (b: Buffer) => filter.push(decoder.write(b)));
  const forward = (signal: NodeJS.Signals) => () => {
    sub.kill(signal);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const handlers = signals.map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  sub.on('error', (e) => {
    stderr.write(`diffsim: could not start the command: ${e.message}\n`);
    process.exitCode = 1;
  });
  sub.on('close', (code, signal) => {
    filter.push(decoder.end());
    filter.end();
    for (const [s, h] of handlers) process.off(s, h);
    if (signal) process.kill(process.pid, signal);
    else process.exitCode = code ?? 1;
  });
}

const mode = process.argv[2]?.startsWith(CHILD) ? process.argv[2].slice(CHILD.length) : undefined;
if ((globalThis as { Deno?: unknown }).Deno !== undefined) {
  // Deno runs the command itself (its WebGPU prints no such notices; its execPath is not Node).
  await import('./main.js');
} else if (mode !== undefined && process.channel) {
  process.argv.splice(2, 1);
  await child(mode);
} else {
  parent();
}
