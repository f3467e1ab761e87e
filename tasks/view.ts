// `deno task view`: a local web viewer of caches (cases, the VoCo crops of a seed) and run
// folders (live curves), served on 127.0.0.1 like TensorBoard.
import { startViewer } from "../view/server.ts";
import { onInterrupt, runMain } from "../cli/run.ts";
import { defineCommand, parseCommand, userPath } from "../cli/args.ts";
import { cacheLocation, readerOptions, REMOTE_FLAGS } from "./_cache_location.ts";

/** The command line of `deno task view`. */
export const VIEW = defineCommand({
  name: "view",
  summary: "browse cases, the VoCo crops the sampler cuts, and run curves in the browser",
  usage: ["view [CACHE ...] [--run RUN ...] [--port N] [--case DATASET/CASE]"],
  description: `Serves a page on 127.0.0.1 and prints its URL, which opens on the first case of the
first cache (or --case): three planes drawn by NiiVue from chunk reads, a window in HU,
and the VoCo region, base crops and random crops the sampler draws for a seed. Runs (a
run folder, or a folder of them) show loss and its terms, learning rate, agreement and
step time, smoothed and raw, updated while they train. Stop it with Ctrl-C.`,
  positionals: {
    name: "cache",
    help: "cache folders or http(s):// / s3:// URLs",
    type: "string",
  },
  flags: {
    run: {
      type: "list",
      item: "path",
      arg: "DIR",
      help: "a run folder, or a folder of run folders (repeatable)",
    },
    port: {
      type: "number",
      integer: true,
      min: 0,
      max: 65535,
      default: 6007,
      help: "port on 127.0.0.1; 0 picks a free one",
    },
    case: {
      type: "string",
      arg: "DATASET/CASE",
      help: "the case the URL opens (default: the first)",
    },
    ...REMOTE_FLAGS,
  },
  examples: [
    "view ct.zarr",
    "view ct.zarr --run runs --port 0",
    "view http://127.0.0.1:8000/ --case ct/example_ct",
  ],
  footer:
    "Exit code: 0 when stopped with Ctrl-C after serving, 2 when a cache or run cannot be opened.",
});

async function main(args: string[]): Promise<number> {
  const parsed = parseCommand(VIEW, args);
  if (parsed.help !== undefined) {
    console.log(parsed.help);
    return 0;
  }
  const { values: v, positionals } = parsed;
  const viewer = await startViewer({
    caches: positionals.map(cacheLocation),
    runs: (v.run ?? []).map((r) => userPath(r)),
    port: v.port,
    openCase: v.case,
    reader: readerOptions(v),
  });
  console.log(`VoCo viewer at ${viewer.url}  (Ctrl-C stops it)`);
  await new Promise<void>((resolve) => onInterrupt(() => resolve()));
  await viewer.close();
  return 0;
}

if (import.meta.main) await runMain("view", main);

export { main };
