/**
 * Reads an environment variable where the runtime has one (Node, Bun, Deno with permission), and returns
 * undefined elsewhere (edge runtimes, browsers) instead of throwing.
 */

/** The variable's value, or undefined when unset or unreadable. */
export function readEnv(name: string): string | undefined {
  const g = globalThis as {
    process?: { env?: Record<string, string | undefined> };
    Deno?: { env?: { get(name: string): string | undefined } };
  };
  try {
    const value = g.process?.env?.[name] ?? g.Deno?.env?.get(name);
    return value === "" ? undefined : value;
  } catch {
    // Deno without --allow-env throws; treat as unset.
    return undefined;
  }
}
