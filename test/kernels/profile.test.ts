// The per-dispatch profiler (src/gpu/profile.ts, Runtime.startProfile): every dispatch of a small
// model is reported, with its kernel, module, FLOPs and bytes, and the per-dispatch GPU times add
// up to the stage's measured time; the per-submit fallback times every dispatch too; the
// `diffsim profile` command prints the same as one JSON line.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { Runtime } from '../../src/gpu/runtime.js';
import { summarize, profileStage, blockOf, type StageProfile } from '../../src/gpu/profile.js';
import { WeightStore } from '../../src/nn/weights.js';
import { UNet2DConditionModel, type UNetConfig } from '../../src/models/unet.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { linear } from '../../src/kernels/matmul.js';
import { FIXTURES, REPO_ROOT, randn, runCli, unetTinyInputs } from '../support/helpers.js';

// One submission holds the whole pass (no U-Net pass of unet-tiny has 1024 dispatches): the GPU then
// runs it back to back once it is submitted, and the host time from submit to completion is the
// stage's GPU time, measured without the profiler's timestamps.
const PER_SUBMIT = 1024;

async function openUnet(rt: Runtime) {
  const weights = await SafetensorsFile.open(join(FIXTURES, 'unet-tiny', 'unet.safetensors'));
  const store = new WeightStore();
  const model = new UNet2DConditionModel(store, JSON.parse(weights.metadata.config!) as UNetConfig);
  await store.load(rt, weights);
  const inputs = await unetTinyInputs(rt);
  // The fixture's batch and channels at twice its height and width: four times the work per
  // dispatch, so the kernels' time outweighs lavapipe's fixed cost per dispatch (which the
  // timestamps do not see) as it does in real passes.
  const [b, c, h, w] = inputs.sample.shape as [number, number, number, number];
  const sample = rt.upload(randn(b * c * 4 * h * w, 17), [b, c, 2 * h, 2 * w]);
  const pass = () => {
    const o = model.forward(sample, inputs.t, inputs.text);
    o.sample?.dispose();
    o.taps.dispose();
  };
  return {
    pass,
    async close() {
      sample.dispose();
      await inputs.dispose();
      store.dispose();
      await weights.close();
    },
  };
}

function checkTotals(p: StageProfile): void {
  for (const rows of [p.byKernel, p.byModule, p.byBlock]) {
    assert.is(rows.reduce((s, r) => s + r.calls, 0), p.dispatches - p.untimed, 'every timed dispatch is in one row');
    const total = rows.reduce((s, r) => s + r.totalMs, 0);
    assert.ok(Math.abs(total - p.gpuMs) <= 1e-6 * Math.max(1, p.gpuMs), `rows add up to the GPU time (${total} vs ${p.gpuMs})`);
    assert.ok(Math.abs(rows.reduce((s, r) => s + r.share, 0) - 1) < 1e-6, 'shares add up to 1');
    assert.is(rows.reduce((s, r) => s + r.flops, 0), p.flops);
  }
}

test('timestamps: every dispatch of unet-tiny is reported, and the times add up to the measured GPU time', async () => {
  const rt = await Runtime.create({ dispatchesPerSubmit: PER_SUBMIT, tensorCores: 'off' });
  const unet = await openUnet(rt);
  try {
    if (!rt.features.has('timestamp-query')) {
      console.log('  (no timestamp-query on this adapter: the timestamp test is skipped)');
      return;
    }
    unet.pass(); // kernels compiled, pool filled
    await rt.sync();
    // Unprofiled: the same pass, its dispatches and FLOPs counted by the runtime.
    const d0 = rt.dispatchCount;
    const f0 = rt.flopCount;
    unet.pass();
    const dispatches = rt.dispatchCount - d0;
    const flops = rt.flopCount - f0;
    await rt.sync();
    assert.ok(dispatches > 50 && dispatches < PER_SUBMIT, `unet-tiny records ${dispatches} dispatches in one submission`);

    // The GPU time of the stage measured on the host: recorded whole, then submitted and waited for.
    const measure = async () => {
      unet.pass();
      const t0 = performance.now();
      await rt.sync();
      return performance.now() - t0;
    };
    let best: { sum: number; measured: number; ratio: number } | null = null;
    for (let attempt = 0; attempt < 3 && !(best && Math.abs(best.ratio - 1) <= 0.1); attempt++) {
      const plainMs = await measure();
      const profiler = rt.startProfile();
      assert.is(profiler.timing, 'timestamp');
      const profiledMs = await measure();
      const { profiler: p } = await rt.stopProfile();
      assert.is(p.records.length, dispatches, 'one record per dispatch');
      assert.ok(p.records.every((r) => r.ms !== null && r.ms >= 0), 'every dispatch timed');
      assert.is(p.records.reduce((s, r) => s + r.flops, 0), flops, 'the FLOPs the launchers counted');
      const sum = p.records.reduce((s, r) => s + r.ms!, 0);
      // The timed passes add a little overhead each: the measured time is the mean of the plain
      // and the profiled run (the closer of the two to the sum is what bounds the error).
      const measured = (plainMs + profiledMs) / 2;
      const ratio = sum / measured;
      if (!best || Math.abs(ratio - 1) < Math.abs(best.ratio - 1)) best = { sum, measured, ratio };
    }
    assert.ok(best && Math.abs(best.ratio - 1) <= 0.1, `per-dispatch times sum to ${best?.sum.toFixed(1)} ms, the stage measured ${best?.measured.toFixed(1)} ms (ratio ${best?.ratio.toFixed(3)})`);

    // The stage summary: kernels and modules named, rows add up.
    const prof = await profileStage(rt, 'unet', unet.pass);
    assert.is(prof.dispatches, dispatches);
    assert.is(prof.untimed, 0);
    assert.is(prof.timing, 'timestamp');
    checkTotals(prof);
    assert.ok(prof.byKernel.some((r) => /^l?gemm:/.test(r.name)), 'GEMM kernels named by their variant');
    assert.ok(prof.byKernel.some((r) => r.name.startsWith('attention:')), 'attention kernels named');
    const modules = new Set(prof.byModule.map((r) => r.name));
    assert.ok([...modules].some((m) => m.startsWith('down_blocks.0.')), `module paths of the U-Net (${[...modules].slice(0, 5).join(', ')}…)`);
    assert.ok(modules.has('conv_in') || [...modules].some((m) => m.startsWith('conv_in')), 'conv_in attributed');
    assert.ok(prof.byBlock.some((r) => r.name === 'mid_block'), 'blocks');
    assert.ok(prof.flops > 0 && prof.bytes > 0 && prof.gflops > 0 && prof.gbps > 0);
    assert.ok(prof.jsMs > 0 && prof.jsMs <= prof.wallMs, 'JS time within the wall time');
  } finally {
    await unet.close();
    await rt.close();
  }
});

