/** An error about one input file: `<file>: <problem>`, the one-line form the CLI prints. */
export class FileError extends Error {
  override name = 'FileError';
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
  }
}

/** An image that cannot be decoded: empty, truncated, corrupt, unsupported or too large. */
export class ImageDecodeError extends FileError {
  override name = 'ImageDecodeError';
}
