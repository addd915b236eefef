// What a forward pass records and where it stops: one vocabulary for every model.
//
// Every module declares, when it is built, the activations it can record ("taps") and whether a
// pass can stop right after it. Names follow the reference fixtures: `<module path>:out` (module
// output), `<module path>:in` (its first input), `<attention path>.to_q:out` / `.to_k:out` /
// `.to_v:out` (q, k, v before the head split), `<attention path>.to_out.0:in` (attention output
// before the projection), `hidden_states.<i>` (encoder layer states), plus model-level outputs
// (`last_hidden_state`, …). A pass validates what it is asked for against this vocabulary before
// any work is recorded, and returns what it recorded in a `Taps` object, the one handle to free it.

import { tidy, type Tensor } from '../gpu/runtime.js';
import { markModule } from '../gpu/profile.js';
import { cast } from '../kernels/elementwise.js';
import type { ActivationDType } from '../kernels/common.js';

/** The taps and stopping points a model declares (in declaration order, which follows the pass). */
export class Vocabulary {
  private readonly tapSet = new Set<string>();
  private readonly stopSet = new Set<string>();

  tap(name: string): string {
    this.tapSet.add(name);
    return name;
  }
  stop(path: string): string {
    this.stopSet.add(path);
    return path;
  }
  /** Every name a pass of this model can record. */
  get taps(): readonly string[] {
    return [...this.tapSet];
  }
  /** Every module path a pass of this model can stop after. */
  get stops(): readonly string[] {
    return [...this.stopSet];
  }
  hasTap(name: string): boolean {
    return this.tapSet.has(name);
  }
  hasStop(path: string): boolean {
    return this.stopSet.has(path);
  }
}

export class StopForward extends Error {
  constructor(readonly module: string) {
    super(`forward stopped after ${module}`);
    this.name = 'StopForward';
  }
}

/** A tap or stop name the model does not know. */
export class TapNameError extends Error {
  override name = 'TapNameError';
}

/** How a model computes, fixed when it is built. */
export interface ModelComputeOptions {
  /** The dtype of the activations between ops (default f32). f16 stores them as f16 — half the
   *  memory traffic, f32 accumulation inside every kernel — and needs the adapter's shader-f16;
   *  inputs are cast at the start of a pass and outputs and taps come back as f32. */
  activations?: ActivationDType;
}

export interface ForwardOptions {
  /** Taps to record: names from the model's vocabulary (`model.vocabulary.taps`), 'all', or a
   *  predicate over the vocabulary's names. */
  capture?: readonly string[] | 'all' | ((name: string) => boolean);
  /** A module path from `model.vocabulary.stops`: the pass ends right after that module. */
  stopAfter?: string;
}

/** The activations a pass recorded, by name. The caller owns them: `dispose()` frees them all,
 *  `take(name)` hands one over. */
export class Taps {
  private readonly map = new Map<string, Tensor>();

  /** @internal */
  set(name: string, t: Tensor): void {
    this.map.set(name, t);
  }
  has(name: string): boolean {
    return this.map.has(name);
  }
  /** The recorded tensor (still owned by this object). */
  get(name: string): Tensor {
    const t = this.map.get(name);
    if (!t) throw new TapNameError(`tap "${name}" was not recorded; recorded: ${listNames([...this.map.keys()])}`);
    return t;
  }
  /** Removes a tap from this object and gives it to the caller. */
  take(name: string): Tensor {
    const t = this.get(name);
    this.map.delete(name);
    return t;
  }
  names(): string[] {
    return [...this.map.keys()];
  }
  entries(): IterableIterator<[string, Tensor]> {
    return this.map.entries();
  }
  get size(): number {
    return this.map.size;
  }
  dispose(): void {
    for (const t of this.map.values()) t.dispose();
    this.map.clear();
  }
}

/** Takes over a tensor a pass kept outside every tidy (a tap handed over by `Taps.take`): returns a
 *  view with `shape` (same elements) owned by the current tidy, and releases the original handle. */
export function adoptTap(t: Tensor, shape: readonly number[] = t.shape): Tensor {
  const view = t.reshape(shape);
  t.dispose();
  return view;
}

function listNames(names: readonly string[], max = 8): string {
  if (!names.length) return '(none)';
  return names.length > max ? `${names.slice(0, max).join(', ')}, … (${names.length} in all)` : names.join(', ');
}

/** Names of `known` closest to `name` (shared prefix, then edit distance), for error messages. */
function nearest(name: string, known: readonly string[], count = 5): string[] {
  const prefix = (a: string, b: string) => {
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    return i;
  };
  return [...known]
    .map((k) => ({ k, score: prefix(name, k) * 4 - Math.abs(k.length - name.length) }))
    .sort((a, b) => b.score - a.score)
    .slice(0, count)
    .map((e) => e.k);
}