test('per-submit fallback: every dispatch timed, bytes from the bindings', async () => {
  const rt = await Runtime.create({ tensorCores: 'off' });
  try {
    const x = rt.upload(new Float32Array(64 * 32).fill(1), [64, 32]);
    const w = rt.upload(new Float32Array(16 * 32).fill(0.5), [16, 32]);
    const run = () => {
      const y = linear(x, w);
      const z = linear(y.reshape([64, 16]), w.reshape([32, 16]));
      y.dispose();
      z.dispose();
    };
    run();
    await rt.sync();
    const p = await profileStage(rt, 'two GEMMs', run, { timing: 'submit' });
    assert.is(p.timing, 'submit');
    assert.match(p.timingNote ?? '', /per-submit/);
    assert.is(p.dispatches, 2);
    assert.is(p.untimed, 0);
    assert.is(p.flops, 2 * 64 * 16 * 32 * 2);
    // Every binding read or written once: x, w, y (out); y, w, z (out).
    assert.is(p.bytes, 4 * (64 * 32 + 16 * 32 + 64 * 16) * 2);
    checkTotals(p);
    assert.is(p.spanMs, null);
    x.dispose();
    w.dispose();
  } finally {
    await rt.close();
  }
});

test('summaries: blocks of module paths, untimed dispatches left out of the totals', () => {
  assert.is(blockOf('down_blocks.1.attentions.0.proj_in'), 'down_blocks.1');
  assert.is(blockOf('mid_block.resnets.0'), 'mid_block');
  assert.is(blockOf('encoder.down_blocks.0.resnets.0.conv1'), 'encoder');
  const profiler = { timing: 'timestamp', note: '', records: [
    { kernel: 'k1', module: 'a.0.x', workgroups: [1, 1, 1], flops: 100, bytes: 8, ms: 1 },
    { kernel: 'k1', module: 'a.0.y', workgroups: [1, 1, 1], flops: 100, bytes: 8, ms: 3 },
    { kernel: 'k2', module: 'b', workgroups: [1, 1, 1], flops: 0, bytes: 8, ms: null },
  ] } as unknown as Parameters<typeof summarize>[2];
  const p = summarize('s', 'adapter', profiler, { wallMs: 5, jsMs: 1, spanMs: 4 });
  assert.is(p.dispatches, 3);
  assert.is(p.untimed, 1);
  assert.is(p.gpuMs, 4);
  assert.equal(p.byKernel.map((r) => [r.name, r.calls, r.totalMs, r.share]), [['k1', 2, 4, 1]]);
  assert.equal(p.byBlock.map((r) => [r.name, r.calls]), [['a.0', 2]]);
  assert.is(p.byKernel[0]!.gflops, 200 / 4 / 1e6);
});

test('diffsim profile --json on the tiny models: one JSON line, every dispatch timed', () => {
  const r = runCli(['profile', '--model', join(REPO_ROOT, 'weights', 'tiny', 'sd15'), '--size', '64', '--json'], { timeout: 120_000 });
  assert.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.is(lines.length, 1, 'one line on stdout');
  const p = JSON.parse(lines[0]!) as StageProfile;
  assert.ok(p.dispatches > 100, `${p.dispatches} dispatches in a pair`);
  assert.is(p.untimed, 0);
  checkTotals(p);
  assert.ok(p.byBlock.some((r) => r.name === 'encoder'), 'the VAE encoder');
  assert.ok(p.byBlock.some((r) => r.name.startsWith('down_blocks.')), 'the U-Net');
});

test('diffsim profile: bad arguments are usage errors', () => {
  const r = runCli(['profile', '--timing', 'sometimes']);
  assert.is(r.code, 2);
  assert.match(r.stderr, /--timing must be timestamp or submit/);
});

test.run();
