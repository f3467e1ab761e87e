// The command-line parser of every task: a command declares its flags, positionals and
// subcommands once; the parser gives typed values, the `--help` text and usage errors.
//
// A task in three steps (see tasks/prep.ts, tasks/cache.ts for subcommands):
//   export const SPEC = defineCommand({ name: "prep", summary: "...",
//     positionals: { name: "input", help: "files to prep", type: "path" },
//     flags: { out: { type: "path", arg: "DIR", help: "cache folder" },
//              workers: { type: "number", integer: true, min: 1, help: "workers" } },
//     examples: ["prep ct.nii.gz --out ct.zarr"] });
//   const r = parseCommand(SPEC, args);            // throws UsageError on bad usage
//   if (r.help !== undefined) { console.log(r.help); return 0; }
//   r.values.out /* string | undefined, absolute */; r.values.workers /* number | undefined */
// and `if (import.meta.main) await runMain("prep", main)` (from run.ts) prints a
// UsageError with the help hint and exits 2. Adding a flag is one entry in `flags`.
import { isAbsolute, resolve } from "node:path";
import { UsageError } from "../cache/errors.ts";
import { closest, editDistance, orList, suggestions } from "../cache/text.ts";

export { closest, editDistance, orList, suggestions };

/**
 * What a flag takes:
 * - `string`: one value (`--recipe voco-v1`), optionally one of `choices`;
 * - `path`: one value, resolved against the folder the user ran the command in;
 * - `number`: one finite number (`--level 3`, `--window-lo -175`), optionally `integer`,
 *   `min`, `max`;
 * - `numbers`: numbers separated by commas or spaces (`--spacing 1.5,1.5,2` or
 *   `--spacing 1.5 1.5 2`), as many as one of `counts` allows;
 * - `boolean`: present or not (`--quiet`), takes no value;
 * - `list`: repeatable (`--dataset A --dataset B`), each value a string or, with
 *   `item: "path"`, a path.
 */
export type FlagType = "string" | "path" | "number" | "numbers" | "boolean" | "list";

/** One flag of a command, `--name` on the command line. */
export interface FlagSpec {
  /** What the flag takes. */
  type: FlagType;
  /** One line (or several, separated by `\n`) for `--help`. */
  help: string;
  /**
   * Name of the value in `--help` (`--out DIR`).
   * @default {"PATH", "N", "N,N,N", "VALUE" by type}
   */
  arg?: string;
  /**
   * Value when the flag is absent (a relative `path` default is resolved like a given one).
   * Shown in `--help` as `(default: ...)` unless the help text speaks of a default.
   * @default {undefined; `false` for booleans, `[]` for lists}
   */
  default?: string | number | boolean | readonly number[];
  /** One-letter alias (`h` gives `-h`). */
  short?: string;
  /** The values a `string` flag accepts. */
  choices?: readonly string[];
  /** `number` and `numbers`: only integers. */
  integer?: boolean;
  /** `number` and `numbers`: smallest accepted value. */
  min?: number;
  /** `number` and `numbers`: largest accepted value. */
  max?: number;
  /** `numbers`: the accepted counts (`[1, 3]`: one number or three). @default {any} */
  counts?: readonly number[];
  /** `list`: what each value is. @default {"string"} */
  item?: "string" | "path";
}

/** The positional arguments of a command (after the subcommand, if any). */
export interface PositionalSpec {
  /** Name in usage and messages (`cache`, `input`). */
  name: string;
  /** What they are, for messages (`the cache folder`). */
  help: string;
  /** `path` resolves each against the folder the user ran the command in. @default {"string"} */
  type?: "string" | "path";
  /** Fewest accepted. @default {0} */
  min?: number;
  /** Most accepted. @default {Infinity} */
  max?: number;
}

/** A command (`prep`) or subcommand (`cache inspect`) and everything it accepts. */
export interface CommandSpec {
  /** The name after `deno task` (`prep`, `cache inspect`). */
  name: string;
  /** What it does, in a few words: the first line of `--help`. */
  summary: string;
  /** Usage lines after `deno task ` (default: built from the name and positionals). */
  usage?: readonly string[];
  /** Paragraphs between the usage and the options. */
  description?: string;
  /** Positional arguments; none are accepted when absent. */
  positionals?: PositionalSpec;
  /** Flags by name, without the dashes; `-h`/`--help` is always there. */
  flags?: Readonly<Record<string, FlagSpec>>;
  /** Subcommands by name; a command with subcommands takes its flags from them. */
  subcommands?: Readonly<Record<string, CommandSpec>>;
  /** Example command lines (without `deno task `), runnable as written. */
  examples?: readonly string[];
  /** Closing paragraph (exit codes, notes). */
  footer?: string;
}

