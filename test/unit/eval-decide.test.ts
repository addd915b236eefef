// The per-script decision rules (src/eval/decide.ts) against the scripts' own lines, transcribed
// below from night_main.py, tid_main.py, cute_main.py, dreambench_main.py, ipref_main.py and
// style_main.py, over a grid of scores with ties and NaN.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decide, decide2x, decideEnsemble, directionOf, type DecisionRule } from '../../src/eval/decide.js';
import { BENCHMARK_NAMES, type BenchmarkName, type EvalItem } from '../../src/eval/protocols.js';

type Sim = 'cosine' | 'mse';

/** Whether the script counts the item as correct (its `correct += 1` condition). */
function scriptCorrect(b: BenchmarkName, sim: Sim, isDiffsim: boolean, s1: number, s2: number, item: EvalItem): boolean {
  switch (b) {
    case 'nights': {
      // if args.similarity == 'mse' ...: predicted = 1 if diff_ab < diff_ac else 0
      // elif args.similarity == 'cosine': predicted = 1 if diff_ab > diff_ac else 0
      const predicted = sim === 'mse' ? (s1 < s2 ? 1 : 0) : s1 > s2 ? 1 : 0;
      return predicted === item.label; // if predicted == vote
    }
    case 'tid2013':
      return s1 > s2; // if diff_ab > diff_ac
    case 'cute':
    case 'sref':
    case 'instantstyle':
      return sim === 'mse' ? s1 < s2 : s1 > s2;
    case 'dreambench': {
      const compare = s1 > s2 ? 0 : 1; // compare_result = 0 if diff_ab > diff_ac else 1
      return compare === item.label;
    }
    case 'ipref':
      // if metric in lpips/dreamsim or ('diffsim' in metric and similarity == 'mse'): diff_ab < diff_ac
      return isDiffsim && sim === 'mse' ? s1 < s2 : s1 > s2;
  }
}

/** The items a benchmark can have: NIGHTS (left_vote 1 / 0) and DreamBench (label 0 / 1) have both
 *  truths, the others always cand1. */
function itemsOf(b: BenchmarkName): EvalItem[] {
  const base = { item: 0, anchor: 'a', cand1: 'b', cand2: 'c', prompt: 'p' };
  if (b === 'nights') return [{ ...base, truth: 1, label: 1 }, { ...base, truth: 2, label: 0 }];
  if (b === 'dreambench') return [{ ...base, truth: 1, label: 0 }, { ...base, truth: 2, label: 1 }];
  return [{ ...base, truth: 1 }];
}

const SCORES = [0, 0.25, 0.5, 1, -1, 0.5, NaN, 1e-8];
const RULES: DecisionRule[] = [
  { similarity: 'cosine', metricIsDiffsim: true },
  { similarity: 'mse', metricIsDiffsim: true },
  { similarity: 'cosine', metricIsDiffsim: false },
  { similarity: 'mse', metricIsDiffsim: false },
];

test('directionOf: the per-script table', () => {
  const table: Record<BenchmarkName, string> = {
    // cosine+diffsim, mse+diffsim, cosine+other, mse+other
    nights: 'higher lower higher lower',
    tid2013: 'higher higher higher higher',
    cute: 'higher lower higher lower',
    dreambench: 'higher higher higher higher',
    ipref: 'higher lower higher higher',
    sref: 'higher lower higher lower',
    instantstyle: 'higher lower higher lower',
  };
  for (const b of BENCHMARK_NAMES) assert.is(RULES.map((r) => directionOf(b, r)).join(' '), table[b], b);
});

test('decide (strict ties) = the script\'s condition, every benchmark, rule, truth and score pair', () => {
  let n = 0;
  for (const b of BENCHMARK_NAMES)
    for (const rule of RULES)
      for (const item of itemsOf(b))
        for (const s1 of SCORES)
          for (const s2 of SCORES) {
            const d = decide(b, rule, item, s1, s2);
            const want = scriptCorrect(b, rule.similarity, rule.metricIsDiffsim, s1, s2, item);
            assert.is(d.correct, want, `${b} ${JSON.stringify(rule)} truth ${item.truth}: s1 ${s1}, s2 ${s2}`);
            assert.is(d.credit, want ? 1 : 0);
            assert.is(d.tie, s1 === s2);
            n++;
          }
  assert.ok(n > 2000);
});

test('a tie predicts cand2: right only where cand2 is the truth (NIGHTS vote 0, DreamBench label 1)', () => {
  const rule: DecisionRule = { similarity: 'cosine', metricIsDiffsim: true };
  for (const b of BENCHMARK_NAMES) {
    for (const item of itemsOf(b)) {
      const d = decide(b, rule, item, 0.7, 0.7);
      assert.equal(d, { predicted: 2, correct: item.truth === 2, credit: item.truth === 2 ? 1 : 0, tie: true }, `${b} truth ${item.truth}`);
      const h = decide(b, rule, item, 0.7, 0.7, 'half');
      assert.equal(h, { predicted: 2, correct: false, credit: 0.5, tie: true }, `${b} truth ${item.truth}, half`);
    }
  }
});

