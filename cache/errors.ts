// The toolkit's errors by kind, as zarrita's `errors.ts` tags its own: bad input, a damaged
// cache, a folder or URL that is not a cache, bad usage. Every folder throws these for
// conditions a caller handles; the CLI maps the kind to an exit code. Here, in the lowest
// folder, so that prep/, train/ and tasks/ all import it downward.

/** What went wrong, for callers and for the command line's exit codes. */
export type ErrorKind = "bad-input" | "damaged-cache" | "not-a-cache" | "usage" | "unavailable";

/** Options of the toolkit's errors. */
export interface VocoErrorOptions {
  /** The error this one wraps. */
  cause?: unknown;
  /** The file, folder or URL concerned, when one is. */
  path?: string;
}

/** Base of the toolkit's tagged errors: a `kind`, a message, the `path` concerned. */
export class VocoError extends Error {
  /** The kind, which decides the exit code of a command. */
  readonly kind: ErrorKind;
  /** The file, folder or URL concerned, when one is. */
  readonly path?: string;
  /** Makes an error of `kind`. */
  constructor(kind: ErrorKind, message: string, options: VocoErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.path = options.path;
    this.name = new.target.name;
  }
}

/**
 * Input that cannot be used: an image, recipe, datalist, weights file, run folder or
 * setting that is malformed, unsupported or out of range. The message names the file and
 * the reason.
 */
export class BadInputError extends VocoError {
  /** Makes a bad-input error. */
  constructor(message: string, options: VocoErrorOptions = {}) {
    super("bad-input", message, options);
  }
}

/** A cache whose stored bytes or metadata disagree with what was written. */
export class DamagedCacheError extends VocoError {
  /** The case (`dataset/name`), when the damage is in one. */
  readonly case?: string;
  /** The chunk or field, when known. */
  readonly where?: string;
  /** Makes a damaged-cache error. */
  constructor(
    message: string,
    options: VocoErrorOptions & { case?: string; where?: string } = {},
  ) {
    super("damaged-cache", message, options);
    this.case = options.case;
    this.where = options.where;
  }
}

/** A folder or URL that holds no VoCo cache (or not the one asked for). */
export class NotACacheError extends VocoError {
  /** Makes a not-a-cache error. */
  constructor(message: string, options: VocoErrorOptions = {}) {
    super("not-a-cache", message, options);
  }
}

/** Bad command-line usage; the CLI prints it with a `--help` hint and exits 2. */
export class UsageError extends VocoError {
  /** The command whose `--help` the hint names (`cache inspect`), when not the task. */
  readonly command?: string;
  /** Makes a usage error. */
  constructor(message: string, options: VocoErrorOptions & { command?: string } = {}) {
    super("usage", message, options);
    this.command = options.command;
  }
}

/** A server or store that could not be reached, or answered with an error (a network fault). */
export class UnavailableError extends VocoError {
  /** Makes an unavailable error. */
  constructor(message: string, options: VocoErrorOptions = {}) {
    super("unavailable", message, options);
  }
}

/**
 * The kind of a tagged error, or of the first tagged error among its causes (an error
 * wrapped with context keeps its kind); `undefined` for any other value (an untagged
 * error is a bug).
 */
export function errorKind(e: unknown): ErrorKind | undefined {
  for (let at = e, depth = 0; at instanceof Error && depth < 16; at = at.cause, depth++) {
    if (at instanceof VocoError) return at.kind;
  }
  return undefined;
}
