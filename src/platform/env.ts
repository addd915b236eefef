// The one place that reads environment variables: Node's process.env, Deno's Deno.env, nothing in
// browsers. A library must not fail, nor make Deno prompt, because the host withholds the
// environment, so a variable it may not read is simply unset.

interface DenoEnv {
  env: { get(name: string): string | undefined };
  permissions?: { querySync?(desc: { name: 'env'; variable: string }): { state: string } };
}

/** An environment variable, or undefined where it is unset or cannot be read (browsers, Deno
 *  without --allow-env for it). */
export function env(name: string): string | undefined {
  const deno = (globalThis as { Deno?: DenoEnv }).Deno;
  try {
    if (deno) {
      // Deno.env.get on an ungranted variable prompts on a terminal; querySync never does.
      const state = deno.permissions?.querySync?.({ name: 'env', variable: name }).state;
      if (state !== undefined && state !== 'granted') return undefined;
      return deno.env.get(name);
    }
    return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name];
  } catch {
    return undefined;
  }
}
