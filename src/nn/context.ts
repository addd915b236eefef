// What a forward pass reports and where it stops.
//
// Activations are named as in the reference fixtures: `<module path>:out` (module output),
// `<module path>:in` (its first input), plus model-level names (`hidden_states.1`, …). A pass records
// only the names it was asked for; `stopAfter` ends the pass right after the named module.

import type { Tensor } from '../gpu/runtime.js';

export class StopForward extends Error {
  constructor(readonly module: string) {
    super(`forward stopped after ${module}`);
    this.name = 'StopForward';
  }
}

export interface ForwardOptions {
  /** Names to record: a list, a predicate, or 'all'. */
  capture?: readonly string[] | ((name: string) => boolean) | 'all';
  /** Module path after which the pass stops (throws StopForward, caught by the model). */
  stopAfter?: string;
  /** Prefix added to every recorded name (e.g. `run0.` when one model runs several inputs). */
  namePrefix?: string;
}

export class ForwardContext {
  readonly taps = new Map<string, Tensor>();
  private readonly want: (name: string) => boolean;
  readonly stopAfter: string | undefined;

  constructor(opts: ForwardOptions = {}) {
    const c = opts.capture;
    if (c === 'all') this.want = () => true;
    else if (typeof c === 'function') this.want = c;
    else if (c) {
      const set = new Set(c);
      this.want = (n) => set.has(n);
    } else this.want = () => false;
    this.stopAfter = opts.stopAfter;
    this.prefix = opts.namePrefix ?? '';
  }
  private readonly prefix: string;

  wants(name: string): boolean {
    return this.want(this.prefix + name);
  }

  /** Records a view of `t` under `name` if it was asked for (the view keeps the data alive). */
  record(name: string, t: Tensor): void {
    const full = this.prefix + name;
    if (!this.want(full) || this.taps.has(full)) return;
    this.taps.set(full, t.reshape(t.shape).keep());
  }

  /** Marks a module as finished; stops the pass if it is the requested stopping point. */
  finished(path: string): void {
    if (this.stopAfter !== undefined && path === this.stopAfter) throw new StopForward(path);
  }

  take(name: string): Tensor | undefined {
    const t = this.taps.get(name);
    this.taps.delete(name);
    return t;
  }

  dispose(): void {
    for (const t of this.taps.values()) t.dispose();
    this.taps.clear();
  }
}

/** Runs a stack of encoder layers on x, recording `hidden_states.0` (x) … `hidden_states.L` and
 *  keeping views of them in `hidden` when given; `onState` sees each state too. Each layer's input
 *  is released once the layer has run. Returns the last layer's output. */
export async function runLayerStack(
  x: Tensor,
  layers: readonly { forward(x: Tensor, ctx: ForwardContext): Promise<Tensor> }[],
  ctx: ForwardContext,
  hidden: Tensor[] | null,
  onState?: (state: Tensor, index: number) => void,
): Promise<Tensor> {
  const state = (t: Tensor, i: number) => {
    hidden?.push(t.reshape(t.shape).keep());
    ctx.record(`hidden_states.${i}`, t);
    onState?.(t, i);
  };
  state(x, 0);
  for (let i = 0; i < layers.length; i++) {
    const y = await layers[i]!.forward(x, ctx);
    x.dispose();
    x = y;
    state(x, i + 1);
  }
  return x;
}
