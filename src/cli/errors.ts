// Errors of the command line.

/** A wrong command line: bad or missing arguments, unknown options or values (exit code 2). */
export class UsageError extends Error {
  override name = 'UsageError';
}