type FlagValue<F extends FlagSpec> = F["type"] extends "boolean" ? boolean
  : F["type"] extends "number" ? number
  : F["type"] extends "numbers" ? number[]
  : F["type"] extends "list" ? string[]
  : string;

/** The values of a command's flags: `undefined` for an absent flag without a default. */
export type FlagValues<Flags> = {
  [K in keyof Flags]: Flags[K] extends FlagSpec
    ? Flags[K] extends { default: unknown } | { type: "boolean" | "list" } ? FlagValue<Flags[K]>
    : FlagValue<Flags[K]> | undefined
    : never;
};

/** A parsed command line of a command without subcommands. */
export interface ParsedCommand<Flags> {
  /** Not a help request. */
  help?: undefined;
  /** The subcommand (none here). */
  command?: undefined;
  /** Flag values by flag name. */
  values: FlagValues<Flags>;
  /** Positional arguments (paths resolved when they are paths). */
  positionals: string[];
}

/** A parsed command line of a command with subcommands: which one, and its values. */
export type ParsedSubcommand<Subs> = {
  [K in keyof Subs & string]: {
    help?: undefined;
    command: K;
    values: FlagValues<NonNullable<Subs[K] extends CommandSpec ? Subs[K]["flags"] : never>>;
    positionals: string[];
  };
}[keyof Subs & string];

/** What {@linkcode parseCommand} gives: the help text asked for, or the parsed values. */
export type ParseResult<S extends CommandSpec> =
  | { help: string }
  | (S extends { subcommands: infer Subs } ? ParsedSubcommand<Subs>
    : ParsedCommand<NonNullable<S["flags"]>>);

/** Options of {@linkcode parseCommand}. */
export interface ParseOptions {
  /**
   * Folder relative paths are resolved against.
   * @default {userCwd()}
   */
  cwd?: string;
}

/**
 * Declares a command; returns the spec unchanged, with literal types kept so that
 * {@linkcode parseCommand} can type the values.
 *
 * @example A command with two flags
 * ```ts
 * import { defineCommand, parseCommand } from "./args.ts";
 * const spec = defineCommand({
 *   name: "demo",
 *   summary: "generate phantoms",
 *   flags: {
 *     out: { type: "path", arg: "DIR", help: "output folder" },
 *     level: { type: "number", integer: true, default: 3, help: "compression level" },
 *   },
 * });
 * const r = parseCommand(spec, ["--out", "/tmp/x", "--level", "5"]);
 * if (r.help === undefined && r.values.level !== 5) throw new Error("not parsed");
 * ```
 */
export function defineCommand<const S extends CommandSpec>(spec: S): S {
  return spec;
}

/**
 * The folder the user ran the command in: `INIT_CWD`, which `deno task` sets (tasks run
 * in the folder of `deno.json`), else the process's working folder.
 */
export function userCwd(): string {
  let init: string | undefined;
  try {
    const granted =
      Deno.permissions.querySync({ name: "env", variable: "INIT_CWD" }).state === "granted";
    init = granted ? Deno.env.get("INIT_CWD") : undefined;
  } catch { /* no permission API: the working folder */ }
  return init && isAbsolute(init) ? init : Deno.cwd();
}

/** A path the user typed, made absolute against `cwd` (a leading `~/` is the home folder). */
export function userPath(path: string, cwd: string = userCwd()): string {
  if (path === "~" || path.startsWith("~/")) {
    const home = Deno.env.get("HOME");
    if (home) path = home + path.slice(1);
  }
  return isAbsolute(path) ? path : resolve(cwd, path);
}

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;
const HELP_FLAG: FlagSpec = { type: "boolean", short: "h", help: "this help" };

/** Whether a token is a value rather than a flag (`-175`, `-1000,500`, `-.5`, `-`). */
function looksLikeValue(token: string): boolean {
  return !token.startsWith("-") || token === "-" || /^-(\d|\.\d)/.test(token);
}