/** One pass's recording state: what to record, where to stop, what was recorded. */
export class ForwardContext {
  readonly taps = new Taps();
  private readonly want: (name: string) => boolean;
  private readonly requested: readonly string[];
  readonly stopAfter: string | undefined;

  /**
   * @param activations the dtype of the activations between the pass's ops: its inputs are cast to
   *   it (`input`), every op's result follows its input, and taps are recorded as f32 either way.
   */
  constructor(
    readonly vocabulary: Vocabulary,
    opts: ForwardOptions,
    readonly model: string,
    readonly activations: ActivationDType = 'f32',
  ) {
    const c = opts.capture;
    if (c === 'all') this.want = () => true;
    else if (typeof c === 'function') this.want = c;
    else if (c) {
      const unknown = c.filter((n) => !vocabulary.hasTap(n));
      if (unknown.length) {
        throw new TapNameError(
          `${model}: unknown tap ${unknown.map((n) => `"${n}"`).join(', ')}; nearest valid names: ${nearest(unknown[0]!, vocabulary.taps).join(', ')} (${vocabulary.taps.length} taps in all: see vocabulary.taps)`,
        );
      }
      const set = new Set(c);
      this.want = (n) => set.has(n);
    } else this.want = () => false;
    this.requested = Array.isArray(c) ? c : [];
    if (opts.stopAfter !== undefined && !vocabulary.hasStop(opts.stopAfter)) {
      throw new TapNameError(
        `${model}: cannot stop after "${opts.stopAfter}"; nearest modules that can: ${nearest(opts.stopAfter, vocabulary.stops).join(', ')} (${vocabulary.stops.length} in all: see vocabulary.stops)`,
      );
    }
    this.stopAfter = opts.stopAfter;
  }

  wants(name: string): boolean {
    return this.want(name);
  }

  /** A pass input (image, latents, conditioning) in the pass's activation dtype. */
  input(t: Tensor): Tensor {
    return cast(t, this.activations);
  }

  /** Records `t` under `name` if it was asked for: a view (which keeps the data alive), or its f32
   *  copy when the pass runs on f16 activations, so taps read the same in both precisions. */
  record(name: string, t: Tensor): void {
    if (!this.vocabulary.hasTap(name)) throw new Error(`${this.model}: tap "${name}" is recorded but not declared (a bug in the model)`);
    if (name.endsWith(':out')) markModule(name.slice(0, -4));
    if (!this.want(name) || this.taps.has(name)) return;
    this.taps.set(name, cast(t, 'f32').keep());
  }

  /** Marks a module as finished; stops the pass if it is the requested stopping point. */
  finished(path: string): void {
    markModule(path);
    if (this.stopAfter !== undefined && path === this.stopAfter) throw new StopForward(path);
  }

  /** Runs a pass: `body` inside `tidy`, stopping early when asked. Returns its result (undefined
   *  when the pass stopped early) and the path it stopped after. Every requested tap must have been
   *  recorded; otherwise the taps are freed and the error names the missing ones. */
  run<T>(body: (ctx: ForwardContext) => T): { result: T | undefined; stoppedAfter: string | undefined } {
    let result: T | undefined;
    let stoppedAfter: string | undefined;
    try {
      result = tidy(() => body(this));
    } catch (e) {
      if (!(e instanceof StopForward)) {
        this.taps.dispose();
        throw e;
      }
      stoppedAfter = e.module;
    }
    const missing = this.requested.filter((n) => !this.taps.has(n));
    if (missing.length) {
      this.taps.dispose();
      const why = stoppedAfter ? ` (the pass stopped after ${stoppedAfter})` : ' (not on this pass\'s path with these inputs)';
      throw new TapNameError(`${this.model}: requested taps not produced: ${listNames(missing)}${why}`);
    }
    return { result, stoppedAfter };
  }
}

/** Runs a stack of encoder layers on x, recording `hidden_states.0` (x) … `hidden_states.L`;
 *  `onState` sees each state too. Layer i's output is recorded as `<path>:out` and
 *  `hidden_states.<i+1>` before a pass that stops after the layer ends. Each layer runs in its own
 *  tidy, so its intermediates are freed as soon as it returns. Returns the last layer's output. */
export function runLayerStack(
  x: Tensor,
  layers: readonly { readonly path: string; forward(x: Tensor, ctx: ForwardContext): Tensor }[],
  ctx: ForwardContext,
  onState?: (state: Tensor, index: number) => void,
): Tensor {
  const state = (t: Tensor, i: number) => {
    ctx.record(`hidden_states.${i}`, t);
    onState?.(t, i);
  };
  state(x, 0);
  for (let i = 0; i < layers.length; i++) {
    const input = x;
    const layer = layers[i]!;
    x = tidy(() => layer.forward(input, ctx));
    ctx.record(`${layer.path}:out`, x);
    state(x, i + 1);
    ctx.finished(layer.path);
  }
  return x;
}
