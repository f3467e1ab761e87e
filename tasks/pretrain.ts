// `deno task pretrain`: VoCo pre-training from the cache (not yet available).
const HELP = `deno task pretrain: VoCo pre-training of a SwinUNETR-v2 backbone from a cache

Not yet available in this version: build a cache with "deno task prep" now; the
pre-training command arrives with the training issue.

Example (future):
  deno task pretrain --cache cache --out runs/voco
`;

if (import.meta.main) {
  if (Deno.args.includes("-h") || Deno.args.includes("--help")) {
    console.log(HELP);
    Deno.exit(0);
  }
  console.error("pretrain: not yet available; see --help. Build the cache with deno task prep.");
  Deno.exit(1);
}
