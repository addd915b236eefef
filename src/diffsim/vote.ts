// Which of two candidates is closer to a reference, in the command line's words: 1 (the first
// candidate) or 2 (the second). `diffsim pick REF A B` prints 1 or 2, the eval rows store 1 or 2
// (cand1, cand2), and the library returns the same numbers.

/** The first (1) or the second (2) candidate. */
export type Candidate = 1 | 2;

/** One metric's vote from s(ref, first) and s(ref, second). Official (the ensemble scripts'
 *  `0 if s1 < s2 else 1`): 1 unless the first is strictly less similar (a tie votes 1); ties
 *  'second' (the scripts' single-metric decisions, `s1 > s2` → first): 1 only if strictly more
 *  similar, so a tie goes to 2. `higherIsCloser` false reads the scores as distances (mse). */
export function vote(s1: number, s2: number, higherIsCloser = true, ties: 'official' | 'second' = 'official'): Candidate {
  if (s1 === s2) return ties === 'official' ? 1 : 2;
  return (higherIsCloser ? s1 < s2 : s1 > s2) ? 2 : 1;
}

/** Majority of the votes: 1 iff more than half are for 1 (so a tied count goes to 2). */
export function majority(votes: readonly Candidate[]): Candidate {
  const forFirst = votes.filter((v) => v === 1).length;
  return forFirst * 2 > votes.length ? 1 : 2;
}