function defaultArg(f: FlagSpec): string {
  switch (f.type) {
    case "path":
      return "PATH";
    case "number":
      return "N";
    case "numbers":
      return f.counts ? f.counts.map((c) => Array(c).fill("N").join(",")).join("|") : "N,N,...";
    default:
      return "VALUE";
  }
}

function optionLabel(name: string, f: FlagSpec): string {
  const head = f.short ? `-${f.short}, --${name}` : `--${name}`;
  return f.type === "boolean" ? head : `${head} ${f.arg ?? defaultArg(f)}`;
}

function showDefault(v: FlagSpec["default"]): string {
  return Array.isArray(v) ? v.join(",") : String(v);
}

/** Lines of a two-column table: labels padded to one width, help lines aligned. */
function columns(rows: [string, string][], indent = "  "): string[] {
  const width = Math.min(24, Math.max(...rows.map(([l]) => l.length)) + 2);
  return rows.flatMap(([label, help]) => {
    const lines = help.split("\n");
    const first = label.length + 2 > width
      ? [`${indent}${label}`, `${indent}${"".padEnd(width)}${lines[0]}`]
      : [`${indent}${label.padEnd(width)}${lines[0]}`];
    return [...first, ...lines.slice(1).map((l) => `${indent}${"".padEnd(width)}${l}`)];
  });
}

function usageLines(spec: CommandSpec): string[] {
  if (spec.usage) return spec.usage.map((u) => `deno task ${u}`);
  if (spec.subcommands) return [`deno task ${spec.name} <command> [options]`];
  const p = spec.positionals;
  const pos = !p
    ? ""
    : (p.min ?? 0) > 0
    ? ` <${p.name}>${(p.max ?? Infinity) > 1 ? "..." : ""}`
    : ` [${p.name}]${(p.max ?? Infinity) > 1 ? "..." : ""}`;
  return [`deno task ${spec.name}${pos}${spec.flags ? " [options]" : ""}`];
}

/** The `--help` text of a command, from its spec. */
export function helpText(spec: CommandSpec): string {
  const out = [`deno task ${spec.name}: ${spec.summary}`, "", "Usage:"];
  out.push(...usageLines(spec).map((u) => `  ${u}`));
  if (spec.description) out.push("", spec.description.trimEnd());
  if (spec.subcommands) {
    out.push("", "Commands:");
    out.push(
      ...columns(Object.entries(spec.subcommands).map(([n, s]) => [n, s.summary])),
    );
  }
  const flags: [string, string][] = Object.entries(spec.flags ?? {}).map(([name, f]) => {
    const speaksOfDefault = /default/i.test(f.help);
    const shown = f.default !== undefined && f.type !== "boolean" && !speaksOfDefault
      ? `${f.help} (default: ${showDefault(f.default)})`
      : f.help;
    return [optionLabel(name, f), shown];
  });
  flags.push([optionLabel("help", HELP_FLAG), HELP_FLAG.help]);
  out.push("", "Options:", ...columns(flags));
  if (spec.examples?.length) {
    out.push("", spec.examples.length > 1 ? "Examples:" : "Example:");
    out.push(...spec.examples.map((e) => `  deno task ${e}`));
  }
  if (spec.subcommands) {
    out.push("", `Run "deno task ${spec.name} <command> --help" for the options of a command.`);
  }
  if (spec.footer) out.push("", spec.footer.trimEnd());
  return out.join("\n") + "\n";
}

function usageError(spec: CommandSpec, message: string): UsageError {
  return new UsageError(message, { command: spec.name });
}

function checkNumber(spec: CommandSpec, flag: string, f: FlagSpec, x: number, raw: string) {
  const what = f.integer ? "an integer" : "a number";
  const range = f.min !== undefined && f.max !== undefined
    ? ` ${f.min}..${f.max}`
    : f.min !== undefined
    ? ` >= ${f.min}`
    : f.max !== undefined
    ? ` <= ${f.max}`
    : "";
  if (
    !Number.isFinite(x) || (f.integer && !Number.isInteger(x)) ||
    (f.min !== undefined && x < f.min) || (f.max !== undefined && x > f.max)
  ) {
    throw usageError(spec, `--${flag} takes ${what}${range}, got "${raw}"`);
  }
}

