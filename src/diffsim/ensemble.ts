// The ensemble of the official scripts (`--metric ensemble`): DiffSim, CLIP-I and the DINOv2
// score each vote for the candidate closer to the reference, and the majority wins.
//
// Candidates are 1 (a, the first) and 2 (b, the second), as `diffsim pick` prints them (vote.ts).
// Official vote of one metric: v = 0 if s(ref, a) < s(ref, b) else 1 (1 = a), so a tie in one
// metric's scores votes for the first candidate; the prediction is a iff Σv ≥ 2 of 3. With any
// number of voters this is "1 iff more than half the votes are for 1": a tie in the vote count
// goes to the second candidate. The official DiffSim vote treats a higher score as more similar
// even under mse (inverted then); `mseVote: 'lower-is-closer'` fixes that. `ties: 'second'` makes
// a tie in one metric's scores vote for the second candidate instead (the rule of the scripts'
// single-metric decisions, `s1 > s2` → first).

import { createMetrics, toRgbImage, type CreateMetricOptions, type ImageInput, type Metric } from './metric.js';
import { majority, vote, type Candidate } from './vote.js';

export { majority, vote, type Candidate } from './vote.js';

export interface Votes {
  /** Which candidate each metric voted for: 1 (a) or 2 (b). */
  diffsim: Candidate;
  clip: Candidate;
  dino: Candidate;
}

export interface Pick {
  /** The candidate closer to the reference: 1 (a) or 2 (b), what `diffsim pick` prints. */
  pick: Candidate;
  votes: Votes;
  scores: { diffsim: [number, number]; clip: [number, number]; dino: [number, number] };
}

export interface EnsembleOptions {
  /** How the DiffSim vote reads an mse score: 'official-inverted' (higher = closer, as the
   *  official vote does whatever the similarity) or 'lower-is-closer'. */
  mseVote?: 'official-inverted' | 'lower-is-closer';
  ties?: 'official' | 'second';
}

export class Ensemble {
  constructor(
    /** DiffSim (or DiffSim-C), CLIP-I and the DINOv2 score (metrics 'diffsim', 'clip', 'dino'). */
    readonly diffsim: Metric,
    readonly clip: Metric,
    readonly dino: Metric,
    readonly o: EnsembleOptions = {},
  ) {}

  /** The official ensemble's three metrics loaded on one runtime. */
  static async create(o: CreateMetricOptions = {}, e: EnsembleOptions = {}): Promise<Ensemble> {
    const [d, c, n] = await createMetrics(['diffsim', 'clip', 'dino'], o);
    return new Ensemble(d!, c!, n!, e);
  }

  /** The reference against both candidates under one metric: the reference embedded once (role
   *  A, as the official scripts pass the anchor), the candidates as B. */
  static async pair(m: Metric, ref: ImageInput, a: ImageInput, b: ImageInput): Promise<[number, number]> {
    const r = await m.embed(ref, 'A');
    try {
      const one = async (x: ImageInput) => {
        const e = await m.embed(x, 'B');
        try {
          return await m.compare(r, e);
        } finally {
          e.dispose();
        }
      };
      return [await one(a), await one(b)];
    } finally {
      r.dispose();
    }
  }

  /** The DiffSim vote's direction under these options. */
  get diffsimHigherIsCloser(): boolean {
    return !this.diffsim.lowerBetter || (this.o.mseVote ?? 'official-inverted') === 'official-inverted';
  }

  /** The votes and the pick for given scores (s(ref, a), s(ref, b)) per metric. */
  decide(scores: Pick['scores']): Pick {
    const ties = this.o.ties ?? 'official';
    const votes: Votes = {
      diffsim: vote(scores.diffsim[0], scores.diffsim[1], this.diffsimHigherIsCloser, ties),
      clip: vote(scores.clip[0], scores.clip[1], !this.clip.lowerBetter, ties),
      dino: vote(scores.dino[0], scores.dino[1], !this.dino.lowerBetter, ties),
    };
    return { pick: majority([votes.diffsim, votes.clip, votes.dino]), votes, scores };
  }

  /** One metric's pick between a and b (ref as role A of both comparisons, as `diffsim pick`
   *  with a single --metric): 1 if a is strictly closer, else 2 (a tie goes to b, the rule of the
   *  scripts' single-metric decisions); lowerBetter metrics (mse) read the scores as distances. */
  static async pickOne(m: Metric, ref: ImageInput, a: ImageInput, b: ImageInput): Promise<{ pick: Candidate; scores: [number, number] }> {
    const scores = await Ensemble.pair(m, ref, a, b);
    return { pick: vote(scores[0], scores[1], !m.lowerBetter, 'second'), scores };
  }

  /** Which of a and b is closer to ref, by hard vote: 1 (a) or 2 (b). */
  async pick(ref: ImageInput, a: ImageInput, b: ImageInput): Promise<Pick> {
    // Decoded once for the three metrics.
    const [r, x, y] = [await toRgbImage(ref, typeof ref === 'string' ? ref : 'reference'), await toRgbImage(a, typeof a === 'string' ? a : 'image A'), await toRgbImage(b, typeof b === 'string' ? b : 'image B')];
    const scores = { diffsim: await Ensemble.pair(this.diffsim, r, x, y), clip: await Ensemble.pair(this.clip, r, x, y), dino: await Ensemble.pair(this.dino, r, x, y) };
    return this.decide(scores);
  }

  async close(): Promise<void> {
    for (const m of [this.diffsim, this.clip, this.dino]) await m.close();
  }
}