test('ties "half" changes ties only', () => {
  for (const b of BENCHMARK_NAMES)
    for (const rule of RULES)
      for (const item of itemsOf(b))
        for (const s1 of SCORES)
          for (const s2 of SCORES) {
            if (s1 === s2) continue;
            assert.equal(decide(b, rule, item, s1, s2, 'half'), decide(b, rule, item, s1, s2, 'strict'));
          }
});

test('a few by hand: mse flips nights/cute/style/ipref(diffsim) but not tid/dreambench', () => {
  const one: EvalItem = { item: 0, anchor: 'a', cand1: 'b', cand2: 'c', prompt: 'p', truth: 1 };
  const mse: DecisionRule = { similarity: 'mse', metricIsDiffsim: true };
  // s1 = 0.1 < s2 = 0.9: with mse cand1 is the nearer
  assert.is(decide('cute', mse, one, 0.1, 0.9).predicted, 1);
  assert.is(decide('sref', mse, one, 0.1, 0.9).predicted, 1);
  assert.is(decide('ipref', mse, one, 0.1, 0.9).predicted, 1);
  assert.is(decide('ipref', { similarity: 'mse', metricIsDiffsim: false }, one, 0.1, 0.9).predicted, 2);
  assert.is(decide('tid2013', mse, one, 0.1, 0.9).predicted, 2);
  assert.is(decide('dreambench', mse, { ...one, label: 0 }, 0.1, 0.9).predicted, 2);
  assert.is(decide('nights', mse, { ...one, label: 1 }, 0.1, 0.9).predicted, 1);
  assert.is(decide('nights', { similarity: 'cosine', metricIsDiffsim: false }, { ...one, label: 1 }, 0.1, 0.9).predicted, 2);
});

test('decideEnsemble: cand1 iff at least 2 of 3 votes, as the scripts count it', () => {
  for (const b of BENCHMARK_NAMES)
    for (const item of itemsOf(b))
      for (const votes of [0, 1, 2, 3]) {
        // night: (vote == 1 and sum >= 2) or (vote == 0 and sum <= 1); dreambench: label 0 ↔ vote 1;
        // the others: sum >= 2
        const want = b === 'nights' ? (item.label === 1 && votes >= 2) || (item.label === 0 && votes <= 1) : b === 'dreambench' ? (item.label === 0 && votes >= 2) || (item.label === 1 && votes <= 1) : votes >= 2;
        const d = decideEnsemble(item, votes);
        assert.is(d.correct, want, `${b} truth ${item.truth} votes ${votes}`);
        assert.is(d.predicted, votes >= 2 ? 1 : 2);
        assert.is(d.credit, want ? 1 : 0);
      }
  const item = itemsOf('tid2013')[0]!;
  assert.throws(() => decideEnsemble(item, 4), /0\.\.3/);
  assert.throws(() => decideEnsemble(item, 1.5), /0\.\.3/);
});

test('decide2x: mse s1·2 < s2, cosine s1 > 2·s2, for cute/sref/instantstyle only', () => {
  const mse: DecisionRule = { similarity: 'mse', metricIsDiffsim: true };
  const cos: DecisionRule = { similarity: 'cosine', metricIsDiffsim: true };
  for (const b of ['cute', 'sref', 'instantstyle'] as const) {
    for (const s1 of SCORES)
      for (const s2 of SCORES) {
        assert.is(decide2x(b, mse, s1, s2), s1 * 2 < s2, `${b} mse ${s1} ${s2}`);
        assert.is(decide2x(b, cos, s1, s2), s1 > 2 * s2, `${b} cosine ${s1} ${s2}`);
      }
    assert.is(decide2x(b, mse, 0.2, 0.41), true);
    assert.is(decide2x(b, mse, 0.2, 0.4), false);
    assert.is(decide2x(b, cos, 0.81, 0.4), true);
    assert.is(decide2x(b, cos, 0.8, 0.4), false);
  }
  for (const b of ['nights', 'tid2013', 'dreambench', 'ipref'] as const) assert.throws(() => decide2x(b, cos, 1, 0), /only cute, sref and instantstyle/);
});

test('bad arguments say what was expected', () => {
  const item = itemsOf('tid2013')[0]!;
  assert.throws(() => decide('tid2013', { similarity: 'l2' as never, metricIsDiffsim: true }, item, 1, 0), /similarity must be 'cosine' or 'mse'/);
  assert.throws(() => decide('tid2013', { similarity: 'cosine', metricIsDiffsim: true }, item, 1, 0, 'round' as never), /ties must be 'strict' or 'half'/);
  assert.throws(() => directionOf('x' as never, { similarity: 'cosine', metricIsDiffsim: true }), /unknown benchmark/);
});

test.run();