function countsText(counts: readonly number[] | undefined): string {
  if (!counts) return "one or more numbers";
  const words = ["no", "one", "two", "three", "four", "five", "six"];
  const names = counts.map((c, i) =>
    `${words[c] ?? c}${i === counts.length - 1 ? (c === 1 ? " number" : " numbers") : ""}`
  );
  return names.length === 1 ? names[0] : `${names.slice(0, -1).join(", ")} or ${names.at(-1)}`;
}

/** Parses the flags and positionals of a command without subcommands. */
function parseFlags(
  spec: CommandSpec,
  args: readonly string[],
  cwd: string,
): { values: Record<string, unknown>; positionals: string[] } {
  const flags = spec.flags ?? {};
  const byShort = new Map(
    Object.entries(flags).filter(([, f]) => f.short).map(([n, f]) => [f.short!, n]),
  );
  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  let rest = false;
  for (let i = 0; i < args.length; i++) {
    const token = args[i];
    if (rest || looksLikeValue(token)) {
      positionals.push(token);
      continue;
    }
    if (token === "--") {
      rest = true;
      continue;
    }
    let name: string, inline: string | undefined;
    if (token.startsWith("--")) {
      const eq = token.indexOf("=");
      name = eq >= 0 ? token.slice(2, eq) : token.slice(2);
      inline = eq >= 0 ? token.slice(eq + 1) : undefined;
    } else {
      const long = byShort.get(token.slice(1, 2));
      if (!long || token.length > 2) {
        throw usageError(spec, `unknown option ${token}${suggestFlag(token.slice(1), flags)}`);
      }
      name = long;
    }
    const f = flags[name];
    if (!f) throw usageError(spec, `unknown option --${name}${suggestFlag(name, flags)}`);
    if (f.type === "boolean") {
      if (inline !== undefined) throw usageError(spec, `--${name} takes no value`);
      values[name] = true;
      continue;
    }
    if (f.type !== "list" && name in values) {
      throw usageError(spec, `--${name} is given twice`);
    }
    let raw = inline;
    if (raw === "") throw usageError(spec, `--${name} needs a value (${f.arg ?? defaultArg(f)})`);
    if (raw === undefined) {
      const next = args[i + 1];
      if (next === undefined || !looksLikeValue(next)) {
        throw usageError(spec, `--${name} needs a value (${f.arg ?? defaultArg(f)})`);
      }
      raw = next;
      i++;
    }
    switch (f.type) {
      case "string":
        if (f.choices && !f.choices.includes(raw)) {
          const near = suggestions(raw, f.choices);
          throw usageError(
            spec,
            `--${name} takes ${f.choices.join(", ")}, got "${raw}"` +
              (near.length ? ` (did you mean ${orList(near)}?)` : ""),
          );
        }
        values[name] = raw;
        break;
      case "path":
        values[name] = userPath(raw, cwd);
        break;
      case "list":
        ((values[name] ??= []) as string[]).push(f.item === "path" ? userPath(raw, cwd) : raw);
        break;
      case "number": {
        checkNumber(spec, name, f, raw.trim() === "" ? NaN : Number(raw), raw);
        values[name] = Number(raw);
        break;
      }
      case "numbers": {
        const r = parseNumbers(spec, name, f, raw, inline === undefined ? args.slice(i + 1) : []);
        i += r.consumed;
        values[name] = r.nums;
        break;
      }
    }
  }
  return withDefaults(spec, values, positionals, cwd);
}

/** The flags not given at their defaults; the positionals counted and resolved. */
function withDefaults(
  spec: CommandSpec,
  values: Record<string, unknown>,
  positionals: string[],
  cwd: string,
): { values: Record<string, unknown>; positionals: string[] } {
  const flags = spec.flags ?? {};
  for (const [name, f] of Object.entries(flags)) {
    if (name in values) continue;
    if (f.default !== undefined) {
      values[name] = f.type === "path" ? userPath(String(f.default), cwd) : f.default;
    } else if (f.type === "boolean") values[name] = false;
    else if (f.type === "list") values[name] = [];
  }
  const p = spec.positionals;
  if (!p && positionals.length > 0) {
    throw usageError(spec, `unexpected argument "${positionals[0]}"`);
  }
  if (p) {
    if (positionals.length < (p.min ?? 0)) {
      throw usageError(spec, `<${p.name}> is needed: ${p.help}`);
    }
    if (positionals.length > (p.max ?? Infinity)) {
      throw usageError(
        spec,
        `unexpected argument "${positionals[p.max ?? 0]}" (${spec.name} takes ` +
          `${p.max === 1 ? "one" : `at most ${p.max}`} <${p.name}>)`,
      );
    }
  }
  return {
    values,
    positionals: p?.type === "path" ? positionals.map((x) => userPath(x, cwd)) : positionals,
  };
}

