// The ensemble of the official scripts (`--metric ensemble`): DiffSim, CLIP-I and the DINOv2
// score each vote for the candidate closer to the reference, and the majority wins.
//
// Official vote of one metric: v = 0 if s(ref, a) < s(ref, b) else 1 (1 = a), so a tie in one
// metric's scores votes for the first candidate; the prediction is a iff Σv ≥ 2 of 3. With any
// number of voters this is "a iff more than half the votes are for a": a tie in the vote count
// goes to the second candidate. The official DiffSim vote treats a higher score as more similar
// even under mse (inverted then); `mseVote: 'lower-is-closer'` fixes that. `ties: 'second'` makes
// a tie in one metric's scores vote for the second candidate instead (the rule of the scripts'
// single-metric decisions, `s1 > s2` → first).

import type { RgbImage } from '../io/image.js';
import type { DiffSim } from './diffsim.js';
import type { ClipMetric, Dinov2Metric } from './vision.js';

export interface Votes {
  /** Which candidate each metric voted for. */
  diffsim: 'a' | 'b';
  clip: 'a' | 'b';
  dino: 'a' | 'b';
}

export interface Pick {
  choice: 'a' | 'b';
  votes: Votes;
  scores: { diffsim: [number, number]; clip: [number, number]; dino: [number, number] };
}

/** One metric's vote. Official: 'a' unless s(ref, a) is strictly less similar than s(ref, b)
 *  (a tie votes 'a'); ties 'second': 'a' only if strictly more similar. */
export function vote(sa: number, sb: number, higherIsCloser = true, ties: 'official' | 'second' = 'official'): 'a' | 'b' {
  if (sa === sb) return ties === 'official' ? 'a' : 'b';
  return (higherIsCloser ? sa < sb : sa > sb) ? 'b' : 'a';
}

/** Majority of the votes: 'a' iff more than half are for 'a' (so a tied count goes to 'b'). */
export function majority(votes: readonly ('a' | 'b')[]): 'a' | 'b' {
  const forA = votes.filter((v) => v === 'a').length;
  return forA * 2 > votes.length ? 'a' : 'b';
}

export class Ensemble {
  constructor(
    readonly diffsim: DiffSim,
    readonly clip: ClipMetric,
    readonly dino: Dinov2Metric,
    readonly o: { mseVote?: 'official-inverted' | 'lower-is-closer'; ties?: 'official' | 'second' } = {},
  ) {}

  /** Which of a and b is closer to ref, by hard vote. The reference is embedded once (as A for
   *  DiffSim, as the official scripts pass the anchor), the candidates as B. */
  async pick(ref: RgbImage, a: RgbImage, b: RgbImage): Promise<Pick> {
    const ds = this.diffsim;
    const r = ds.embed(ref, 'A');
    let d: [number, number];
    try {
      const ea = ds.embed(a, 'B');
      try {
        const eb = ds.embed(b, 'B');
        try {
          d = [await ds.compare(r, ea), await ds.compare(r, eb)];
        } finally {
          eb.dispose();
        }
      } finally {
        ea.dispose();
      }
    } finally {
      r.dispose();
    }
    const globals = async (m: ClipMetric | Dinov2Metric): Promise<[number, number]> => {
      const [er, ea, eb] = [ref, a, b].map((x) => m.embed(x, []));
      try {
        return [(await m.compare(er!, ea!)).global, (await m.compare(er!, eb!)).global];
      } finally {
        for (const e of [er, ea, eb]) e!.dispose();
      }
    };
    const c = await globals(this.clip);
    const n = await globals(this.dino);
    const diffsimHigher = ds.settings.similarity === 'cosine' || (this.o.mseVote ?? 'official-inverted') === 'official-inverted';
    const ties = this.o.ties ?? 'official';
    const votes: Votes = { diffsim: vote(d[0], d[1], diffsimHigher, ties), clip: vote(c[0], c[1], true, ties), dino: vote(n[0], n[1], true, ties) };
    return { choice: majority([votes.diffsim, votes.clip, votes.dino]), votes, scores: { diffsim: d, clip: c, dino: n } };
  }
}
