// The decision rules of the official scripts: given s1 = score(anchor, cand1) and
// s2 = score(anchor, cand2), which candidate the script predicts and whether that counts as correct.
//
// The direction ("is a higher or a lower score the more similar?") is not a property of the metric
// in these scripts but of each script's `if`:
//   night_main.py                 --similarity mse or --metric lpips → s1 < s2 means cand1; cosine →
//                                 s1 > s2. The flag flips every other metric (CLIP and DINO too;
//                                 argparse's default is mse).
//   tid_main.py, dreambench_main  always s1 > s2 (also for MSE or LPIPS scores: the wrong way round).
//   cute_main.py, style_main.py   mse or lpips → s1 < s2; cosine → s1 > s2 (and a "2x" criterion,
//                                 below). style_main.py's lpips branch calls `.item()` on the float
//                                 LPIPS returns and crashes; its intended rule (s1 < s2) is used.
//   ipref_main.py                 s1 < s2 for lpips, or a DiffSim metric with mse; otherwise s1 > s2.
// No script has a branch for the VGG Gram baseline (gram, a cosine): it takes the branch of the
// other cosine baselines (CLIP, DINO) in every script — the intended one, since the scripts never
// reach it.
// All comparisons are strict, and a tie falls to the `else` branch, i.e. predicts cand2: it is
// correct only where cand2 is the truth (a NIGHTS vote of 0, a DreamBench label of 1). The 'half'
// tie mode gives a tie half a point instead (the DreamSim convention).

import type { BenchmarkName, EvalItem } from './protocols.js';

export interface DecisionRule {
  /** The scripts' --similarity flag. */
  similarity: 'cosine' | 'mse';
  /** Whether the metric is a DiffSim variant ('diffsim' in --metric); only ipref_main.py looks. */
  metricIsDiffsim: boolean;
  /** Whether the metric is LPIPS (a distance): night, cute, style and ipref compare it with `<`. */
  metricIsLpips?: boolean;
}

export interface Decision {
  predicted: 1 | 2;
  /** credit === 1. */
  correct: boolean;
  /** 1 or 0; 0.5 for a tie when ties are 'half'. */
  credit: number;
  tie: boolean;
}

export type TieRule = 'strict' | 'half';

function checkRule(rule: DecisionRule): void {
  if (rule.similarity !== 'cosine' && rule.similarity !== 'mse') throw new TypeError(`decision rule: similarity must be 'cosine' or 'mse', got ${JSON.stringify(rule.similarity)}`);
  if (rule.metricIsLpips !== undefined && typeof rule.metricIsLpips !== 'boolean') throw new TypeError(`decision rule: metricIsLpips must be a boolean, got ${JSON.stringify(rule.metricIsLpips)}`);
}

/** The scripts' `similarity == 'mse' or metric == 'lpips'` test. */
function lowerRule(rule: DecisionRule): boolean {
  return rule.similarity === 'mse' || rule.metricIsLpips === true;
}

/** Which score the benchmark's script takes as "more similar" under this rule. Worth logging:
 *  for tid2013 and dreambench an MSE score is read the wrong way round, as the scripts do. */
export function directionOf(benchmark: BenchmarkName, rule: DecisionRule): 'higher' | 'lower' {
  checkRule(rule);
  switch (benchmark) {
    case 'nights':
    case 'cute':
    case 'sref':
    case 'instantstyle':
      return lowerRule(rule) ? 'lower' : 'higher';
    case 'tid2013':
    case 'dreambench':
      return 'higher';
    case 'ipref':
      return rule.metricIsLpips === true || (rule.metricIsDiffsim && rule.similarity === 'mse') ? 'lower' : 'higher';
  }
  throw new TypeError(`directionOf: unknown benchmark ${JSON.stringify(benchmark)}`);
}

/** The script's decision for one item. */
export function decide(benchmark: BenchmarkName, rule: DecisionRule, item: EvalItem, s1: number, s2: number, ties: TieRule = 'strict'): Decision {
  if (ties !== 'strict' && ties !== 'half') throw new TypeError(`decide: ties must be 'strict' or 'half', got ${JSON.stringify(ties)}`);
  if (item.truth !== 1 && item.truth !== 2) throw new TypeError(`decide: item ${item.item} has truth ${JSON.stringify(item.truth)}; expected 1 or 2`);
  const first = directionOf(benchmark, rule) === 'higher' ? s1 > s2 : s1 < s2;
  const predicted = first ? 1 : 2;
  const tie = s1 === s2;
  const credit = tie && ties === 'half' ? 0.5 : predicted === item.truth ? 1 : 0;
  return { predicted, correct: credit === 1, credit, tie };
}

/** The ensemble (DiffSim, CLIP-I and DINOv2 each vote; a vote for cand1 is score(cand1) ≥
 *  score(cand2), ties included): cand1 is predicted iff at least 2 of the 3 votes are for it. */
export function decideEnsemble(item: EvalItem, votesForCand1: number): Decision {
  if (!Number.isInteger(votesForCand1) || votesForCand1 < 0 || votesForCand1 > 3) throw new RangeError(`decideEnsemble: votesForCand1 must be an integer 0..3, got ${votesForCand1}`);
  const predicted = votesForCand1 >= 2 ? 1 : 2;
  const correct = predicted === item.truth;
  return { predicted, correct, credit: correct ? 1 : 0, tie: false };
}

/** The "2x" criterion of cute_main.py and style_main.py (cand1 is the truth there): with mse or
 *  lpips `s1 * 2 < s2`, with cosine `s1 > 2 * s2`. The other scripts have no such accuracy. */
export function decide2x(benchmark: BenchmarkName, rule: DecisionRule, s1: number, s2: number): boolean {
  checkRule(rule);
  if (benchmark !== 'cute' && benchmark !== 'sref' && benchmark !== 'instantstyle') throw new TypeError(`decide2x: only cute, sref and instantstyle report a 2x accuracy, not ${benchmark}`);
  return lowerRule(rule) ? s1 * 2 < s2 : s1 > 2 * s2;
}