/**
 * The numbers of a `numbers` flag: `raw` split at commas, or, when it is one number, that
 * and the numbers that follow it in `rest` (`--spacing 1.5 1.5 2`, as nnU-Net users type),
 * up to the most the flag takes; `consumed` of `rest` were taken.
 */
function parseNumbers(
  spec: CommandSpec,
  name: string,
  f: FlagSpec,
  raw: string,
  rest: readonly string[],
): { nums: number[]; consumed: number } {
  const parts = raw.split(",").map((s) => s.trim());
  const most = f.counts ? Math.max(...f.counts) : Infinity;
  let consumed = 0;
  if (parts.length === 1) {
    while (parts.length < most && consumed < rest.length && NUMBER.test(rest[consumed])) {
      parts.push(rest[consumed++]);
    }
  }
  const shown = parts.join(parts.length > 1 && !raw.includes(",") ? " " : ",");
  if (parts.some((p) => !NUMBER.test(p)) || (f.counts && !f.counts.includes(parts.length))) {
    throw usageError(
      spec,
      `--${name} takes ${countsText(f.counts)}, separated by commas or spaces ` +
        `(${f.arg ?? defaultArg(f)}), got "${shown}"`,
    );
  }
  const nums = parts.map(Number);
  for (const x of nums) checkNumber(spec, name, f, x, shown);
  return { nums, consumed };
}

function suggestFlag(name: string, flags: Readonly<Record<string, FlagSpec>>): string {
  const near = closest(name, [...Object.keys(flags), "help"]);
  return near ? ` (did you mean --${near}?)` : "";
}

function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).some((a) => a === "-h" || a === "--help");
}

/**
 * Parses a command line against a command's spec. Returns `{ help }` (the text to print)
 * when `-h`/`--help` is anywhere (before a `--`), else the values of every flag (absent
 * ones at their default), the positionals, and for a command with subcommands which one.
 * Relative `path` values are resolved against `cwd` (the user's folder).
 *
 * Throws a {@linkcode UsageError} (printed by `runMain` with a help hint, exit code 2)
 * for an unknown flag or subcommand (with the closest name: `unknown option --worker
 * (did you mean --workers?)`), a missing or bad value, a flag given twice, or too few or
 * too many positionals. Values may be negative numbers (`--window -175,250`).
 */
export function parseCommand<S extends CommandSpec>(
  spec: S,
  args: readonly string[],
  options: ParseOptions = {},
): ParseResult<S> {
  const cwd = options.cwd ?? userCwd();
  if (spec.subcommands) {
    const names = Object.keys(spec.subcommands);
    const [first, ...rest] = args;
    if (first === undefined || (first.startsWith("-") && wantsHelp([first]))) {
      if (first === undefined) {
        throw usageError(spec, `a command is needed: ${names.join(", ")}`);
      }
      return { help: helpText(spec) } as ParseResult<S>;
    }
    const sub = spec.subcommands[first];
    if (!sub) {
      if (first.startsWith("-")) {
        throw usageError(
          spec,
          `the command comes first: deno task ${spec.name} <command> ${first}`,
        );
      }
      const near = closest(first, names);
      throw usageError(
        spec,
        `unknown command "${first}"` +
          (near ? ` (did you mean ${near}?)` : `; commands: ${names.join(", ")}`),
      );
    }
    if (wantsHelp(rest)) return { help: helpText(sub) } as ParseResult<S>;
    return { command: first, ...parseFlags(sub, rest, cwd) } as unknown as ParseResult<S>;
  }
  if (wantsHelp(args)) return { help: helpText(spec) } as ParseResult<S>;
  return parseFlags(spec, args, cwd) as unknown as ParseResult<S>;
}

/** `[a]` as `[a, a, a]`, `[a, b, c]` as it is (for `numbers` flags with counts `[1, 3]`). */
export function expandTriple(
  values: readonly number[] | undefined,
): [number, number, number] | undefined {
  if (values === undefined) return undefined;
  return (values.length === 1 ? [values[0], values[0], values[0]] : [...values]) as [
    number,
    number,
    number,
  ];
}
